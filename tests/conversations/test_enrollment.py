"""Biometric enrollment from the conversation, with real parts.

Real NLU, real seeded billing database, real face photos from
``../shared/data/faces`` (``manifest.csv`` role ``pair``), espeak-ng voices, the
real template store (encrypted, audited) and the real verifiers.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from bot.messages import Attachment, IncomingMessage, OutgoingMessage

PIN = "482916"
#: Voice enrollment prompts (6 digits, as the product asks) that espeak's en-us voice
#: passes with a wide margin (likelihood scores -0.5 to +0.8; the threshold is -4.5).
PROMPTS = ["471902", "028365", "556174", "903728", "184250"]


def _pair_photos(shared_data: Path, person: str) -> list[Path]:
    """The ``pair`` photos of one person in the shared face set (each a distinct photo)."""
    faces = shared_data / "faces"
    with (faces / "manifest.csv").open(encoding="utf-8") as fh:
        rows = [r for r in csv.DictReader(fh) if r["role"] == "pair" and r["person"] == person]
    paths = [faces / r["path"] for r in rows]
    assert len(paths) >= 3, f"need three pair photos of {person}"
    return paths


class Chat:
    """One resident talking to the engine, as a channel that accepts files."""

    def __init__(self, engine: Any, resident_id: str) -> None:
        self.engine = engine
        self.resident_id = resident_id
        self.last: list[OutgoingMessage] = []
        self.pressed: dict[str, str] = {}

    async def send(
        self,
        text: str | None = None,
        *,
        files: tuple[Attachment, ...] = (),
        payload: str | None = None,
    ) -> str:
        self.last = await self.engine.handle(
            IncomingMessage(
                channel="telegram",
                external_user_id=self.resident_id,
                resident_id=self.resident_id,
                text=text,
                button_payload=payload,
                attachments=files,
                language="en",
            )
        )
        return "\n".join(m.text for m in self.last)

    async def press(self, title_fragment: str) -> str:
        for message in self.last:
            for button in message.buttons:
                if title_fragment.lower() in button.title.lower():
                    self.pressed[title_fragment] = button.payload
                    return await self.send(payload=button.payload)
        raise AssertionError(f"no button {title_fragment!r} in {self.last!r}")

    def titles(self) -> list[str]:
        return [b.title for m in self.last for b in m.buttons]

    def log_text(self) -> str:
        with self.engine.db.connect() as conn:
            rows = conn.execute(text("SELECT * FROM bot_turns")).mappings().all()
        return json.dumps([dict(r) for r in rows], default=str)


def image(path: Path | bytes, name: str = "selfie.jpg") -> Attachment:
    data = path if isinstance(path, bytes) else path.read_bytes()
    return Attachment("image", data, name, "image/jpeg")


def audio(data: bytes) -> Attachment:
    return Attachment("voice", data, "note.wav", "audio/wav")


def templates(engine: Any) -> Any:
    from biometrics.store import TemplateStore

    return TemplateStore(engine.store.engine)


async def staff_code(chat: Chat) -> str:
    """A fresh one-time code the property office issues for the resident (a link code)."""
    return str((await chat.engine.billing.create_link_code(chat.resident_id)).code)


async def _verified_enrollment_menu(chat: Chat) -> None:
    """From nothing: set a PIN, pass the PIN step-up, reach the Face/Voice/Delete buttons."""
    reply = await chat.send("I want to enroll my face")
    assert "set up a pin" in reply.lower() and "one-time code" in reply.lower(), reply
    assert "6-digit PIN" in await chat.send(await staff_code(chat))
    assert "same PIN again" in await chat.send(PIN)
    reply = await chat.send(PIN)
    assert "PIN is set" in reply and "needs your PIN first" in reply, reply
    reply = await chat.send(PIN)
    assert "you're verified" in reply, reply
    titles = chat.titles()
    assert any("face" in t for t in titles) and any("voice" in t for t in titles), titles
    assert any("Delete my biometrics" in t for t in titles), titles


async def test_face_enrollment_then_a_large_payment_verified_with_a_selfie_and_the_pin(
    make_engine: Callable[..., Any], seeded: Any, shared_data: Path
) -> None:
    engine = make_engine(step_up_threshold="1.00")
    resident_id = seeded.roles["payer"]["resident_id"]
    chat = Chat(engine, resident_id)
    faces = shared_data / "faces"
    obama = _pair_photos(shared_data, "barack_obama")

    await _verified_enrollment_menu(chat)
    reply = await chat.press("face")
    assert "send 1 to 5 clear selfies" in reply, reply

    # rejected photos get clear re-asks and are not kept
    group = faces / "ageitgey_face_recognition/examples/two_people.jpg"
    reply = await chat.send(files=(image(group),))
    assert "more than one face" in reply and "send another selfie" in reply, reply
    reply = await chat.send(files=(image(b"\x89PNG\r\n\x1a\n not really a picture"),))
    assert "could not be read as an image" in reply, reply
    assert not templates(engine).is_enrolled(resident_id, "face")

    reply = await chat.send(files=(image(obama[0]),))
    assert "1 of at most 5" in reply, reply
    reply = await chat.send(files=(image(obama[2]),))
    assert "2 of at most 5" in reply, reply
    reply = await chat.send("done")
    assert "face is enrolled (2 photo(s))" in reply, reply
    store = templates(engine)
    assert store.is_enrolled(resident_id, "face")
    trail = store.audit_trail(resident_id)
    assert any(
        e["action"] == "enroll" and e["kind"] == "face" and e["actor"] == f"resident:{resident_id}"
        for e in trail
    ), trail

    # a payment above the threshold: verify with a still selfie (another photo) + PIN
    reply = await chat.send("pay the water bill")
    assert "Pay" in chat.titles()[0], (reply, chat.titles())
    reply = await chat.press("Pay")
    assert "verify" in reply.lower(), reply
    titles = chat.titles()
    assert any("face" in t for t in titles) and any("PIN" in t for t in titles), titles
    reply = await chat.press("face")
    assert "video" in reply.lower() or "selfie" in reply.lower(), reply
    reply = await chat.send(files=(image(obama[1]),))
    assert "6-digit PIN" in reply and "Paid" not in reply, reply
    reply = await chat.send(PIN)
    assert "Paid" in reply, reply

    log = chat.log_text()
    assert PIN not in log
    attempts = _verification_attempts(engine)
    assert {"kind": "face", "decision": "accept", "requires_also": "pin"}.items() <= attempts[
        -2
    ].items(), attempts
    assert attempts[-1]["kind"] == "pin" and attempts[-1]["decision"] == "accept", attempts


async def test_enrollment_needs_a_pin_step_up_in_this_session(
    make_engine: Callable[..., Any], seeded: Any, shared_data: Path
) -> None:
    engine = make_engine()
    resident_id = seeded.roles["payer"]["resident_id"]
    chat = Chat(engine, resident_id)
    obama = _pair_photos(shared_data, "barack_obama")
    engine.store.set_pin_hash(resident_id, _hash(PIN), engine.clock())

    reply = await chat.send("set up face verification")
    assert "needs your PIN first" in reply and "6-digit PIN" in reply, reply
    assert not chat.titles()
    # a photo or a forged "Face" button before the step-up changes nothing
    reply = await chat.send(files=(image(obama[0]),))
    assert "6-digit PIN" in reply, reply
    # forged buttons carry the right session marker, so only the missing step-up refuses them
    state = _state(engine, resident_id)
    forged = f'/enroll_kind{{"kind": "face", "s": "{state["session_id"][:8]}"}}'
    reply = await chat.send(payload=forged)
    assert "no longer valid" in reply, reply
    forged = f'/enroll_delete_yes{{"s": "{state["session_id"][:8]}"}}'
    reply = await chat.send(payload=forged)
    assert "no longer valid" in reply, reply
    # a wrong PIN is refused and counted
    reply = await chat.send("508317")
    assert "didn't match" in reply and "4 attempt" in reply, reply
    assert not chat.titles()
    assert not templates(engine).is_enrolled(resident_id, "face")
    assert "508317" not in chat.log_text()


async def test_delete_removes_every_template_and_is_audited(
    make_engine: Callable[..., Any], seeded: Any
) -> None:
    import numpy as np

    engine = make_engine()
    resident_id = seeded.roles["payer"]["resident_id"]
    other_id = seeded.roles["other"]["resident_id"]
    store = templates(engine)
    rng = np.random.default_rng(1)
    store.save(resident_id, "face", rng.normal(size=(2, 128)), actor="staff:test")
    store.save(resident_id, "voice", rng.normal(size=(1, 256)), actor="staff:test")
    store.save(other_id, "face", rng.normal(size=(1, 128)), actor="staff:test")
    chat = Chat(engine, resident_id)

    await _verified_enrollment_menu(chat)
    reply = await chat.press("Delete my biometrics")
    assert "Delete your enrolled face and voice?" in reply, reply
    reply = await chat.press("Yes, delete")
    assert "templates are deleted" in reply, reply
    assert not store.is_enrolled(resident_id, "face")
    assert not store.is_enrolled(resident_id, "voice")
    assert store.is_enrolled(other_id, "face")  # nobody else's
    trail = store.audit_trail(resident_id)
    assert any(
        e["action"] == "delete" and e["actor"] == f"resident:{resident_id}" for e in trail
    ), trail
    # a replayed "Yes, delete" is not a second deletion
    reply = await chat.send(payload=chat.pressed["Yes, delete"])
    assert "templates are deleted" not in reply and "no longer valid" in reply, reply
    assert [e["action"] for e in store.audit_trail(resident_id)].count("delete") == 1


async def test_cancel_during_face_enrollment_keeps_nothing(
    make_engine: Callable[..., Any], seeded: Any, shared_data: Path
) -> None:
    engine = make_engine()
    resident_id = seeded.roles["payer"]["resident_id"]
    chat = Chat(engine, resident_id)
    obama = _pair_photos(shared_data, "barack_obama")
    await _verified_enrollment_menu(chat)
    await chat.press("face")
    reply = await chat.send(files=(image(obama[0]),))
    assert "1 of at most 5" in reply
    reply = await chat.send("cancel")
    assert "Enrollment cancelled" in reply, reply
    reply = await chat.send("done")
    assert "face is enrolled" not in reply
    assert not templates(engine).is_enrolled(resident_id, "face")


async def test_voice_enrollment_with_spoken_prompts(
    make_engine: Callable[..., Any], seeded: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import biometrics.voice.enrollment as voice_enrollment
    from bench.voice_synth import spoken_digits

    # Fixed prompts (the ones tests/voice uses): random ones make the test depend on
    # how well espeak's rendering of those particular digits is recognised.
    monkeypatch.setattr(voice_enrollment, "enrollment_prompts", lambda *a, **k: list(PROMPTS))
    engine = make_engine()
    resident_id = seeded.roles["payer"]["resident_id"]
    chat = Chat(engine, resident_id)
    voice = {"voice": "en-us", "speed": 120, "snr_db": 30.0}

    await _verified_enrollment_menu(chat)
    reply = await chat.press("voice")
    assert "send 5 voice notes" in reply, reply
    # the wrong digits are refused and the same prompt is asked again
    prompt = _prompted_digits(reply)
    wrong = "".join(str((int(d) + 5) % 10) for d in prompt)
    reply = await chat.send(files=(audio(spoken_digits(wrong, seed=9, **voice)),))
    assert "didn't hear the digits I asked for" in reply, reply
    assert _prompted_digits(reply) == prompt
    # silence is refused too
    reply = await chat.send(files=(audio(_silence()),))
    assert "couldn't use that recording" in reply, reply
    assert _prompted_digits(reply) == prompt
    for i in range(5):
        reply = await chat.send(files=(audio(spoken_digits(prompt, seed=i, **voice)),))
        if i < 4:
            assert f"({i + 1} of 5)" in reply, reply
            prompt = _prompted_digits(reply)
    assert "voice is enrolled" in reply, reply
    store = templates(engine)
    assert store.is_enrolled(resident_id, "voice")
    assert any(
        e["action"] == "enroll" and e["kind"] == "voice" for e in store.audit_trail(resident_id)
    )


async def test_voice_enrollment_with_old_short_prompts_starts_over(
    make_engine: Callable[..., Any], seeded: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A session holding 4-digit prompts (issued before prompts became 6 digits, which
    the likelihood check needs) gets fresh prompts instead of refusing every recording."""
    import biometrics.voice.enrollment as voice_enrollment
    from bench.voice_synth import spoken_digits

    issued = iter([["4719", "0283", "5561", "9037", "1842"], list(PROMPTS)])
    monkeypatch.setattr(voice_enrollment, "enrollment_prompts", lambda *a, **k: next(issued))
    engine = make_engine()
    chat = Chat(engine, seeded.roles["payer"]["resident_id"])
    voice = {"voice": "en-us", "speed": 120, "snr_db": 30.0}

    await _verified_enrollment_menu(chat)
    reply = await chat.press("voice")
    assert _prompted_digits(reply) == "4719", reply
    reply = await chat.send(files=(audio(spoken_digits("4719", seed=0, **voice)),))
    assert "send 5 voice notes" in reply and "Recording 1 of 5" in reply, reply
    assert _prompted_digits(reply) == PROMPTS[0], reply
    reply = await chat.send(files=(audio(spoken_digits(PROMPTS[0], seed=0, **voice)),))
    assert "(1 of 5)" in reply, reply


