"""Voice notes decoded in a pool of lower-priority child processes (bot/voice_input.py).

Real espeak-ng speech, real pocketsphinx in real child processes; a child is killed
with SIGKILL to show that a crash costs the notes it held a clear answer, and nothing
more.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from billtalk.db import make_engine
from bot.engine import DialogueEngine
from bot.messages import Attachment, IncomingMessage
from bot.settings import DialogueSettings
from bot.store import ConversationStore, ensure_schema
from bot.voice_input import DECODER_FAILED, VoiceInput
from tests.actions.fakes import FakeBillingClient
from tests.billtalk.test_priority import scheduling_of_thread as scheduling_of
from tests.billtalk.test_priority import threads_of
from tests.bot.test_engine import Clock, ScriptedNlu
from tests.channels.telegram.helpers import ogg_note


@pytest.fixture(scope="module")
def note(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return ogg_note("how much do I owe", tmp_path_factory.mktemp("voice"))


@pytest.fixture
async def voice() -> AsyncIterator[VoiceInput]:
    vi = VoiceInput("process")
    yield vi
    await asyncio.to_thread(vi.close)


async def _stopped_child(voice: VoiceInput, note: bytes) -> int:
    """Warm the pool with one note, then SIGSTOP its child: a note sent now waits in it."""
    assert (await voice.transcribe(Attachment("voice", note))).text
    [pid] = voice.child_pids()
    os.kill(pid, signal.SIGSTOP)
    return pid


async def _until(condition: object, timeout: float = 10.0) -> None:
    for _ in range(int(timeout / 0.01)):
        if condition():  # type: ignore[operator]
            return
        await asyncio.sleep(0.01)
    raise AssertionError("timed out")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_the_default_is_a_thread_until_a_runtime_prefers_processes() -> None:
    default, pinned = VoiceInput(), VoiceInput("thread")
    assert default.decoding == "thread"
    default.prefer_processes()
    pinned.prefer_processes()
    assert (default.decoding, pinned.decoding) == ("process", "thread")
    assert VoiceInput("process").decoding == "process"


async def test_a_child_process_decodes_real_speech_at_a_lower_priority(
    voice: VoiceInput, note: bytes
) -> None:
    heard = await voice.transcribe(Attachment("voice", note))
    assert heard.error is None and not heard.weak
    assert heard.text == "how much do i owe"
    [pid] = voice.child_pids()
    assert pid != os.getpid()
    mine = os.getpriority(os.PRIO_PROCESS, 0)
    assert os.getpriority(os.PRIO_PROCESS, pid) == min(19, mine + 10)
    # and in the idle class: it runs only where no normal-priority thread wants a core
    assert scheduling_of(pid) == ("idle", min(19, mine + 10))
    # every thread of the child, not only its main one (the one that decodes)
    assert set(threads_of(pid).values()) == {("idle", min(19, mine + 10))}
    assert scheduling_of(os.getpid())[0] == "other"  # the parent is left alone
    again = await voice.transcribe(Attachment("voice", note))  # the same, warm child
    assert again.text == heard.text and voice.child_pids() == [pid] and voice.restarts == 0


async def test_without_the_idle_class_the_children_are_only_niced(note: bytes) -> None:
    vi = VoiceInput("process", idle=False)
    try:
        assert (await vi.transcribe(Attachment("voice", note))).text
        [pid] = vi.child_pids()
        mine = os.getpriority(os.PRIO_PROCESS, 0)
        assert set(threads_of(pid).values()) == {("other", min(19, mine + 10))}
    finally:
        await asyncio.to_thread(vi.close)


async def test_a_child_killed_mid_note_fails_that_note_clearly_then_a_fresh_pool_decodes(
    voice: VoiceInput, note: bytes
) -> None:
    pid = await _stopped_child(voice, note)
    pending = asyncio.create_task(voice.transcribe(Attachment("voice", note)))
    await _until(lambda: voice.in_flight == 1)
    os.kill(pid, signal.SIGKILL)
    heard = await asyncio.wait_for(pending, 30)
    assert heard.error == DECODER_FAILED and heard.text == ""
    assert voice.restarts == 1
    fresh = await voice.transcribe(Attachment("voice", note))
    assert fresh.text == "how much do i owe"
    assert voice.child_pids() and pid not in voice.child_pids()


async def test_an_idle_child_that_died_costs_the_next_note_nothing(
    voice: VoiceInput, note: bytes
) -> None:
    assert (await voice.transcribe(Attachment("voice", note))).text
    [pid] = voice.child_pids()
    os.kill(pid, signal.SIGKILL)
    await _until(lambda: not _alive(pid) or voice.child_pids() != [pid])
    await asyncio.sleep(0.2)  # the pool's manager thread notices the dead child
    heard = await voice.transcribe(Attachment("voice", note))
    assert heard.text == "how much do i owe"
    assert voice.restarts == 1


async def test_close_stops_the_children(note: bytes) -> None:
    vi = VoiceInput("process")
    await vi.transcribe(Attachment("voice", note))
    [pid] = vi.child_pids()
    await asyncio.to_thread(vi.close)
    assert not _alive(pid)
    assert vi.child_pids() == []


async def test_the_resident_is_told_to_send_again_when_the_decoder_dies(
    tmp_path: Path, note: bytes
) -> None:
    url = f"sqlite:///{tmp_path / 'bot.db'}"
    ensure_schema(url)
    nlu = ScriptedNlu()
    nlu.add("how much do i owe", [("check_balance", 0.95)])
    engine = DialogueEngine(
        ConversationStore(make_engine(url)),
        FakeBillingClient(),
        nlu,
        settings=DialogueSettings(voice_decoding="process"),
        clock=Clock(),
        registry=None,
    )

    def voice_message() -> IncomingMessage:
        return IncomingMessage(
            channel="test",
            external_user_id="u1",
            resident_id="r-1",
            attachments=(Attachment("voice", note, mime_type="audio/ogg"),),
        )

    try:
        pid = await _stopped_child(engine.voice_input, note)
        pending = asyncio.create_task(engine.handle(voice_message()))
        await _until(lambda: engine.voice_input.in_flight == 1)
        os.kill(pid, signal.SIGKILL)
        replies = await asyncio.wait_for(pending, 30)
        assert "went wrong while I was listening" in replies[0].text
        answered = await engine.handle(voice_message())  # sent again: a fresh child hears it
        assert "went wrong" not in answered[0].text and "couldn't" not in answered[0].text
        assert engine.voice_input.restarts == 1
    finally:
        await asyncio.to_thread(engine.voice_input.close)
