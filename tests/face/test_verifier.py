"""FaceVerifier: the dialogue's step-up interface, with a real store and a real worker process."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from biometrics.face.service import enroll
from biometrics.face.settings import FaceSettings
from biometrics.face.verifier import FaceVerifier
from biometrics.store import TemplateStore
from tests.face import synth
from verification import Challenge, Decision, Evidence, VerificationKind, Verifier

RESIDENT = "res-obama"


@pytest.fixture
def verifier(store: TemplateStore, executor, photo, settings: FaceSettings) -> FaceVerifier:  # type: ignore[no-untyped-def]
    enroll(store, RESIDENT, [photo("obama")], actor="test", settings=settings)
    return FaceVerifier(store, settings=settings, executor=executor)


def _run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


def _image(path: Path | bytes) -> Evidence:
    data = path if isinstance(path, bytes) else Path(path).read_bytes()
    return Evidence("image", data, "image/jpeg")


def test_implements_the_verifier_protocol(verifier: FaceVerifier) -> None:
    assert isinstance(verifier, Verifier)
    assert verifier.kind is VerificationKind.FACE
    assert _run(verifier.is_enrolled(RESIDENT)) is True
    assert _run(verifier.is_enrolled("someone-else")) is False


def test_start_issues_a_random_expiring_movement_challenge(
    verifier: FaceVerifier, settings
) -> None:  # type: ignore[no-untyped-def]
    ch = _run(verifier.start(RESIDENT))
    assert ch.prompt_key == "verify_face_prompt"
    assert ch.accepts == ("video", "image")
    motions = ch.params["motion"].split(",")
    assert len(motions) == settings.challenge_steps
    assert set(motions) <= {"turn_left", "turn_right", "look_up"}
    assert ch.expires_at - ch.issued_at == timedelta(seconds=settings.challenge_ttl_s)
    assert Challenge.from_dict(ch.to_dict()) == ch  # survives persistence with the conversation
    ids = {_run(verifier.start(RESIDENT)).challenge_id for _ in range(5)}
    assert len(ids) == 5


def test_genuine_still_passes_only_together_with_the_pin(
    verifier: FaceVerifier, photo, settings
) -> None:  # type: ignore[no-untyped-def]
    ch = _run(verifier.start(RESIDENT))
    res = _run(verifier.verify(RESIDENT, ch, _image(photo("obama2"))))
    assert res.decision is Decision.ACCEPT, res
    assert res.requires_also is VerificationKind.PIN
    assert res.liveness is False
    assert res.threshold == settings.still_threshold
    assert res.score is not None and res.score <= settings.still_threshold


def test_impostor_still_is_rejected(verifier: FaceVerifier, photo) -> None:  # type: ignore[no-untyped-def]
    ch = _run(verifier.start(RESIDENT))
    res = _run(verifier.verify(RESIDENT, ch, _image(photo("biden"))))
    assert res.decision is Decision.REJECT and res.reason == "no_match"


def test_naive_still_photo_attacks_never_pass_on_their_own(verifier: FaceVerifier, photo) -> None:  # type: ignore[no-untyped-def]
    """Degraded copies of the enrolled photo: never a payment on their own.

    Near-copies are refused outright as replays; the others can at most count
    together with the PIN, which the attacker does not have.
    """
    variants = synth.attack_variants(Path(photo("obama")).read_bytes())
    variants["resent_original"] = Path(photo("obama")).read_bytes()
    outcomes = {}
    for name, data in variants.items():
        ch = _run(verifier.start(RESIDENT))
        res = _run(verifier.verify(RESIDENT, ch, _image(data)))
        assert not (res.passed and res.requires_also is None), (name, res)
        outcomes[name] = res.reason
    assert outcomes["resent_original"] == "replay_suspected"


def test_still_can_be_switched_off(store: TemplateStore, executor, photo) -> None:  # type: ignore[no-untyped-def]
    strict = FaceSettings(allow_still=False)
    enroll(store, RESIDENT, [photo("obama")], actor="test", settings=strict)
    v = FaceVerifier(store, settings=strict, executor=executor)
    ch = _run(v.start(RESIDENT))
    assert ch.accepts == ("video",)
    res = _run(v.verify(RESIDENT, ch, _image(photo("obama2"))))
    assert res.decision is Decision.RETRY and res.reason == "unsupported_media"


def test_group_photo_asks_again(verifier: FaceVerifier, photo) -> None:  # type: ignore[no-untyped-def]
    ch = _run(verifier.start(RESIDENT))
    res = _run(verifier.verify(RESIDENT, ch, _image(photo("two_people"))))
    assert res.decision is Decision.RETRY and res.reason == "multiple_faces"


def test_corrupt_image_asks_again(verifier: FaceVerifier) -> None:
    ch = _run(verifier.start(RESIDENT))
    res = _run(verifier.verify(RESIDENT, ch, _image(b"\xff\xd8\xff\xe0 broken")))
    assert res.decision is Decision.RETRY and res.reason == "corrupt_image"


def test_expired_challenge_is_refused(store: TemplateStore, executor, photo, settings) -> None:  # type: ignore[no-untyped-def]
    enroll(store, RESIDENT, [photo("obama")], actor="test", settings=settings)
    now = [datetime(2026, 1, 1, tzinfo=UTC)]
    v = FaceVerifier(store, settings=settings, executor=executor, clock=lambda: now[0])
    ch = _run(v.start(RESIDENT))
    now[0] += timedelta(seconds=settings.challenge_ttl_s + 1)
    res = _run(v.verify(RESIDENT, ch, _image(photo("obama2"))))
    assert res.decision is Decision.REJECT and res.reason == "expired"


def test_challenge_of_another_resident_is_refused(verifier: FaceVerifier, photo) -> None:  # type: ignore[no-untyped-def]
    ch = _run(verifier.start("someone-else"))
    res = _run(verifier.verify(RESIDENT, ch, _image(photo("obama2"))))
    assert res.decision is Decision.REJECT and res.reason == "wrong_challenge"


def test_challenge_without_a_movement_is_refused(verifier: FaceVerifier, clips) -> None:  # type: ignore[no-untyped-def]
    """A tampered or foreign challenge with no movement must not make liveness trivial."""
    ch = _with_motions(_run(verifier.start(RESIDENT)), [])
    res = _run(verifier.verify(RESIDENT, ch, Evidence("video", clips["obama_still"], "video/mp4")))
    assert res.decision is Decision.REJECT and res.reason == "wrong_challenge"


def test_not_enrolled(verifier: FaceVerifier, photo) -> None:  # type: ignore[no-untyped-def]
    ch = _run(verifier.start("nobody"))
    res = _run(verifier.verify("nobody", ch, _image(photo("obama2"))))
    assert res.decision is Decision.REJECT and res.reason == "not_enrolled"


def _with_motions(ch: Challenge, motions: list[str]) -> Challenge:
    """The same challenge, with a known motion sequence (start() draws it at random)."""
    data = ch.to_dict()
    data["params"]["motion"] = ",".join(motions)
    data["state"]["motions"] = motions
    return Challenge.from_dict(data)


def test_video_note_with_the_challenged_motion_passes_alone(
    verifier: FaceVerifier, clips: dict[str, bytes], settings: FaceSettings
) -> None:
    ch = _with_motions(_run(verifier.start(RESIDENT)), ["turn_left", "look_up"])
    clip = clips["obama_left_up"]
    res = _run(verifier.verify(RESIDENT, ch, Evidence("video", clip, "video/mp4")))
    assert res.decision is Decision.ACCEPT, res
    assert res.liveness is True and res.requires_also is None
    assert res.threshold == settings.threshold


def test_video_of_a_still_photo_fails_liveness(verifier: FaceVerifier, clips) -> None:  # type: ignore[no-untyped-def]
    ch = _with_motions(_run(verifier.start(RESIDENT)), ["turn_right", "look_up"])
    clip = clips["obama_still"]
    res = _run(verifier.verify(RESIDENT, ch, Evidence("video", clip, "video/mp4")))
    assert res.decision is Decision.REJECT
    assert res.reason == "liveness_failed" and res.liveness is False
    assert res.details["liveness"] == "motion_not_seen"


def test_attempts_are_logged_without_biometric_data(verifier: FaceVerifier, photo) -> None:  # type: ignore[no-untyped-def]
    from structlog.testing import capture_logs

    ch = _run(verifier.start(RESIDENT))
    with capture_logs() as logs:
        res = _run(verifier.verify(RESIDENT, ch, _image(photo("obama2"))))
    event = next(e for e in logs if e["event"] == "face_verification_attempt")
    assert event["kind"] == "face" and event["decision"] == "accept"
    assert event["score"] == res.score and event["liveness"] is False
    flat = repr(event)
    assert "encoding" not in flat and "template" not in flat and "bytes" not in flat
    assert all(not hasattr(v, "shape") for v in event.values())  # no arrays


def test_dlib_work_does_not_block_the_event_loop(verifier: FaceVerifier, clips) -> None:  # type: ignore[no-untyped-def]
    """While a video note is analysed (seconds of dlib work), other coroutines keep running."""

    async def scenario() -> tuple[int, object]:
        ticks = 0
        done = asyncio.Event()

        async def ticker() -> None:
            nonlocal ticks
            while not done.is_set():
                ticks += 1
                await asyncio.sleep(0.02)

        task = asyncio.create_task(ticker())
        await asyncio.sleep(0)
        ch = _with_motions(await verifier.start(RESIDENT), ["turn_left", "look_up"])
        before = ticks
        res = await verifier.verify(RESIDENT, ch, Evidence("video", clips["obama_left_up"]))
        during = ticks - before
        done.set()
        await task
        return during, res

    during, res = _run(scenario())
    assert res.passed  # type: ignore[attr-defined]
    assert during >= 10, f"the event loop ticked only {during} times during verification"
