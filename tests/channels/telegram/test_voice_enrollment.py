"""Voice enrollment in Telegram: the prompts answered with voice notes (OGG/Opus).

Real PTB against the stand-in, the engine's recogniser and the voiceprint enrollment;
the notes are espeak-ng renderings of the prompted digits, encoded as Telegram sends them.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.channels.telegram.conftest import new_chat
from tests.channels.telegram.helpers import TgChat, joined

pytestmark = pytest.mark.asyncio(loop_scope="module")


def ogg(wav: bytes) -> bytes:
    from speech.audio import encode_audio, load_audio

    return encode_audio(load_audio(wav, trim=False).samples, "ogg")


async def test_voice_enrollment_answered_with_voice_notes(
    runtime: Any, standin: Any, seeded: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import biometrics.voice.enrollment as voice_enrollment
    from bench.voice_synth import spoken_digits
    from biometrics.store import TemplateStore
    from tests.conversations.test_enrollment import PIN, PROMPTS, _prompted_digits

    # Fixed prompts that espeak renders clearly (random ones make the test depend on luck).
    monkeypatch.setattr(voice_enrollment, "enrollment_prompts", lambda *a, **k: list(PROMPTS))
    voice = {"voice": "en-us", "speed": 120, "snr_db": 30.0}
    resident = seeded.roles["clear"]["resident_id"]
    chat = TgChat(runtime, standin, new_chat())
    code = (await runtime.engine.billing.create_link_code(resident)).code
    assert "linked" in await chat.send(f"/start {code}")
    reply = await chat.send("I want to enroll my voice")
    assert "one-time code" in reply, reply
    staff_code = (await runtime.engine.billing.create_link_code(resident)).code
    assert "6-digit PIN" in await chat.send(staff_code)
    assert "same PIN again" in await chat.send(PIN)
    reply = await chat.send(PIN)
    if "verified" not in reply:
        reply = await chat.send(PIN)
    assert "verified" in reply, reply
    reply = await chat.press("voice")
    assert "send 5 voice notes" in reply, reply
    prompt = _prompted_digits(reply)
    wrong = "".join(str((int(d) + 5) % 10) for d in prompt)
    note = ogg(spoken_digits(wrong, seed=9, **voice))
    reply = joined(await chat.do(lambda: standin.voice(chat.chat_id, note)))
    assert "didn't hear the digits I asked for" in reply, reply
    for i in range(5):
        note = ogg(spoken_digits(prompt, seed=i, **voice))
        reply = joined(await chat.do(lambda n=note: standin.voice(chat.chat_id, n)))
        if i < 4:
            assert f"({i + 1} of 5)" in reply, reply
            prompt = _prompted_digits(reply)
    assert "voice is enrolled" in reply, reply
    assert TemplateStore(runtime.engine.store.engine).is_enrolled(resident, "voice")
