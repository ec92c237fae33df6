"""Enrollment and deletion through the encrypted, audited template store."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import text

from biometrics.face.service import EnrollmentError, delete, enroll
from biometrics.face.settings import FaceSettings
from biometrics.store import TemplateStore


def test_enroll_stores_an_encrypted_template_and_audits(
    any_store: TemplateStore, photo, encodings, settings
) -> None:  # type: ignore[no-untyped-def]
    result = enroll(
        any_store, "r1", [photo("obama"), photo("obama2")], actor="staff:ann", settings=settings
    )
    assert result.samples == 2
    assert 0 < result.max_pair_distance <= settings.threshold

    loaded = any_store.load("r1", "face")
    assert loaded is not None and loaded.shape == (2, 128)
    np.testing.assert_allclose(loaded[0], encodings["obama"], atol=1e-5)

    with any_store.engine.connect() as conn:
        blob = bytes(conn.execute(text("SELECT ciphertext FROM biometric_templates")).scalar_one())
    vec32 = encodings["obama"].astype("<f4")
    assert vec32.tobytes() not in blob
    assert vec32[:4].tobytes() not in blob
    assert encodings["obama"][:2].tobytes() not in blob  # nor as float64

    trail = any_store.audit_trail("r1")
    assert [(e["action"], e["actor"]) for e in trail] == [("enroll", "staff:ann")]
    assert json.loads(trail[0]["detail"]) == {"samples": 2}


def test_delete_removes_completely_and_is_audited(
    any_store: TemplateStore, photo, settings
) -> None:  # type: ignore[no-untyped-def]
    enroll(any_store, "r1", [photo("rose")], actor="resident:r1", settings=settings)
    assert delete(any_store, "r1", actor="staff:bob") == 1
    assert any_store.load("r1", "face") is None
    with any_store.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM biometric_templates")).scalar_one() == 0
    assert [e["action"] for e in any_store.audit_trail("r1")] == ["enroll", "delete"]
    assert delete(any_store, "r1", actor="staff:bob") == 0


def test_reenrollment_replaces_the_template(store: TemplateStore, photo, settings) -> None:  # type: ignore[no-untyped-def]
    enroll(store, "r1", [photo("obama"), photo("obama2")], actor="t", settings=settings)
    enroll(store, "r1", [photo("obama_oval")], actor="t", settings=settings)
    loaded = store.load("r1", "face")
    assert loaded is not None and loaded.shape == (1, 128)


def test_photos_of_different_people_are_refused(store: TemplateStore, photo, settings) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(EnrollmentError) as err:
        enroll(store, "r1", [photo("obama"), photo("biden")], actor="t", settings=settings)
    assert err.value.code == "inconsistent_photos"
    assert store.load("r1", "face") is None


def test_bad_photo_is_named(store: TemplateStore, photo, settings, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(Path(photo("obama")).read_bytes()[:2000])
    with pytest.raises(EnrollmentError) as err:
        enroll(store, "r1", [photo("obama"), broken], actor="t", settings=settings)
    assert (err.value.code, err.value.index) == ("corrupt_image", 1)
    with pytest.raises(EnrollmentError) as err:
        enroll(store, "r1", [photo("two_people")], actor="t", settings=settings)
    assert (err.value.code, err.value.index) == ("multiple_faces", 0)
    assert store.load("r1", "face") is None


@pytest.mark.parametrize("count", [0, 6])
def test_one_to_five_photos(store: TemplateStore, photo, count: int) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(EnrollmentError) as err:
        enroll(store, "r1", [photo("obama")] * count, actor="t", settings=FaceSettings())
    assert err.value.code == "bad_request"


def test_face_error_survives_the_process_boundary() -> None:
    import pickle

    err = pickle.loads(pickle.dumps(EnrollmentError("no_face", "none", 3)))
    assert (err.code, err.message, err.index) == ("no_face", "none", 3)
