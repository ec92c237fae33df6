"""Step-up with real media through the conversation: a face video note doing the
challenged head moves, and a voice note of the challenged digits.

Real NLU, real seeded database, real face photos (``../shared/data/faces``) made
into video notes as tests/face/synth.py does, espeak-ng voices, the real
verifiers and template store. The log must hold kind, score and decision, and
never media bytes or templates.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from bot.messages import Attachment
from tests.conversations.test_enrollment import (
    PROMPTS,
    Chat,
    _pair_photos,
    _state,
    _verification_attempts,
    audio,
    templates,
)

VOICE = {"voice": "en-us", "speed": 120, "snr_db": 30.0}


def _log(engine: Any) -> str:
    with engine.db.connect() as conn:
        turns = [dict(r) for r in conn.execute(text("SELECT * FROM bot_turns")).mappings()]
        events = [dict(r) for r in conn.execute(text("SELECT * FROM bot_events")).mappings()]
    return json.dumps([turns, events], default=str)


async def _to_step_up(chat: Chat, kind: str) -> dict[str, Any]:
    reply = await chat.send("pay the water bill")
    assert "Pay" in chat.titles()[0], (reply, chat.titles())
    reply = await chat.press("Pay")
    assert "check it's you" in reply, reply
    if any(kind in t.lower() for t in chat.titles()):
        reply = await chat.press(kind)
    challenge = _state(chat.engine, chat.resident_id)["verification"]
    assert challenge and challenge["kind"] == kind, challenge
    return dict(challenge)


async def test_face_video_note_with_the_challenged_moves_pays(
    make_engine: Callable[..., Any], seeded: Any, shared_data: Path
) -> None:
    from biometrics.face.images import load_image
    from biometrics.face.service import enroll
    from biometrics.face.settings import FaceSettings
    from tests.face.synth import face_crop, motion_clip

    engine = make_engine(step_up_threshold="1.00")
    resident_id = seeded.roles["payer"]["resident_id"]
    obama = _pair_photos(shared_data, "barack_obama")
    store = templates(engine)
    enroll(store, resident_id, [obama[0], obama[2]], actor="staff:test")
    chat = Chat(engine, resident_id)
    try:
        challenge = await _to_step_up(chat, "face")
        motions = challenge["params"]["motion"].split(",")
        assert motions and all(m in ("turn_left", "turn_right", "look_up") for m in motions)
        base = face_crop(load_image(obama[1], FaceSettings()).rgb)
        clip = motion_clip(base, motions)
        reply = await chat.send(files=(Attachment("video", clip, "note.mp4", "video/mp4"),))
        assert "Paid" in reply, reply
        [attempt] = [a for a in _verification_attempts(engine) if a["kind"] == "face"]
        assert attempt["decision"] == "accept" and attempt["liveness"] is True, attempt
        assert isinstance(attempt["score"], float) and attempt["threshold"] is not None
        assert attempt.get("requires_also") is None, "a live video needs no PIN as well"
        log = _log(engine)
        assert clip[:48].hex() not in log and "ftyp" not in log
        vectors = store.load(resident_id, "face")
        assert vectors is not None
        assert all(f"{float(v):.6f}"[:8] not in log for v in vectors[0][:8]), "no template"
    finally:
        await engine.billing.aclose()


async def test_voice_note_of_the_challenged_digits_pays_and_other_digits_do_not(
    make_engine: Callable[..., Any], seeded: Any
) -> None:
    from bench.voice_synth import spoken_digits
    from biometrics.voice.enrollment import EnrollmentSample, enroll

    engine = make_engine(step_up_threshold="1.00")
    resident_id = seeded.roles["payer"]["resident_id"]
    store = templates(engine)
    samples = [
        EnrollmentSample(spoken_digits(p, seed=i, **VOICE), p) for i, p in enumerate(PROMPTS)
    ]
    enroll(store, resident_id, samples, actor="staff:test")
    chat = Chat(engine, resident_id)
    try:
        challenge = await _to_step_up(chat, "voice")
        digits = challenge["params"]["digits"].replace(" ", "")
        assert digits.isdigit()
        wrong = "".join(str((int(d) + 5) % 10) for d in digits)
        reply = await chat.send(files=(audio(spoken_digits(wrong, seed=21, **VOICE)),))
        assert "Paid" not in reply, reply
        challenge = _state(engine, resident_id)["verification"]
        if challenge is None or challenge["kind"] != "voice":
            pytest.fail(f"a wrong-digits attempt should leave a voice challenge: {reply}")
        digits = challenge["params"]["digits"].replace(" ", "")
        reply = await chat.send(files=(audio(spoken_digits(digits, seed=22, **VOICE)),))
        assert "Paid" in reply, reply
        attempts = [a for a in _verification_attempts(engine) if a["kind"] == "voice"]
        assert [a["decision"] for a in attempts][-1] == "accept", attempts
        assert attempts[0]["decision"] != "accept" and attempts[0]["reason"] == "wrong_digits"
        for a in attempts:
            assert set(a) >= {"kind", "decision", "score", "threshold"}
        log = _log(engine)
        assert "RIFF" not in log and "template" not in log.lower().replace("templates", "")
    finally:
        await engine.billing.aclose()
