"""A live step-up passed with a wide margin refreshes the voice template; nothing else does."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from billtalk.db import make_engine
from biometrics.crypto import TemplateCipher
from biometrics.store import TemplateStore, ensure_schema
from biometrics.voice.enrollment import EnrollmentSample, enroll
from biometrics.voice.models import PROFILES, VoiceModel
from biometrics.voice.settings import VoiceSettings
from biometrics.voice.verifier import VoiceVerifier
from verification import Decision, Evidence

VOICE = {"voice": "en-us", "speed": 120, "snr_db": 30.0}
PROMPTS = ["471902", "028365", "556174", "903728", "184250"]


@pytest.fixture
def enrolled(tmp_path: Path, espeak: Callable[..., bytes]) -> TemplateStore:
    url = f"sqlite:///{tmp_path / 'learn.db'}"
    ensure_schema(url)
    store = TemplateStore(make_engine(url), TemplateCipher("voice-learn-secret"))
    samples = [EnrollmentSample(espeak(p, seed=i, **VOICE), p) for i, p in enumerate(PROMPTS)]
    enroll(store, "r1", samples, actor="resident:r1")
    return store


def _verifier(store: TemplateStore, digits: str = "385026", **settings: object) -> VoiceVerifier:
    return VoiceVerifier(
        store,
        settings=VoiceSettings(**settings),
        digit_source=lambda n: digits,  # type: ignore[arg-type]
    )


async def test_a_wide_live_pass_refreshes_reversibly_and_a_replay_never_does(
    enrolled: TemplateStore, espeak: Callable[..., bytes]
) -> None:
    before = enrolled.load("r1", "voice")
    verifier = _verifier(enrolled)
    challenge = await verifier.start("r1")
    recording = espeak("385026", seed=9, **VOICE)
    result = await verifier.verify("r1", challenge, Evidence("audio", recording, "audio/wav"))
    assert result.decision is Decision.ACCEPT
    assert result.score is not None
    policy = PROFILES[VoiceModel.CAMPPLUS].refresh
    assert result.score >= result.threshold + policy.margin  # a wide pass
    assert result.details["voiceprint_refreshed"] is True
    after = enrolled.load("r1", "voice")
    assert after is not None and before is not None and not np.array_equal(after, before)
    assert float(after[0] @ before[0]) >= policy.max_drift
    assert [e["action"] for e in enrolled.audit_trail("r1")] == ["enroll", "refresh"]

    # The same recording replayed against a new challenge: rejected, template untouched.
    replay = _verifier(enrolled, digits="916473")
    new = await replay.start("r1")
    rejected = await replay.verify("r1", new, Evidence("audio", recording, "audio/wav"))
    assert rejected.decision is Decision.REJECT and "voiceprint_refreshed" not in rejected.details
    assert np.array_equal(enrolled.load("r1", "voice"), after)  # type: ignore[arg-type]

    assert enrolled.restore_previous("r1", "voice", actor="staff:ana")
    assert np.array_equal(enrolled.load("r1", "voice"), before)  # type: ignore[arg-type]


async def test_learning_can_be_switched_off(
    enrolled: TemplateStore, espeak: Callable[..., bytes]
) -> None:
    verifier = _verifier(enrolled, learn_from_success=False)
    challenge = await verifier.start("r1")
    recording = espeak("385026", seed=9, **VOICE)
    result = await verifier.verify("r1", challenge, Evidence("audio", recording, "audio/wav"))
    assert result.decision is Decision.ACCEPT
    assert result.details["voiceprint_refreshed"] is False
    assert [e["action"] for e in enrolled.audit_trail("r1")] == ["enroll"]
