"""Voice enrollment: prompted digits checked, template encrypted at rest, audited, deletable."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import text

from billtalk.db import make_engine
from biometrics.crypto import TemplateCipher
from biometrics.store import TemplateStore, ensure_schema
from biometrics.voice.embedding import EMBEDDING_DIM
from biometrics.voice.enrollment import (
    EnrollmentError,
    EnrollmentSample,
    enroll,
    enrollment_prompts,
)

from .conftest import FsddFactory

VOICE = {"voice": "en-us", "speed": 120, "snr_db": 30.0}
PROMPTS = ["4719", "0283", "5561", "9037", "1842"]


def synthetic_samples(espeak: Callable[..., bytes]) -> list[EnrollmentSample]:
    return [EnrollmentSample(espeak(p, seed=i, **VOICE), p) for i, p in enumerate(PROMPTS)]


def test_prompts_are_five_random_four_digit_strings() -> None:
    prompts = enrollment_prompts()
    assert len(prompts) == 5
    assert all(len(p) == 4 and p.isdigit() for p in prompts)
    assert enrollment_prompts() != prompts


@pytest.fixture
def db_store(database_url: str) -> TemplateStore:
    engine = make_engine(database_url)
    with engine.begin() as conn:  # the PostgreSQL database is shared by the session
        if conn.dialect.name == "postgresql":
            conn.execute(
                text(
                    "DROP TABLE IF EXISTS biometric_templates, biometric_audit, "
                    "alembic_version_biometrics"
                )
            )
    ensure_schema(database_url)
    return TemplateStore(engine, TemplateCipher("voice-test-secret"))


def test_enrollment_stores_an_encrypted_template_and_audits(
    db_store: TemplateStore, espeak: Callable[..., bytes]
) -> None:
    report = enroll(db_store, "res-1", synthetic_samples(espeak), actor="resident:res-1")
    assert report.samples == 5 and report.digits_checked
    assert all(v >= 1.0 for v in report.voiced_s)
    template = db_store.load("res-1", "voice")
    assert template is not None and template.shape == (1, EMBEDDING_DIM)
    assert np.linalg.norm(template) == pytest.approx(1.0, abs=1e-5)
    with db_store.engine.connect() as conn:
        blob = bytes(
            conn.execute(
                text("SELECT ciphertext FROM biometric_templates WHERE kind = 'voice'")
            ).scalar_one()
        )
        dump = " ".join(
            str(v) for row in conn.execute(text("SELECT * FROM biometric_templates")) for v in row
        )
    raw = template.astype("<f4").tobytes()
    assert raw not in blob and raw[:16] not in blob and raw[-16:] not in blob
    assert f"{template[0, 0]:.4f}" not in dump
    trail = db_store.audit_trail("res-1")
    assert [(e["kind"], e["action"], e["actor"]) for e in trail] == [
        ("voice", "enroll", "resident:res-1")
    ]


def test_recording_with_other_digits_is_refused(
    store: TemplateStore, espeak: Callable[..., bytes]
) -> None:
    samples = synthetic_samples(espeak)
    samples[2] = EnrollmentSample(espeak("7777", seed=2, **VOICE), PROMPTS[2])
    with pytest.raises(EnrollmentError) as err:
        enroll(store, "res-1", samples, actor="resident:res-1")
    assert err.value.code == "wrong_digits"
    assert err.value.index == 2
    assert store.load("res-1", "voice") is None  # nothing stored


def test_too_few_or_unprompted_recordings_are_refused(
    store: TemplateStore, espeak: Callable[..., bytes]
) -> None:
    samples = synthetic_samples(espeak)
    with pytest.raises(EnrollmentError) as err:
        enroll(store, "res-1", samples[:3], actor="resident:res-1")
    assert err.value.code == "not_enough_samples"
    samples[0] = EnrollmentSample(samples[0].audio, None)
    with pytest.raises(EnrollmentError) as err:
        enroll(store, "res-1", samples, actor="resident:res-1")
    assert err.value.code == "missing_digits"


def test_silent_recording_is_refused(store: TemplateStore, espeak: Callable[..., bytes]) -> None:
    from .conftest import silence_wav

    samples = synthetic_samples(espeak)
    samples[4] = EnrollmentSample(silence_wav(), PROMPTS[4])
    with pytest.raises(EnrollmentError) as err:
        enroll(store, "res-1", samples, actor="resident:res-1")
    assert err.value.code == "silent"
    assert err.value.index == 4


def test_two_different_people_cannot_enroll_as_one(
    store: TemplateStore, fsdd_wav: FsddFactory, voice_data: Path
) -> None:
    samples = [EnrollmentSample(fsdd_wav("nicolas", p, "enroll", i)) for i, p in enumerate(PROMPTS)]
    other = voice_data / "librispeech_test-other" / "2609" / "2609-156975-0001.flac"
    samples[3] = EnrollmentSample(other)
    with pytest.raises(EnrollmentError) as err:
        enroll(store, "res-1", samples, actor="staff:test", check_prompted_digits=False)
    assert err.value.code == "inconsistent_speaker"
    assert err.value.index == 3


def test_staff_import_without_digit_check_is_audited_and_deletable(
    store: TemplateStore, fsdd_wav: FsddFactory
) -> None:
    samples = [EnrollmentSample(fsdd_wav("george", p, "enroll", i)) for i, p in enumerate(PROMPTS)]
    report = enroll(store, "res-2", samples, actor="staff:ana", check_prompted_digits=False)
    assert not report.digits_checked
    assert store.is_enrolled("res-2", "voice")
    assert store.delete("res-2", "voice", actor="staff:ana") == 1
    assert store.load("res-2", "voice") is None
    actions = [(e["action"], e["actor"]) for e in store.audit_trail("res-2")]
    assert actions == [("enroll", "staff:ana (no digit check)"), ("delete", "staff:ana")]
