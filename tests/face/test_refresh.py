"""Template refresh after a wide-margin pass: bounded, audited, encrypted, reversible."""

from __future__ import annotations

import numpy as np
import pytest

from biometrics.refresh import FACE_POLICY, refreshed_face, refreshed_voice
from biometrics.store import TemplateStore
from biometrics.voice.models import PROFILES, VoiceModel


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def test_voice_template_moves_only_after_a_wide_pass_and_only_a_little() -> None:
    rng = np.random.default_rng(1)
    old = _unit(rng.normal(size=256)).astype(np.float32)
    probe = _unit(old + 0.3 * _unit(rng.normal(size=256))).astype(np.float32)
    score = float(old @ probe)
    policy = PROFILES[VoiceModel.CAMPPLUS].refresh
    assert refreshed_voice(old, probe, score, score - 0.01, policy) is None  # borderline
    new = refreshed_voice(old, probe, score, score - 0.2, policy)
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


def _run(coro):  # type: ignore[no-untyped-def]
    import asyncio

    return asyncio.run(coro)


def _live_challenge(verifier, resident: str):  # type: ignore[no-untyped-def]
    from verification import Challenge

    data = _run(verifier.start(resident)).to_dict()
    data["params"]["motion"] = "turn_left,look_up"
    data["state"]["motions"] = ["turn_left", "look_up"]
    return Challenge.from_dict(data)


def test_a_wide_live_video_pass_refreshes_the_face_gallery_reversibly(  # type: ignore[no-untyped-def]
    store: TemplateStore, executor, photo, clips, settings
) -> None:
    from biometrics.face.service import enroll
    from biometrics.face.verifier import FaceVerifier
    from verification import Decision, Evidence

    enroll(store, "r-live", [photo("obama")], actor="test", settings=settings)
    enrolled = store.load("r-live", "face")
    assert enrolled is not None and store.enrolled_samples("r-live", "face") == 1
    verifier = FaceVerifier(store, settings=settings, executor=executor)
    clip = Evidence("video", clips["obama_left_up"], "video/mp4")
    res = _run(verifier.verify("r-live", _live_challenge(verifier, "r-live"), clip))
    assert res.decision is Decision.ACCEPT, res
    assert res.score is not None and res.score <= settings.threshold - FACE_POLICY.margin
    assert res.details["gallery_refreshed"] is True
    gallery = store.load("r-live", "face")
    assert gallery is not None and gallery.shape == (2, 128)
    assert np.allclose(gallery[0], enrolled[0], atol=1e-6)  # the enrolled photo stays first
    actions = [e["action"] for e in store.audit_trail("r-live")]
    assert actions == ["enroll", "refresh"]
    # Bounded: more passes never grow the gallery past the enrolled rows + max_refreshed.
    for _ in range(3):
        _run(verifier.verify("r-live", _live_challenge(verifier, "r-live"), clip))
    gallery = store.load("r-live", "face")
    assert gallery is not None and gallery.shape == (1 + FACE_POLICY.max_refreshed, 128)
    assert store.enrolled_samples("r-live", "face") == 1  # refreshes are not enrollments
    # Reversible: the last refresh is undone by staff.
    assert store.restore_previous("r-live", "face", actor="staff:ana")
    assert store.audit_trail("r-live")[-1]["action"] == "restore"


def test_stills_and_other_people_never_refresh_the_face_gallery(  # type: ignore[no-untyped-def]
    store: TemplateStore, executor, photo, clips, settings
) -> None:
    from biometrics.face.service import enroll
    from biometrics.face.verifier import FaceVerifier
    from verification import Decision, Evidence

    enroll(store, "r-still", [photo("obama")], actor="test", settings=settings)
    verifier = FaceVerifier(store, settings=settings, executor=executor)
    still = Evidence("image", photo("obama2").read_bytes(), "image/jpeg")
    res = _run(verifier.verify("r-still", _live_challenge(verifier, "r-still"), still))
    assert res.decision is Decision.ACCEPT and "gallery_refreshed" not in res.details
    other = Evidence("video", clips["biden_left_up"], "video/mp4")
    res = _run(verifier.verify("r-still", _live_challenge(verifier, "r-still"), other))
    assert res.decision is Decision.REJECT
    off = FaceVerifier(
        store, settings=settings.model_copy(update={"learn_from_success": False}), executor=executor
    )
    clip = Evidence("video", clips["obama_left_up"], "video/mp4")
    res = _run(off.verify("r-still", _live_challenge(off, "r-still"), clip))
    assert res.decision is Decision.ACCEPT and res.details["gallery_refreshed"] is False
    assert [e["action"] for e in store.audit_trail("r-still")] == ["enroll"]
