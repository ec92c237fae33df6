"""Fixtures for voice-verification tests: a template store, real and synthetic voices.

Real voices are read from the shared data folder (never copied into the repo);
synthetic ones are generated with espeak-ng at test time.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from bench import voice_data as vd
from bench.voice_synth import spoken_digits, write_wav
from billtalk.db import make_engine
from biometrics.crypto import TemplateCipher
from biometrics.store import TemplateStore, ensure_schema
from biometrics.voice import campplus
from biometrics.voice.embedding import get_encoder

torch.set_num_threads(1)


@pytest.fixture(scope="session", autouse=True)
def _encoder_loaded() -> None:
    """Load both encoders once for the session (their first call pays a warm-up)."""
    get_encoder()
    campplus.get_encoder()


@pytest.fixture
def store(tmp_path: Path) -> TemplateStore:
    """An encrypted template store on a fresh SQLite database."""
    url = f"sqlite:///{tmp_path / 'voice.db'}"
    ensure_schema(url)
    return TemplateStore(make_engine(url), TemplateCipher("voice-test-secret"))


@pytest.fixture(scope="session")
def voice_data(shared_data: Path) -> Path:
    """The shared real voices (FSDD and LibriSpeech test-other)."""
    folder = shared_data / "voice"
    assert (folder / "fsdd" / "recordings").is_dir()
    return folder


FsddFactory = Callable[[str, str, str], bytes]


@pytest.fixture(scope="session")
def fsdd_wav(voice_data: Path) -> FsddFactory:
    """Build a WAV of a real FSDD speaker saying digits: ``fsdd_wav(speaker, digits, part)``.

    ``part`` is ``"enroll"`` (recordings 0-14 of each digit) or ``"probe"``
    (recordings 15-29), so enrollment and probes never share a recording.
    """

    def make(speaker: str, digits: str, part: str = "probe", seed: int = 0) -> bytes:
        indices = vd.ENROLL_INDICES if part == "enroll" else vd.PROBE_INDICES
        utt = vd.fsdd_string(speaker, digits, indices, random.Random(seed), data=voice_data)
        return write_wav(utt.wav, vd.SR)

    return make  # type: ignore[return-value]


@pytest.fixture(scope="session")
def espeak() -> Callable[..., bytes]:
    """``espeak(digits, voice=..., speed=..., snr_db=...)``: a synthetic spoken digit string."""
    return spoken_digits


def silence_wav(seconds: float = 3.0) -> bytes:
    """Digital silence."""
    return write_wav(np.zeros(int(16000 * seconds), np.float32), 16000)


def noise_wav(seconds: float = 3.0, seed: int = 0) -> bytes:
    """White noise only, no voice."""
    rng = np.random.default_rng(seed)
    return write_wav(rng.normal(0, 0.05, int(16000 * seconds)).astype(np.float32), 16000)
