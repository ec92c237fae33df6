"""Voice notes, photos and round video notes through the real PTB bot and the stand-in.

Real espeak-ng speech encoded as OGG/Opus (as Telegram sends voice notes), real
faces from ``../shared/data/faces`` (a photo, and a video note doing the
challenged head moves), the real verifiers and template store.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from tests.channels.telegram.conftest import new_chat
from tests.channels.telegram.helpers import AMOUNT, TgChat, joined, ogg_note, silent_ogg

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def linked(runtime: Any, standin: Any, seeded: Any, role: str = "payer") -> TgChat:
    chat = TgChat(runtime, standin, new_chat())
    resident = seeded.roles[role]["resident_id"]
    code = (await runtime.engine.billing.create_link_code(resident)).code
    assert "linked" in await chat.send(f"/start {code}")
    return chat


def state_of(runtime: Any, chat: TgChat) -> dict[str, Any]:
    store = runtime.engine.store
    row = store.get_conversation(
        store.conversation_id_for("telegram", str(chat.chat_id), None, runtime.engine.clock())
    )
    return dict(json.loads(row.state))


async def test_a_voice_note_is_fetched_and_answered_like_text(
    runtime: Any, standin: Any, seeded: Any, tmp_path: Path
) -> None:
    chat = await linked(runtime, standin, seeded)
    note = ogg_note("how much do I owe", tmp_path)
    assert note[:4] == b"OggS"
    downloads = len(standin.downloads)
    calls = await chat.do(lambda: standin.voice(chat.chat_id, note))
    reply = joined(calls)
    assert AMOUNT.search(reply) and ("owe" in reply or "total" in reply), reply
    assert len(standin.downloads) == downloads + 1
    assert standin.calls_of("getFile")
    assert standin.calls_of("sendChatAction", chat.chat_id)
    # The Telegram runtime decodes in a lower-priority child process, not in the bot's own.
    voice = runtime.engine.voice_input
    assert voice.decoding == "process" and voice.child_pids()
    assert os.getpid() not in voice.child_pids()


async def test_silent_and_corrupt_voice_notes_get_a_clear_reply(
    runtime: Any, standin: Any, seeded: Any
) -> None:
    chat = await linked(runtime, standin, seeded)
    for data in (silent_ogg(), b"OggS\x00\x02 not really opus" * 20):
        reply = joined(await chat.do(lambda d=data: standin.voice(chat.chat_id, d)))
        assert reply and not AMOUNT.search(reply), reply
        assert "recording" in reply.lower() or "hear" in reply.lower(), reply


async def test_a_20_mb_file_is_refused_by_its_declared_size_before_any_download(
    runtime: Any, standin: Any, seeded: Any
) -> None:
    chat = await linked(runtime, standin, seeded)
    get_files, downloads = len(standin.calls_of("getFile")), len(standin.downloads)
    big = 20 * 1024 * 1024
    for inject in (
        lambda: standin.voice(chat.chat_id, b"OggS", size=big),
        lambda: standin.photo(chat.chat_id, b"\xff\xd8", size=big),
        lambda: standin.video_note(chat.chat_id, b"\x00", size=big),
    ):
        reply = joined(await chat.do(inject))
        assert "too big" in reply and "20.0 MB" in reply, reply
    assert len(standin.calls_of("getFile")) == get_files
    assert len(standin.downloads) == downloads


async def _face_step_up(runtime: Any, standin: Any, seeded: Any, shared_data: Path) -> TgChat:
    from biometrics.face.service import enroll
    from biometrics.store import TemplateStore
    from bot.verifiers.pin import hash_pin
    from tests.conversations.test_enrollment import _pair_photos

    resident = seeded.roles["other"]["resident_id"]
    engine = runtime.engine
    engine.store.set_pin_hash(resident, hash_pin("482916"), engine.clock())
    store = TemplateStore(engine.store.engine)
    if not store.is_enrolled(resident, "face"):
        obama = _pair_photos(shared_data, "barack_obama")
        enroll(store, resident, [obama[0], obama[2]], actor="staff:test")
    chat = await linked(runtime, standin, seeded, role="other")
    reply = await chat.send("pay 210 for property fee")
    assert "confirm" in reply.lower(), reply
    reply = await chat.press("Pay")
    if any("face" in t.lower() for t in chat.titles()):
        reply = await chat.press("face")
    challenge = state_of(runtime, chat)["verification"]
    assert challenge and challenge["kind"] == "face", (reply, challenge)
    return chat


async def test_photos_with_no_face_or_two_faces_get_clear_replies_and_pay_nothing(
    runtime: Any, standin: Any, seeded: Any, shared_data: Path
) -> None:
    import io

    from PIL import Image

    chat = await _face_step_up(runtime, standin, seeded, shared_data)
    blank = io.BytesIO()
    Image.new("RGB", (640, 480), (200, 180, 160)).save(blank, "JPEG")
    group = (shared_data / "faces/ageitgey_face_recognition/examples/two_people.jpg").read_bytes()
    for data in (blank.getvalue(), group):
        reply = joined(await chat.do(lambda d=data: standin.photo(chat.chat_id, d)))
        assert reply and "Paid" not in reply, reply
        assert "face" in reply.lower(), reply
    reply = await chat.send("cancel")
    assert "Paid" not in reply


async def test_a_round_video_note_doing_the_challenged_moves_pays(
    runtime: Any, standin: Any, seeded: Any, shared_data: Path
) -> None:
    from biometrics.face.images import load_image
    from biometrics.face.settings import FaceSettings
    from tests.conversations.test_enrollment import _pair_photos
    from tests.face.synth import face_crop, motion_clip

    chat = await _face_step_up(runtime, standin, seeded, shared_data)
    challenge = state_of(runtime, chat)["verification"]
    motions = challenge["params"]["motion"].split(",")
    obama = _pair_photos(shared_data, "barack_obama")
    clip = motion_clip(face_crop(load_image(obama[1], FaceSettings()).rgb), motions)
    reply = joined(await chat.do(lambda: standin.video_note(chat.chat_id, clip)))
    assert "Paid" in reply and "210.00" in reply, reply
    log = json.dumps(
        [
            t.__dict__
            for t in runtime.engine.store.turns(
                runtime.engine.store.conversation_id_for(
                    "telegram", str(chat.chat_id), None, runtime.engine.clock()
                )
            )
        ],
        default=str,
    )
    assert clip[:48].hex() not in log and "ftyp" not in log


async def test_a_voice_note_answers_a_voice_step_up(
    runtime: Any, standin: Any, seeded: Any
) -> None:
    from bench.voice_synth import spoken_digits
    from biometrics.store import TemplateStore
    from biometrics.voice.enrollment import EnrollmentSample, enroll
    from speech.audio import encode_audio, load_audio
    from tests.conversations.test_enrollment import PROMPTS

    voice = {"voice": "en-us", "speed": 120, "snr_db": 30.0}
    role = "payer"
    resident = seeded.roles[role]["resident_id"]
    store = TemplateStore(runtime.engine.store.engine)
    if not store.is_enrolled(resident, "voice"):
        samples = [
            EnrollmentSample(spoken_digits(p, seed=i, **voice), p) for i, p in enumerate(PROMPTS)
        ]
        enroll(store, resident, samples, actor="staff:test")
    chat = await linked(runtime, standin, seeded, role=role)
    reply = await chat.send("pay 205 for property fee")
    if "confirm" not in reply.lower():
        pytest.skip(f"the payer has no 205.00 of property fee left to pay: {reply}")
    await chat.press("Pay")
    if any("voice" in t.lower() for t in chat.titles()):
        await chat.press("voice")
    challenge = state_of(runtime, chat)["verification"]
    assert challenge and challenge["kind"] == "voice", challenge
    digits = challenge["params"]["digits"].replace(" ", "")
    wav = spoken_digits(digits, seed=22, **voice)
    note = encode_audio(load_audio(wav, trim=False).samples, "ogg")
    reply = joined(await chat.do(lambda: standin.voice(chat.chat_id, note)))
    assert "Paid" in reply and "205.00" in reply, reply


async def test_face_enrollment_with_selfies_sent_as_photos(
    runtime: Any, standin: Any, seeded: Any, shared_data: Path
) -> None:
    from biometrics.store import TemplateStore
    from tests.conversations.test_enrollment import PIN, _pair_photos

    resident = seeded.roles["clear"]["resident_id"]
    chat = await linked(runtime, standin, seeded, role="clear")
    reply = await chat.send("I want to enroll my face")
    assert "one-time code" in reply, reply
    staff_code = (await runtime.engine.billing.create_link_code(resident)).code
    reply = await chat.send(staff_code)
    assert "6-digit PIN" in reply, reply
    assert "same PIN again" in await chat.send(PIN)
    reply = await chat.send(PIN)
    assert "PIN is set" in reply, reply
    if "verified" not in reply:
        reply = await chat.send(PIN)
    assert "verified" in reply, reply
    reply = await chat.press("face")
    assert "selfie" in reply, reply
    obama = _pair_photos(shared_data, "barack_obama")
    for n, path in enumerate((obama[0], obama[2]), start=1):
        reply = joined(await chat.do(lambda p=path: standin.photo(chat.chat_id, p.read_bytes())))
        assert f"{n} of at most 5" in reply, reply
    reply = await chat.send("done")
    assert "face is enrolled" in reply, reply
    assert TemplateStore(runtime.engine.store.engine).is_enrolled(resident, "face")
    log = json.dumps(
        [
            t.__dict__
            for t in runtime.engine.store.turns(
                runtime.engine.store.conversation_id_for(
                    "telegram", str(chat.chat_id), None, runtime.engine.clock()
                )
            )
        ],
        default=str,
    )
    assert PIN not in log and "JFIF" not in log
