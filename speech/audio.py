"""Decode, check and normalise audio for recognition and voice verification.

Every channel hands billtalk audio in its own format: Telegram voice notes are
OGG/Opus, smart speakers send WAV or FLAC, uploads may be MP3, telephone audio
is 8 kHz. :func:`load_audio` turns any of them into one form, 16 kHz mono
float32 samples with leading and trailing silence trimmed, or refuses it with an
:class:`AudioError` whose ``code`` says what is wrong, so the dialogue can ask
again in plain words.

Decoding uses PyAV (FFmpeg libraries inside the wheel), so no system ffmpeg is
needed. Voice-activity detection uses webrtcvad.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

#: Sample rate of everything :func:`load_audio` returns.
SAMPLE_RATE = 16_000

#: Audio whose peak stays below this (full scale = 1.0; about -66 dBFS) is "silent".
SILENCE_PEAK = 5e-4

#: Less voiced speech than this (seconds) counts as no speech at all.
MIN_SPEECH_S = 0.12

_VAD_FRAME_MS = 30
_TRIM_PAD_S = 0.2
_FORMAT_NAMES = {
    "wav": "WAV",
    "flac": "FLAC",
    "ogg": "OGG",
    "mp3": "MP3",
    "matroska,webm": "WebM",
    "mov,mp4,m4a,3gp,3g2,mj2": "MP4/M4A",
}
#: Container formats accepted; anything else PyAV can open is refused as unsupported.
SUPPORTED_FORMATS = frozenset(_FORMAT_NAMES)


class AudioError(ValueError):
    """Audio that cannot be used, with a machine-readable reason.

    Attributes:
        code: One of ``empty``, ``corrupt``, ``truncated``, ``unsupported_format``,
            ``silent``, ``no_speech``, ``too_long``, ``not_found``.
        message: A sentence a person can act on.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def to_dict(self) -> dict[str, str]:
        """The error as ``{"code", "message"}``, the shape every command prints."""
        return {"code": self.code, "message": self.message}


@dataclass(frozen=True)
class Audio:
    """Decoded, normalised audio.

    Attributes:
        samples: Mono float32 samples in [-1, 1] at :data:`SAMPLE_RATE`, trimmed to
            the voiced part (plus a short pad) unless loaded with ``trim=False``.
        sample_rate: Always :data:`SAMPLE_RATE`.
        duration_s: Duration of the input as received, in seconds (before trimming).
        source_rate: Sample rate of the input (8000 for telephone-band audio).
        speech_s: Seconds of voiced 30 ms frames found by voice-activity detection.
        format: The container format PyAV detected (``"wav"``, ``"ogg"``...).
    """

    samples: np.ndarray
    sample_rate: int
    duration_s: float
    source_rate: int
    speech_s: float
    format: str

    def __iter__(self) -> Iterator[Any]:
        # Lets callers unpack ``samples, duration = load_audio(...)``.
        yield self.samples
        yield self.duration_s

    def pcm16(self) -> bytes:
        """The samples as 16-bit little-endian PCM bytes (what decoders consume)."""
        return to_pcm16(self.samples)


def to_pcm16(samples: np.ndarray) -> bytes:
    """Convert float samples in [-1, 1] to 16-bit little-endian PCM bytes."""
    clipped = np.clip(samples, -1.0, 1.0)
    return (clipped * 32767.0).astype("<i2").tobytes()


