"""A photo or voice note sent before the enrollment form asks for it is kept and used.

Kept encrypted in the dialogue database (``bot.enrollment_media``, bound to the
conversation and session), the resident is told so, and the step that needs it
uses it. Real NLU, real seeded database, real photos from ``../shared/data/faces``,
espeak-ng voice notes, the real template store; engines restarted mid-way.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conversations.test_enrollment import (
    PIN,
    PROMPTS,
    Chat,
    _pair_photos,
    _prompted_digits,
    _silence,
    _verified_enrollment_menu,
    audio,
    image,
    staff_code,
    templates,
)
from tests.conversations.test_enrollment_restart import _media_rows

VOICE = {"voice": "en-us", "speed": 120, "snr_db": 30.0}


@pytest.fixture
def fixed_prompts(monkeypatch: pytest.MonkeyPatch) -> None:
    """The voice prompts tests/voice uses (espeak's rendering of them is recognised)."""
    import biometrics.voice.enrollment as voice_enrollment

    monkeypatch.setattr(voice_enrollment, "enrollment_prompts", lambda *a, **k: list(PROMPTS))


def _restart(engine: Any, make_engine: Callable[..., Any]) -> Any:
    """A new worker on the same database (the old one's connections closed)."""
    engine.store.engine.dispose()
    return make_engine()


async def test_a_selfie_sent_while_the_pin_is_set_up_is_used_for_the_face(
    make_engine: Callable[..., Any], seeded: Any, shared_data: Path
) -> None:
    resident_id = seeded.roles["payer"]["resident_id"]
    obama = _pair_photos(shared_data, "barack_obama")
    first = make_engine()
    chat = Chat(first, resident_id)
    reply = await chat.send("I want to enroll my face")
    assert "set up a pin" in reply.lower(), reply
    reply = await chat.send(files=(image(obama[0]),))
    assert "kept your photo" in reply and "one-time code" in reply, reply
    [row] = _media_rows(first)
    assert row["kind"] == "face" and str(row["key"]).endswith(":early")
    assert obama[0].read_bytes()[:4096] not in bytes(row["ciphertext"]), "stored encrypted"
    await first.billing.aclose()

    second = _restart(first, make_engine)  # the rest on another worker
    chat = Chat(second, resident_id)
    assert "6-digit PIN" in await chat.send(await staff_code(chat))
    assert "same PIN again" in await chat.send(PIN)
    reply = await chat.send(PIN)
    assert "PIN is set" in reply and "needs your PIN first" in reply, reply
    reply = await chat.send(PIN)
    assert "you're verified" in reply, reply
    # the kept photo answers "face or voice?" and is the first of the selfies
    assert "received the 1 photo(s) you sent earlier" in reply, reply
    assert "1 of at most 5" in reply, reply
    assert [r["key"].endswith(":early") for r in _media_rows(second)] == [False]
    reply = await chat.send(files=(image(obama[2]),))
    assert "2 of at most 5" in reply, reply
    reply = await chat.send("done")
    assert "face is enrolled (2 photo(s))" in reply, reply
    assert templates(second).is_enrolled(resident_id, "face")
    assert _media_rows(second) == []
    await second.billing.aclose()


async def test_a_selfie_at_the_face_or_voice_question_starts_the_face_enrollment(
    make_engine: Callable[..., Any], seeded: Any, shared_data: Path
) -> None:
    resident_id = seeded.roles["payer"]["resident_id"]
    obama = _pair_photos(shared_data, "barack_obama")
    engine = make_engine()
    chat = Chat(engine, resident_id)
    await _verified_enrollment_menu(chat)
    reply = await chat.send(files=(image(obama[0]),))
    assert "send 1 to 5 clear selfies" in reply and "1 of at most 5" in reply, reply
    assert "kept your photo" not in reply, "used at once, not announced as kept"
    reply = await chat.send("done")
    assert "face is enrolled (1 photo(s))" in reply, reply
    assert _media_rows(engine) == []
    await engine.billing.aclose()


async def test_cancel_deletes_what_was_sent_early(
    make_engine: Callable[..., Any], seeded: Any, shared_data: Path
) -> None:
    resident_id = seeded.roles["payer"]["resident_id"]
    obama = _pair_photos(shared_data, "barack_obama")
    engine = make_engine()
    chat = Chat(engine, resident_id)
    await chat.send("I want to enroll my face")
    await chat.send(files=(image(obama[0]),))
    assert len(_media_rows(engine)) == 1
    reply = await chat.send("cancel")
    assert "stopped setting up the PIN" in reply, reply
    assert _media_rows(engine) == []
    await engine.billing.aclose()


async def test_a_voice_note_sent_before_the_prompts_is_never_a_recording(
    make_engine: Callable[..., Any], seeded: Any, fixed_prompts: None
) -> None:
    """Every enrollment recording must read digits the bot chose when it asked: a
    note sent before any prompt (here a real reading of other digits) starts the
    voice enrollment but is not used, and the enrollment still completes after a
    restart."""
    from bench.voice_synth import spoken_digits

    resident_id = seeded.roles["payer"]["resident_id"]
    first = make_engine()
    chat = Chat(first, resident_id)
    await _verified_enrollment_menu(chat)
    reply = await chat.send(files=(audio(spoken_digits("9037", seed=11, **VOICE)),))
    assert "send 5 voice notes" in reply, reply
    assert "couldn't use it: each recording must read the digits I show you" in reply, reply
    assert "Recording 1 of 5" in reply and _prompted_digits(reply) == PROMPTS[0], reply
    assert _media_rows(first) == [], "the unprompted note is not kept"
    prompt = PROMPTS[0]
    reply = await chat.send(files=(audio(spoken_digits(prompt, seed=1, **VOICE)),))
    assert "(1 of 5)" in reply, reply
    prompt = _prompted_digits(reply)
    await first.billing.aclose()

    second = _restart(first, make_engine)  # mid voice enrollment
    chat = Chat(second, resident_id)
    for i in range(1, 5):
        reply = await chat.send(files=(audio(spoken_digits(prompt, seed=i + 1, **VOICE)),))
        assert "again" not in reply.lower(), reply
        if i < 4:
            assert f"({i + 1} of 5)" in reply, reply
            prompt = _prompted_digits(reply)
    assert "voice is enrolled" in reply, reply
    assert templates(second).is_enrolled(resident_id, "voice")
    assert _media_rows(second) == []
    await second.billing.aclose()


async def test_an_unusable_early_voice_note_is_explained_and_the_prompts_follow(
    make_engine: Callable[..., Any], seeded: Any, fixed_prompts: None
) -> None:
    resident_id = seeded.roles["payer"]["resident_id"]
    engine = make_engine()
    chat = Chat(engine, resident_id)
    reply = await chat.send("set up voice verification")
    assert "set up a pin" in reply.lower(), reply
    assert "6-digit PIN" in await chat.send(await staff_code(chat))
    assert "same PIN again" in await chat.send(PIN)
    reply = await chat.send(PIN)
    assert "needs your PIN first" in reply, reply
    reply = await chat.send(files=(audio(_silence()),))  # during the PIN step-up
    assert "kept your voice note" in reply and "PIN" in reply, reply
    reply = await chat.send(PIN)
    assert "you're verified" in reply, reply
    assert "voice note you sent earlier, but couldn't use it" in reply, reply
    assert "each recording must read the digits I show you" in reply, reply
    assert "Recording 1 of 5" in reply and _prompted_digits(reply) == PROMPTS[0], reply
    assert _media_rows(engine) == [], "the unusable note is not kept"
    await engine.billing.aclose()
