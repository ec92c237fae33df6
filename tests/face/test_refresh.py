"""Template refresh after a wide-margin pass: bounded, audited, encrypted, reversible."""

from __future__ import annotations

import numpy as np
import pytest

from biometrics.refresh import FACE_POLICY, refreshed_face, refreshed_voice
from biometrics.store import TemplateStore


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def test_voice_template_moves_only_after_a_wide_pass_and_only_a_little() -> None:
    rng = np.random.default_rng(1)
    old = _unit(rng.normal(size=256)).astype(np.float32)
    probe = _unit(old + 0.3 * _unit(rng.normal(size=256))).astype(np.float32)
    score = float(old @ probe)
    assert refreshed_voice(old, probe, score, threshold=score - 0.01) is None  # borderline
    new = refreshed_voice(old, probe, score, threshold=score - 0.2)
    assert new is not None and new.shape == (1, 256)
    assert abs(float(np.linalg.norm(new)) - 1) < 1e-5
    assert float(new[0] @ old) > 0.98  # bounded step
    assert float(new[0] @ probe) > float(old @ probe)  # towards the probe


def test_face_gallery_is_bounded_and_keeps_the_enrolled_photos(encodings) -> None:  # type: ignore[no-untyped-def]
    enrolled = np.vstack([encodings["obama"]])
    probe = encodings["obama2"]
    d = float(np.linalg.norm(enrolled[0] - probe))
    assert refreshed_face(enrolled, 1, probe, d, threshold=d + 0.01) is None  # not wide enough
    gallery = enrolled
    for _ in range(4):
        new = refreshed_face(gallery, 1, probe, d, threshold=d + FACE_POLICY.margin + 0.01)
        assert new is not None
        gallery = new
    assert gallery.shape[0] == 1 + FACE_POLICY.max_refreshed
    assert np.allclose(gallery[0], enrolled[0], atol=1e-6)
    # Another person never gets in, however the numbers are presented.
    assert refreshed_face(enrolled, 1, encodings["biden"], 0.0, threshold=0.5) is None


def test_store_refresh_keeps_one_previous_version_and_restores_it(store: TemplateStore) -> None:
    first = np.ones((1, 4), np.float32)
    second = np.full((1, 4), 2.0, np.float32)
    store.save("r1", "voice", first, actor="test")
    with pytest.raises(LookupError):
        store.refresh("r2", "voice", second, actor="test", detail={})
    store.refresh("r1", "voice", second, actor="verifier", detail={"score_milli": 930})
    loaded = store.load("r1", "voice")
    assert loaded is not None and np.array_equal(loaded, second)
    assert store.restore_previous("r1", "voice", actor="staff:ana")
    loaded = store.load("r1", "voice")
    assert loaded is not None and np.array_equal(loaded, first)
    assert not store.restore_previous("r1", "voice", actor="staff:ana")  # one step only
    actions = [e["action"] for e in store.audit_trail("r1")]
    assert actions == ["enroll", "refresh", "restore"]
    # The audit trail says what happened, never what the template holds (the timestamps are
    # left out of the check: a clock reading such as 03:32.053 would contain "2.0").
    details = [e["detail"] for e in store.audit_trail("r1")]
    assert not any("2.0" in d or "1.0" in d for d in details)
    store.refresh("r1", "voice", second, actor="verifier", detail={})
    assert store.delete("r1", "voice", actor="test") == 2  # the previous version goes too
    assert store.load("r1", "voice:previous") is None
