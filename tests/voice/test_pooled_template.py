"""Enrollment speech embedded as one utterance, and the least total speech it needs."""

from __future__ import annotations

import numpy as np
import pytest

from biometrics.store import TemplateStore
from biometrics.voice.audio import decode
from biometrics.voice.embedding import make_template, similarity
from biometrics.voice.enrollment import EnrollmentError, EnrollmentSample, build_template, enroll
from biometrics.voice.models import PROFILES, VoiceModel
from biometrics.voice.settings import VoiceSettings
from biometrics.voice.voiceprint import pooled_template, voiceprint_of

from .conftest import FsddFactory


def _digit_clip(fsdd_wav: FsddFactory, speaker: str, digit: str, seed: int) -> bytes:
    return fsdd_wav(speaker, digit, "enroll", seed)


def test_short_enrollment_recordings_pooled_match_better_than_averaged(
    fsdd_wav: FsddFactory,
) -> None:
    """GE2E, five single digits (about 0.5 s each): one pooled utterance beats five
    padded windows (the measurement behind pooling; CAM++ templates are pooled too)."""
    gains = []
    ge2e = VoiceModel.GE2E
    for speaker, other in (("jackson", "george"), ("george", "nicolas"), ("nicolas", "jackson")):
        prints = [
            voiceprint_of(
                decode(_digit_clip(fsdd_wav, speaker, d, i)), min_voiced_s=0.1, model=ge2e
            )
            for i, d in enumerate("30718")
        ]
        pooled = pooled_template(prints)
        mean = make_template([p.vector for p in prints])
        probe_wav = decode(fsdd_wav(speaker, "582946", "probe", 7))
        impostor_wav = decode(fsdd_wav(other, "582946", "probe", 7))
        probe = voiceprint_of(probe_wav, min_voiced_s=1.0, model=ge2e)
        impostor = voiceprint_of(impostor_wav, min_voiced_s=1.0, model=ge2e)
        margin_pooled = similarity(pooled, probe.vector) - similarity(pooled, impostor.vector)
        margin_mean = similarity(mean, probe.vector) - similarity(mean, impostor.vector)
        gains.append(margin_pooled - margin_mean)
    assert np.mean(gains) > 0, gains


def test_pooled_template_needs_the_prepared_speech(fsdd_wav: FsddFactory) -> None:
    vp = voiceprint_of(decode(fsdd_wav("george", "123456", "enroll", 1)), min_voiced_s=1.0)
    assert vp.speech is not None and len(vp.speech) > 0
    assert "speech" not in repr(vp)  # audio stays out of logs
    without = type(vp)(vp.vector, vp.voiced_s, vp.duration_s, vp.embed_ms)
    with pytest.raises(ValueError):
        pooled_template([without])


def test_enrollment_needs_enough_speech_in_all(fsdd_wav: FsddFactory, store: TemplateStore) -> None:
    samples = [
        EnrollmentSample(fsdd_wav("jackson", p, "enroll", i), p)
        for i, p in enumerate(["471902", "028365", "556174", "903728", "184250"])
    ]
    total = sum(
        voiceprint_of(decode(s.audio), min_voiced_s=0.1).voiced_s  # type: ignore[arg-type]
        for s in samples
    )
    strict = VoiceSettings(min_enroll_total_voiced_s=total + 1.0)
    with pytest.raises(EnrollmentError) as err:
        enroll(store, "r1", samples, actor="test", check_prompted_digits=False, settings=strict)
    assert err.value.code == "not_enough_speech"
    assert not store.is_enrolled("r1", "voice")
    # One recording checked alone (as the chat does on arrival) is not held to the total.
    _, one = build_template(
        samples[:1], check_prompted_digits=False, settings=strict.model_copy(
            update={"enroll_utterances": 1}
        )
    )  # fmt: skip
    assert one.samples == 1
    report = enroll(store, "r1", samples, actor="test", check_prompted_digits=False)
    assert report.total_voiced_s == pytest.approx(total, abs=0.05)
    assert report.total_voiced_s >= VoiceSettings().min_enroll_total_voiced_s
    template = store.load("r1", "voice")
    assert template is not None and template.shape == (1, PROFILES[VoiceModel.CAMPPLUS].dims)
