"""The encrypted template store, on SQLite and PostgreSQL."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import text

from billtalk.db import make_engine
from biometrics.crypto import TemplateCipher, TemplateDecryptionError
from biometrics.store import TemplateStore, ensure_schema


@pytest.fixture
def store(database_url: str) -> TemplateStore:
    engine = make_engine(database_url)
    with engine.begin() as conn:  # the postgres database is shared by the session
        if conn.dialect.name == "postgresql":
            conn.execute(
                text(
                    "DROP TABLE IF EXISTS biometric_templates, biometric_audit, "
                    "alembic_version_biometrics"
                )
            )
    ensure_schema(database_url)
    return TemplateStore(engine, TemplateCipher("k1-secret"))


def test_round_trip_and_not_plaintext(store: TemplateStore) -> None:
    vectors = np.random.default_rng(0).normal(size=(3, 128)).astype(np.float32)
    store.save("res-1", "face", vectors, actor="test")
    np.testing.assert_array_equal(store.load("res-1", "face"), vectors)
    with store.engine.connect() as conn:
        blob = conn.execute(text("SELECT ciphertext FROM biometric_templates")).scalar_one()
    assert vectors.tobytes() not in bytes(blob)
    assert vectors[0, :4].tobytes() not in bytes(blob)


def test_template_bound_to_its_owner(store: TemplateStore) -> None:
    store.save("res-1", "voice", np.ones((1, 256), np.float32), actor="test")
    with store.engine.begin() as conn:
        conn.execute(text("UPDATE biometric_templates SET resident_id = 'res-2'"))
    with pytest.raises(TemplateDecryptionError):
        store.load("res-2", "voice")


def test_key_rotation(store: TemplateStore) -> None:
    store.save("res-1", "face", np.ones((1, 128), np.float32), actor="test")
    rotated = TemplateStore(store.engine, TemplateCipher("k2-secret", ("k1-secret",)))
    assert rotated.load("res-1", "face") is not None
    assert rotated.rotate_keys() == 1
    only_new = TemplateStore(store.engine, TemplateCipher("k2-secret"))
    assert only_new.load("res-1", "face") is not None
    with pytest.raises(TemplateDecryptionError):
        store.load("res-1", "face")  # the old key alone no longer opens it


def test_delete_removes_everything_and_is_audited(store: TemplateStore) -> None:
    store.save("res-1", "face", np.ones((2, 128), np.float32), actor="resident")
    store.save("res-1", "voice", np.ones((1, 256), np.float32), actor="resident")
    assert store.delete("res-1", None, actor="staff:alice") == 2
    assert store.load("res-1", "face") is None and not store.is_enrolled("res-1", "voice")
    actions = [(e["action"], e["actor"]) for e in store.audit_trail("res-1")]
    assert actions[-1] == ("delete", "staff:alice")
    assert all("ciphertext" not in e["detail"] for e in store.audit_trail("res-1"))


def test_rejects_non_finite_vectors(store: TemplateStore) -> None:
    with pytest.raises(ValueError):
        store.save("res-1", "face", np.array([[np.nan] * 128], np.float32), actor="test")