def load_audio(
    data: bytes | bytearray | Path | str,
    *,
    max_seconds: float = 30.0,
    trim: bool = True,
    vad_aggressiveness: int = 2,
) -> Audio:
    """Decode audio bytes or a file and normalise it to 16 kHz mono float32.

    Args:
        data: The encoded audio (WAV, FLAC, OGG/Opus or MP3), as bytes or a path.
        max_seconds: Longest accepted input. Longer audio raises ``too_long``
            without being decoded to the end.
        trim: Cut leading and trailing silence found by voice-activity detection
            (a short pad is kept so word edges are not clipped).
        vad_aggressiveness: webrtcvad mode, 0 (keeps most) to 3 (keeps least).

    Returns:
        The :class:`Audio`. It unpacks as ``samples, duration_s`` too.

    Raises:
        AudioError: ``empty`` (no bytes), ``not_found``, ``corrupt`` (not audio),
            ``unsupported_format``, ``truncated`` (the stream ends early),
            ``too_long``, ``silent`` (no signal at all) or ``no_speech``
            (sound but no voice, e.g. noise only).
    """
    raw = _read_bytes(data)
    samples, source_rate, fmt, duration = _decode(raw, max_seconds)
    return _checked(samples, source_rate, fmt, duration, max_seconds, trim, vad_aggressiveness)


def audio_from_pcm16(
    pcm: bytes,
    *,
    max_seconds: float = 30.0,
    trim: bool = True,
    vad_aggressiveness: int = 2,
) -> Audio:
    """:func:`load_audio` for raw 16 kHz 16-bit mono PCM (what a Wyoming stream holds).

    The same checks and trimming, without a container to open or resample: the
    speaker's recogniser saved about 0.15 s a request this way.

    Raises:
        AudioError: As :func:`load_audio` (``empty``, ``too_long``, ``silent``,
            ``no_speech``; ``corrupt`` for an odd number of bytes).
    """
    if len(pcm) % 2:
        raise AudioError("corrupt", "16-bit PCM must have an even number of bytes.")
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0
    duration = samples.size / SAMPLE_RATE
    return _checked(samples, SAMPLE_RATE, "pcm", duration, max_seconds, trim, vad_aggressiveness)


def _checked(
    samples: np.ndarray,
    source_rate: int,
    fmt: str,
    duration: float,
    max_seconds: float,
    trim: bool,
    vad_aggressiveness: int,
) -> Audio:
    if duration > max_seconds + 1e-3:
        raise AudioError(
            "too_long", f"The recording is {duration:.1f} s long; the limit is {max_seconds:g} s."
        )
    if samples.size == 0:
        raise AudioError("empty", "The recording contains no audio samples.")
    peak = float(np.max(np.abs(samples)))
    if peak < SILENCE_PEAK:
        raise AudioError("silent", "The recording is silent; nothing was said.")
    voiced = voiced_frames(samples, aggressiveness=vad_aggressiveness)
    speech_s = float(voiced.sum()) * _VAD_FRAME_MS / 1000.0
    if speech_s < MIN_SPEECH_S or not _looks_like_speech(samples, voiced):
        raise AudioError(
            "no_speech", "No speech was found in the recording, only noise or silence."
        )
    if trim:
        samples = _trim(samples, voiced)
    return Audio(
        samples=samples.astype(np.float32, copy=False),
        sample_rate=SAMPLE_RATE,
        duration_s=round(duration, 3),
        source_rate=source_rate,
        speech_s=round(speech_s, 3),
        format=fmt,
    )


def voiced_frames(samples: np.ndarray, *, aggressiveness: int = 2) -> np.ndarray:
    """Run webrtcvad over 30 ms frames of 16 kHz samples.

    Returns:
        A boolean array, one entry per whole frame, ``True`` where speech was detected.
    """
    import webrtcvad

    vad = webrtcvad.Vad(aggressiveness)
    frame = SAMPLE_RATE * _VAD_FRAME_MS // 1000
    n = samples.size // frame
    pcm = to_pcm16(samples[: n * frame])
    step = frame * 2
    return np.array(
        [vad.is_speech(pcm[i * step : (i + 1) * step], SAMPLE_RATE) for i in range(n)], dtype=bool
    )


