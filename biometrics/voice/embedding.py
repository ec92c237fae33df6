"""Speaker embeddings ("voiceprints") with Resemblyzer's GE2E encoder, and speech preparation.

GE2E is the model of the voice templates enrolled before issue 18 (they keep
verifying with it); every enrollment since makes a CAM++ template
(:mod:`biometrics.voice.campplus`). :func:`prepare` (level, voice activity, pause
removal) feeds both models.

The encoder (a 3-layer LSTM trained with the generalised end-to-end loss, whose
weights ship inside the ``resemblyzer`` wheel) maps an utterance to a 256-d,
L2-normalised vector; two utterances of the same speaker have a high cosine
similarity. The encoder is loaded once per process, on first use, and runs on
the CPU with the work of one utterance on one thread by default.

Input audio is what :func:`speech.audio.load_audio` returns: float32 mono
at 16 kHz. Voice-activity detection (webrtcvad) measures how much voiced speech
an utterance holds and removes the pauses before embedding.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import webrtcvad
from scipy.ndimage import binary_dilation

from biometrics.voice.settings import get_voice_settings

if TYPE_CHECKING:
    import numpy.typing as npt

SAMPLE_RATE = 16_000
EMBEDDING_DIM = 256
_FRAME_MS = 30
_FRAME = SAMPLE_RATE * _FRAME_MS // 1000
#: Pauses up to this many frames inside speech are kept (natural rhythm).
_KEEP_PAUSE_FRAMES = 6
_TARGET_DBFS = -30.0
#: 1.6-s encoder windows per second of speech (Resemblyzer's default is 1.3). Denser,
#: overlapping windows make short probes' voiceprints steadier: on 11 real speakers
#: (docs/voice.md) FRR at FAR 0.1 % fell from 3.0 % to 2.2 % for ~6 ms more per 3-s probe.
PARTIALS_PER_S = 3.0

_lock = threading.Lock()
_encoder: Any = None


@dataclass(frozen=True)
class PreparedSpeech:
    """An utterance ready for the encoder.

    Attributes:
        wav: Float32 16 kHz samples with long pauses removed and volume raised
            to a common level (never lowered).
        voiced_s: Seconds of voiced speech found by voice-activity detection.
        duration_s: Duration of the input before trimming.
    """

    wav: npt.NDArray[np.float32]
    voiced_s: float
    duration_s: float


def voiced_frames(wav: npt.NDArray[np.float32], vad_mode: int | None = None) -> np.ndarray:
    """Per 30-ms frame, whether webrtcvad hears speech in ``wav`` (16 kHz float32)."""
    mode = get_voice_settings().vad_mode if vad_mode is None else vad_mode
    n = len(wav) // _FRAME
    if n == 0:
        return np.zeros(0, dtype=bool)
    pcm = (np.clip(wav[: n * _FRAME], -1.0, 1.0) * 32767).astype("<i2").tobytes()
    vad = webrtcvad.Vad(mode)
    step = _FRAME * 2
    return np.fromiter(
        (vad.is_speech(pcm[i * step : (i + 1) * step], SAMPLE_RATE) for i in range(n)),
        dtype=bool,
        count=n,
    )


def prepare(wav: npt.NDArray[np.float32], *, vad_mode: int | None = None) -> PreparedSpeech:
    """Normalise the level of ``wav`` and remove its pauses.

    Args:
        wav: Float32 mono samples at 16 kHz.
        vad_mode: webrtcvad aggressiveness; defaults to ``BILLTALK_VOICE_VAD_MODE``.

    Returns:
        The trimmed utterance and how much voiced speech it held. ``voiced_s`` is
        0 and ``wav`` empty when nothing voiced was found.
    """
    wav = np.asarray(wav, dtype=np.float32)
    duration = len(wav) / SAMPLE_RATE
    rms = float(np.sqrt(np.mean(np.square(wav, dtype=np.float64)))) if len(wav) else 0.0
    if rms > 0:
        gain = 10 ** ((_TARGET_DBFS - 20 * np.log10(rms)) / 20)
        if gain > 1:
            wav = np.clip(wav * gain, -1.0, 1.0).astype(np.float32)
    flags = voiced_frames(wav, vad_mode)
    voiced_s = float(flags.sum()) * _FRAME_MS / 1000
    if not flags.any():
        return PreparedSpeech(np.zeros(0, np.float32), 0.0, duration)
    # Keep voiced frames plus short pauses around them; drop long silences.
    keep = binary_dilation(flags, structure=np.ones(2 * _KEEP_PAUSE_FRAMES + 1, dtype=bool))
    mask = np.repeat(keep, _FRAME)
    trimmed = wav[: len(mask)][mask]
    return PreparedSpeech(trimmed.astype(np.float32), voiced_s, duration)


def get_encoder() -> Any:
    """The process-wide Resemblyzer encoder, loaded (and warmed up) on first use."""
    global _encoder
    if _encoder is None:
        with _lock:
            if _encoder is None:
                import torch

                with warnings.catch_warnings():
                    # resemblyzer imports a deprecated scipy.ndimage path.
                    warnings.simplefilter("ignore", DeprecationWarning)
                    from resemblyzer import VoiceEncoder

                encoder = VoiceEncoder("cpu", verbose=False)
                encoder.eval()
                # The first forward pass compiles kernels (seconds); pay it at load.
                with torch.no_grad():
                    encoder.embed_utterance(np.zeros(SAMPLE_RATE * 2, np.float32) + 1e-4)
                _encoder = encoder
    return _encoder


def embed(prepared: PreparedSpeech | npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """The L2-normalised 256-d voiceprint of one utterance.

    Args:
        prepared: The output of :func:`prepare`, or raw 16 kHz float32 samples
            (prepared on the fly).

    Raises:
        ValueError: If the utterance holds no voiced speech.
    """
    if not isinstance(prepared, PreparedSpeech):
        prepared = prepare(prepared)
    if prepared.voiced_s == 0 or len(prepared.wav) < _FRAME:
        raise ValueError("no voiced speech to embed")
    vector = get_encoder().embed_utterance(prepared.wav, rate=PARTIALS_PER_S)
    return normalise(np.asarray(vector, dtype=np.float32))


def normalise(vector: npt.NDArray[np.floating[Any]]) -> npt.NDArray[np.float32]:
    """``vector`` scaled to unit length (float32)."""
    vector = np.asarray(vector, dtype=np.float32)
    norm = float(np.linalg.norm(vector))
    if not np.isfinite(norm) or norm == 0:
        raise ValueError("cannot normalise a zero or non-finite vector")
    return (vector / norm).astype(np.float32)


def make_template(embeddings: Sequence[npt.NDArray[np.float32]]) -> npt.NDArray[np.float32]:
    """A speaker template: the L2-normalised mean of utterance voiceprints."""
    if not embeddings:
        raise ValueError("a template needs at least one voiceprint")
    return normalise(np.mean(np.stack([normalise(e) for e in embeddings]), axis=0))


def similarity(template: npt.NDArray[np.float32], probe: npt.NDArray[np.float32]) -> float:
    """Cosine similarity of a template and a probe voiceprint (both unit length)."""
    return float(np.dot(normalise(template).ravel(), normalise(probe).ravel()))
