"""Trial sets for voice-verification benchmarks, built from the shared real speakers.

- FSDD (three speakers, single digits, 8 kHz): digit strings are made by
  concatenating single-digit recordings with short pauses, the way a spoken
  challenge sounds. Enrollment strings use the first half of each digit's
  recordings (indices 0-14 of 30), probes the second half, so no recording is
  both enrolled and probed.
- LibriSpeech test-other (five speakers, ten read utterances each, 16 kHz):
  enrollment uses chunks of utterances 0-4, probes use 3-s chunks of
  utterances 5-9.

Audio goes through the product's own loader (:func:`biometrics.voice.audio.decode`).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from biometrics.voice.audio import decode

SR = 16_000
DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "voice"
FSDD_SPEAKERS = ("george", "jackson", "nicolas")
ENROLL_INDICES = range(0, 15)
PROBE_INDICES = range(15, 30)


@dataclass(frozen=True)
class Utterance:
    """One synthetic-from-real utterance: the speaker, its digits (if any) and audio."""

    speaker: str
    dataset: str
    wav: np.ndarray
    digits: str = ""


@lru_cache(maxsize=4096)
def _load(path: str) -> np.ndarray:
    wav, _ = decode(Path(path))
    return wav


def fsdd_string(
    speaker: str, digits: str, indices: range, rng: random.Random, data: Path = DATA
) -> Utterance:
    """Concatenate single-digit recordings of ``speaker`` into one utterance."""
    gap = np.zeros(int(0.12 * SR), np.float32)
    parts: list[np.ndarray] = [gap]
    for d in digits:
        idx = rng.choice(list(indices))
        parts += [_load(str(data / "fsdd" / "recordings" / f"{d}_{speaker}_{idx}.wav")), gap]
    wav = np.concatenate(parts)
    # A faint noise floor, as any real microphone has (exact zeros are unnatural).
    wav = wav + np.random.default_rng(rng.randrange(2**32)).normal(0, 1e-4, len(wav))
    return Utterance(speaker, "fsdd", wav.astype(np.float32), digits)


def random_digits(n: int, rng: random.Random) -> str:
    """``n`` random digits."""
    return "".join(rng.choice("0123456789") for _ in range(n))


def fsdd_enrollment(
    speaker: str, rng: random.Random, n: int = 5, length: int = 4
) -> list[Utterance]:
    """Five prompted 4-digit strings of ``speaker`` from the enrollment recordings."""
    return [fsdd_string(speaker, random_digits(length, rng), ENROLL_INDICES, rng) for _ in range(n)]


def fsdd_probes(speaker: str, rng: random.Random, count: int) -> list[Utterance]:
    """``count`` probe strings of 4-7 digits (about 1.6-3 s) from the held-out recordings."""
    return [
        fsdd_string(speaker, random_digits(rng.choice((4, 5, 6, 6, 7)), rng), PROBE_INDICES, rng)
        for _ in range(count)
    ]


def libri_speakers(data: Path = DATA) -> list[str]:
    """The LibriSpeech speaker ids in the shared folder."""
    return sorted(p.name for p in (data / "librispeech_test-other").iterdir() if p.is_dir())


def _libri_files(speaker: str, data: Path = DATA) -> list[Path]:
    return sorted((data / "librispeech_test-other" / speaker).glob("*.flac"))


def _chunks(wav: np.ndarray, seconds: float) -> Iterator[np.ndarray]:
    size = int(seconds * SR)
    for start in range(0, len(wav) - size + 1, size):
        yield wav[start : start + size]


def libri_enrollment(speaker: str, rng: random.Random, n: int = 5) -> list[Utterance]:
    """Five 2.5-s chunks from utterances 0-4 of ``speaker``."""
    pool = [c for f in _libri_files(speaker)[:5] for c in _chunks(_load(str(f)), 2.5)]
    return [Utterance(speaker, "libri", c) for c in rng.sample(pool, min(n, len(pool)))]


def libri_probes(speaker: str) -> list[Utterance]:
    """Every 3-s chunk of utterances 5-9 of ``speaker``."""
    return [
        Utterance(speaker, "libri", c)
        for f in _libri_files(speaker)[5:]
        for c in _chunks(_load(str(f)), 3.0)
    ]