def add_noise_floor(samples: np.ndarray, level_db: float = -30.0, seed: int = 0) -> np.ndarray:
    """Add a low Gaussian noise floor ``level_db`` below the signal's RMS.

    pocketsphinx's cepstral mean normalisation, noise removal and energy
    features misbehave on exact digital zeros and on very clean audio
    (synthesised speech, gated microphones). On 64 clean synthesised requests
    the domain-LM WER was 33% with a floor 60 dB under the speech and 8% at
    30 dB (see docs/speech.md); real recordings already have a floor above it,
    so for them it changes little. The noise is seeded so that the same audio
    always decodes the same way.
    """
    rms = float(np.sqrt(np.mean(np.square(samples, dtype=np.float64)))) if samples.size else 0.0
    if rms == 0.0:
        return samples
    rng = np.random.default_rng(seed)
    floor = rms * 10.0 ** (level_db / 20.0)
    return (samples + rng.normal(0.0, floor, samples.size)).astype(np.float32)


def encode_audio(samples: np.ndarray, fmt: str, *, sample_rate: int = SAMPLE_RATE) -> bytes:
    """Encode mono float samples as ``"wav"``, ``"flac"``, ``"ogg"`` (Opus) or ``"mp3"``.

    Used for Telegram voice replies (OGG/Opus) and by tests and benchmarks to
    produce every input format from the same speech.
    """
    import av

    codecs = {"wav": "pcm_s16le", "flac": "flac", "ogg": "libopus", "mp3": "libmp3lame"}
    if fmt not in codecs:
        raise ValueError(f"unknown format {fmt!r}; use one of {sorted(codecs)}")
    out_rate = 48_000 if fmt == "ogg" else sample_rate
    buf = io.BytesIO()
    with av.open(buf, mode="w", format=fmt) as container:
        stream: Any = container.add_stream(codecs[fmt], rate=out_rate)
        stream.layout = "mono"
        if fmt == "ogg":
            stream.bit_rate = 32_000
        codec_format = stream.codec_context.format.name
        resampler = av.AudioResampler(format=codec_format, layout="mono", rate=out_rate)
        pcm = np.clip(samples, -1.0, 1.0)
        pcm16 = (pcm * 32767.0).astype(np.int16).reshape(1, -1)
        frame_size = 4096
        for start in range(0, pcm16.shape[1], frame_size):
            chunk = np.ascontiguousarray(pcm16[:, start : start + frame_size])
            frame = av.AudioFrame.from_ndarray(chunk, format="s16", layout="mono")
            frame.sample_rate = sample_rate
            for rframe in resampler.resample(frame):
                for packet in stream.encode(rframe):
                    container.mux(packet)
        for rframe in resampler.resample(None):
            for packet in stream.encode(rframe):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return buf.getvalue()


def _read_bytes(data: bytes | bytearray | Path | str) -> bytes:
    if isinstance(data, (bytes, bytearray)):
        raw = bytes(data)
    else:
        path = Path(data)
        if not path.is_file():
            raise AudioError("not_found", f"No audio file at {path}.")
        raw = path.read_bytes()
    if not raw:
        raise AudioError("empty", "The recording is empty (0 bytes).")
    return raw


def _wav_truncated(raw: bytes) -> bool:
    """Whether a RIFF/WAVE file declares more sample data than it holds."""
    if len(raw) < 12 or raw[:4] != b"RIFF" or raw[8:12] != b"WAVE":
        return False
    pos = 12
    while pos + 8 <= len(raw):
        chunk_id = raw[pos : pos + 4]
        (size,) = struct.unpack("<I", raw[pos + 4 : pos + 8])
        if chunk_id == b"data":
            # Streaming writers (espeak-ng --stdout, some recorders) put 0 or a huge
            # placeholder in the size field: that means "unknown length", not an error.
            return 0 < size < 0x7FFF0000 and pos + 8 + size > len(raw)
        pos += 8 + size + (size & 1)
    return True  # no data chunk before the end of the bytes


