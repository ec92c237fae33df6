"""Spoken digit strings synthesised with espeak-ng, for challenge-pipeline measurements.

Voices, speeds and added noise vary the audio the digit recogniser hears. The
WAV comes from espeak-ng itself (22.05 kHz); the product's loader resamples it.
"""

from __future__ import annotations

import io
import subprocess
import wave

import numpy as np

#: espeak-ng voices (language + variant) used for synthetic speakers.
VOICES = ("en-us", "en-us+m3", "en-us+f2", "en+m7", "en-us+f4", "en+klatt")
SPEEDS = (130, 160, 185)


def espeak_wav(text: str, *, voice: str = "en-us", speed: int = 160, pitch: int = 50) -> bytes:
    """The WAV bytes of espeak-ng speaking ``text``."""
    return subprocess.run(
        ["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch), "--stdout", text],
        check=True,
        capture_output=True,
        timeout=30,
    ).stdout


def read_wav(data: bytes) -> tuple[np.ndarray, int]:
    """Float samples and rate of a 16-bit mono WAV."""
    with wave.open(io.BytesIO(data)) as w:
        rate = w.getframerate()
        frames = w.readframes(w.getnframes())
    return np.frombuffer(frames, "<i2").astype(np.float32) / 32768.0, rate


def write_wav(samples: np.ndarray, rate: int) -> bytes:
    """16-bit mono WAV bytes of float samples."""
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())
    return buf.getvalue()


def with_noise(data: bytes, snr_db: float | None, seed: int = 0) -> bytes:
    """``data`` (a WAV) with white noise at ``snr_db`` over the speech power.

    ``None`` adds only a faint floor (-60 dB), as any real microphone has.
    """
    samples, rate = read_wav(data)
    rng = np.random.default_rng(seed)
    active = samples[np.abs(samples) > 1e-3]
    power = float(np.mean(active**2)) if active.size else 1e-6
    level = 60.0 if snr_db is None else snr_db
    noise = rng.normal(0.0, np.sqrt(power / 10 ** (level / 10)), samples.size)
    # Half a second of room tone before and after, like a real voice note.
    pad = rng.normal(0.0, np.sqrt(power / 10 ** (level / 10)), rate // 2)
    return write_wav(np.concatenate([pad, samples + noise, pad]).astype(np.float32), rate)


def spoken_digits(
    digits: str,
    *,
    voice: str = "en-us",
    speed: int = 160,
    snr_db: float | None = None,
    seed: int = 0,
) -> bytes:
    """A WAV of ``digits`` read one by one, optionally with noise."""
    words = ", ".join(digits)  # commas give the short pauses people make
    return with_noise(espeak_wav(words, voice=voice, speed=speed), snr_db, seed)