# -- helpers ---------------------------------------------------------------------------


def _hash(pin: str) -> str:
    from bot.verifiers.pin import hash_pin

    return hash_pin(pin)


def _state(engine: Any, resident_id: str) -> dict[str, Any]:
    with engine.db.connect() as conn:
        row = conn.execute(
            text("SELECT state FROM bot_conversations WHERE resident_id = :r"), {"r": resident_id}
        ).one()
    value = row[0]
    return value if isinstance(value, dict) else json.loads(value)


def _verification_attempts(engine: Any) -> list[dict[str, Any]]:
    """Every verification attempt in the conversation log, oldest first."""
    with engine.db.connect() as conn:
        rows = conn.execute(text("SELECT verification FROM bot_turns ORDER BY id")).all()
    out: list[dict[str, Any]] = []
    for (value,) in rows:
        out.extend(json.loads(value) if isinstance(value, str) else value or [])
    return out


def _prompted_digits(reply: str) -> str:
    import re

    match = re.search(r'please say "([\d ]+)"', reply)
    assert match, reply
    return match.group(1).replace(" ", "")


def _silence() -> bytes:
    import io
    import wave

    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(b"\x00\x00" * 16000 * 3)
    return buf.getvalue()


async def test_enrollment_speaks_chinese(make_engine: Callable[..., Any], seeded: Any) -> None:
    engine = make_engine()
    resident_id = seeded.roles["payer"]["resident_id"]
    engine.store.set_pin_hash(resident_id, _hash(PIN), engine.clock())
    chat = Chat(engine, resident_id)
    reply = await chat.send("设置人脸验证")
    assert "需要先输入数字密码" in reply, reply
    reply = await chat.send(PIN)
    assert "删除我的生物特征" in chat.titles(), chat.titles()
    reply = await chat.press("删除")
    assert "确定删除" in reply, reply
    reply = await chat.send("取消")
    assert "已取消录入" in reply, reply