def _decode(raw: bytes, max_seconds: float) -> tuple[np.ndarray, int, str, float]:
    import av

    if _wav_truncated(raw):
        raise AudioError("truncated", "The WAV file ends before the audio it declares; resend it.")
    try:
        container = av.open(io.BytesIO(raw), mode="r")
    except (av.error.FFmpegError, UnicodeDecodeError, ValueError) as exc:
        raise AudioError(
            "corrupt", "The file could not be read as audio (WAV, FLAC, OGG/Opus or MP3)."
        ) from exc
    with container:
        fmt = container.format.name
        if fmt not in SUPPORTED_FORMATS:
            raise AudioError(
                "unsupported_format",
                f"Audio format {fmt!r} is not supported; send WAV, FLAC, OGG/Opus or MP3.",
            )
        if not container.streams.audio:
            raise AudioError("corrupt", "The file holds no audio stream.")
        stream = container.streams.audio[0]
        source_rate = int(stream.rate or stream.codec_context.sample_rate or 0)
        declared = None
        if stream.duration is not None and stream.time_base is not None:
            declared = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            declared = container.duration / 1_000_000
        if declared is not None and declared > max_seconds + 0.5:
            raise AudioError(
                "too_long",
                f"The recording is {declared:.1f} s long; the limit is {max_seconds:g} s.",
            )
        resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
        chunks: list[np.ndarray] = []
        total = 0
        limit = int((max_seconds + 0.5) * SAMPLE_RATE)
        try:
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    arr = out.to_ndarray().reshape(-1)
                    chunks.append(arr)
                    total += arr.size
                if total > limit:
                    break
            if total <= limit:
                for out in resampler.resample(None):
                    arr = out.to_ndarray().reshape(-1)
                    chunks.append(arr)
                    total += arr.size
        except (av.error.FFmpegError, ValueError) as exc:
            if total == 0:
                raise AudioError("corrupt", "The audio data could not be decoded.") from exc
            raise AudioError(
                "truncated", "The recording is cut off part-way through; resend it."
            ) from exc
    samples = np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)
    duration = samples.size / SAMPLE_RATE
    if declared is not None and total <= limit and declared - duration > 0.25 and fmt != "mp3":
        # The container promised more audio than the stream delivered.
        raise AudioError("truncated", "The recording is cut off part-way through; resend it.")
    return samples, source_rate, fmt, duration


def _looks_like_speech(samples: np.ndarray, voiced: np.ndarray) -> bool:
    """Reject steady noise and tones that webrtcvad calls voiced.

    Two cheap, measured cues (see docs/speech.md): voiced speech has harmonic
    frames whose spectrum (100-3300 Hz) is far from flat (10th-percentile
    spectral flatness below 0.2 even at 0 dB SNR pink noise, versus 0.3 for pink
    and 0.5 for white noise), and speech is bursty (frame energy spread of at
    least 5 dB, where a hum or tone stays flat).
    """
    frame = SAMPLE_RATE * _VAD_FRAME_MS // 1000
    n = samples.size // frame
    if n < 3:
        return bool(voiced.any())
    frames = samples[: n * frame].reshape(n, frame).astype(np.float64)
    energy_db = 10.0 * np.log10(np.square(frames).mean(axis=1) + 1e-12)
    spread = float(np.percentile(energy_db, 95) - np.percentile(energy_db, 10))
    spectrum = np.abs(np.fft.rfft(frames * np.hanning(frame), axis=1))[:, 3:100] ** 2 + 1e-12
    flatness = np.exp(np.log(spectrum).mean(axis=1)) / spectrum.mean(axis=1)
    loud = energy_db >= np.percentile(energy_db, 50)
    flat10 = float(np.percentile(flatness[loud], 10))
    return spread >= 5.0 and flat10 < 0.2


def _trim(samples: np.ndarray, voiced: np.ndarray) -> np.ndarray:
    if not voiced.any():
        return samples
    frame = SAMPLE_RATE * _VAD_FRAME_MS // 1000
    idx = np.flatnonzero(voiced)
    pad = int(_TRIM_PAD_S * SAMPLE_RATE)
    start = max(0, idx[0] * frame - pad)
    end = min(samples.size, (idx[-1] + 1) * frame + pad)
    return samples[start:end]


def describe_format(fmt: str) -> str:
    """A human name for a PyAV container format name (``"ogg"`` -> ``"OGG"``)."""
    return _FORMAT_NAMES.get(fmt, fmt)
