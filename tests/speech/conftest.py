"""Fixtures for the speech tests: real synthesised speech and real FSDD voices."""

from __future__ import annotations

import io
import wave
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest


def wav_bytes(samples: np.ndarray, rate: int = 16_000) -> bytes:
    """Mono float samples as a 16-bit PCM WAV file."""
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())
    return buf.getvalue()


def pink_noise(n: int, seed: int = 0) -> np.ndarray:
    """Unit-RMS pink noise."""
    rng = np.random.default_rng(seed)
    spectrum = np.fft.rfft(rng.normal(0.0, 1.0, n))
    spectrum[1:] /= np.sqrt(np.arange(1, spectrum.size))
    spectrum[0] = 0
    noise = np.fft.irfft(spectrum, n=n)
    return noise / np.sqrt(np.mean(noise**2))


def add_noise(samples: np.ndarray, snr_db: float, seed: int = 0) -> np.ndarray:
    """Mix pink noise into ``samples`` at ``snr_db``."""
    rms = np.sqrt(np.mean(samples.astype(np.float64) ** 2))
    noisy = samples + pink_noise(samples.size, seed) * rms * 10 ** (-snr_db / 20)
    return (noisy / max(1.0, float(np.max(np.abs(noisy))))).astype(np.float32)


@pytest.fixture(scope="session")
def say() -> Callable[..., np.ndarray]:
    """Synthesise English text with espeak-ng and return 16 kHz float samples."""
    from speech.audio import load_audio
    from speech.tts import synthesize

    cache: dict[tuple[str, str, int], np.ndarray] = {}

    def _say(text: str, voice: str = "en-us", speed: int = 165) -> np.ndarray:
        key = (text, voice, speed)
        if key not in cache:
            wav = synthesize(text, voice=voice, speed=speed)
            cache[key] = load_audio(wav, trim=False).samples
        return cache[key]

    return _say


@pytest.fixture(scope="session")
def fsdd(shared_data: Path) -> Path:
    """The real FSDD digit recordings (8 kHz, three speakers)."""
    path = shared_data / "voice" / "fsdd" / "recordings"
    assert path.is_dir(), path
    return path


@pytest.fixture(scope="session")
def fsdd_string(fsdd: Path) -> Callable[[str, str, int], bytes]:
    """A digit string spoken by a real FSDD speaker, as one 8 kHz WAV."""
    from speech.audio import load_audio

    def _make(digits: str, speaker: str, take: int = 0) -> bytes:
        parts = []
        for i, d in enumerate(digits):
            takes = sorted(fsdd.glob(f"{d}_{speaker}_*.wav"))
            samples = load_audio(takes[(take + i) % len(takes)], trim=False).samples
            parts += [samples, np.zeros(2400, np.float32)]
        audio16 = np.concatenate(parts)
        return wav_bytes(audio16[::2], rate=8000)  # back to the recordings' 8 kHz

    return _make
