"""The "too noisy" probe gate, on real recordings with real-looking noise added."""

from __future__ import annotations

import random

import numpy as np
import pytest

from bench import voice_data as vd
from bench.voice_synth import write_wav
from biometrics.store import TemplateStore
from biometrics.voice.noise import estimate_snr_db
from biometrics.voice.settings import get_voice_settings
from biometrics.voice.verifier import VoiceVerifier
from verification import Decision, Evidence

from .test_verifier import RESIDENT, enrolled, scripted_digits  # noqa: F401  (module fixture)

GATE = get_voice_settings().min_snr_db


def _with_noise(wav: np.ndarray, snr_db: float, seed: int) -> np.ndarray:
    """``wav`` with white noise at ``snr_db`` below the speech power."""
    noise = np.random.default_rng(seed).normal(0, 1, len(wav))
    power = float(np.mean(wav.astype(np.float64) ** 2))
    noise *= np.sqrt(power / 10 ** (snr_db / 10))
    return (wav + noise).astype(np.float32)


def _real_speech() -> list[np.ndarray]:
    """Real voices: FSDD digit strings (3 speakers) and LibriSpeech test-other chunks."""
    rng = random.Random(18)
    out = [
        vd.fsdd_string(spk, vd.random_digits(6, rng), vd.PROBE_INDICES, rng).wav
        for spk in vd.FSDD_SPEAKERS
        for _ in range(3)
    ]
    for spk in vd.libri_speakers()[:3]:
        out += [u.wav for u in vd.libri_probes(spk)[:3]]
    return out


def test_clean_real_speech_passes_the_gate_and_noisy_speech_does_not() -> None:
    speech = _real_speech()
    assert len(speech) >= 12
    for i, wav in enumerate(speech):
        clean = estimate_snr_db(wav)
        assert clean >= GATE, (i, clean)
        noisy = estimate_snr_db(_with_noise(wav, 0.0, seed=i))
        assert noisy < GATE, (i, noisy)
        # The estimate falls as the noise rises.
        assert estimate_snr_db(_with_noise(wav, 15.0, seed=i)) > noisy


def test_too_little_audio_is_not_estimated() -> None:
    assert estimate_snr_db(np.zeros(100, np.float32)) == 0.0


@pytest.mark.asyncio
async def test_a_noisy_step_up_recording_is_refused_with_a_reason_and_a_hint(
    enrolled: TemplateStore,  # noqa: F811
) -> None:
    verifier = VoiceVerifier(enrolled, digit_source=scripted_digits())
    rng = random.Random(5)
    real = vd.fsdd_string("george", "471902", vd.PROBE_INDICES, rng).wav
    challenge = await verifier.start(RESIDENT)
    noisy = Evidence("audio", write_wav(_with_noise(real, 0.0, seed=1), vd.SR), "audio/wav")
    result = await verifier.verify(RESIDENT, challenge, noisy)
    assert result.decision is Decision.RETRY and result.reason == "too_noisy"
    assert result.score is None  # refused, not scored
    assert result.details["snr_db"] < GATE
    assert "quieter" in str(result.details["message"])
    # The same real recording without the noise is scored (whatever the voice decides).
    challenge = await verifier.start(RESIDENT)
    clean = Evidence("audio", write_wav(real, vd.SR), "audio/wav")
    result = await verifier.verify(RESIDENT, challenge, clean)
    assert result.reason != "too_noisy" and result.score is not None
