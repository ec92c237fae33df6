"""The engine's channel-facing core: button ids, redeliveries, voice input, the push path.

Real seeded database, real NLU, real speech (espeak-ng audio through pocketsphinx).
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from bot.channels.base import ChannelCapabilities, ChannelSendError, ChannelUnreachable
from bot.messages import Attachment, IncomingMessage, OutgoingMessage
from bot.outbox import OutboxRow, OutboxSender, pending_count, staff_reply


def _msg(resident: str, text: str | None = None, **kw: Any) -> IncomingMessage:
    return IncomingMessage(
        channel="telegram",
        external_user_id=f"tg-{resident}",
        resident_id=resident,
        text=text,
        **kw,
    )


class _Recording:
    """A channel that records what it was given, failing on demand."""

    name = "telegram"
    capabilities = ChannelCapabilities()

    def __init__(self) -> None:
        self.sent: list[tuple[str, OutgoingMessage]] = []
        self.fail_with: Exception | None = None

    async def send(self, user: str, message: OutgoingMessage) -> None:
        if self.fail_with is not None:
            raise self.fail_with
        self.sent.append((user, message))


async def test_buttons_carry_short_ids_and_a_press_by_id_pays_once(
    make_engine: Any, seeded: Any
) -> None:
    engine = make_engine()
    resident = seeded.roles["payer"]["resident_id"]
    [confirm] = await engine.handle(_msg(resident, "pay the water bill"))
    assert confirm.buttons, confirm.text
    for button in confirm.buttons:
        assert 0 < len(button.id.encode()) <= 16
    pay = confirm.buttons[0].id
    [paid] = await engine.handle(_msg(resident, button_id=pay))
    assert "R20" in paid.text  # a receipt number
    # the same press again (a double tap, a replayed callback): nothing is paid
    [again] = await engine.handle(_msg(resident, button_id=pay))
    assert "expired" in again.text
    payments = await engine.billing.list_payments(seeded.roles["payer"]["household_id"])
    assert sum(1 for p in payments if p.utility == "water") == 1


async def test_an_id_never_issued_does_nothing(make_engine: Any, seeded: Any) -> None:
    engine = make_engine()
    resident = seeded.roles["payer"]["resident_id"]
    await engine.handle(_msg(resident, "pay the water bill"))
    [reply] = await engine.handle(_msg(resident, button_id="forged-id"))
    assert "expired" in reply.text
    # the real buttons still work
    row = engine.store.get_conversation(
        engine.store.conversation_id_for("telegram", f"tg-{resident}", resident, engine.clock())
    )
    assert row is not None and '"buttons"' in row.state


async def test_a_redelivered_message_acts_once(make_engine: Any, seeded: Any) -> None:
    engine = make_engine()
    resident = seeded.roles["payer"]["resident_id"]
    first = await engine.handle(_msg(resident, "how much do I owe?", delivery_id="tg:1:100"))
    assert first and "¥" in first[0].text
    assert await engine.handle(_msg(resident, "how much do I owe?", delivery_id="tg:1:100")) == []
    assert await engine.handle(_msg(resident, "how much do I owe?", delivery_id="tg:1:101"))


async def test_a_redelivery_whose_replies_may_be_unsent_gets_the_recorded_replies(
    make_engine: Any, seeded: Any
) -> None:
    engine = make_engine()
    resident = seeded.roles["payer"]["resident_id"]
    first = await engine.handle(_msg(resident, "how much do I owe?", delivery_id="tg:1:300"))
    conversation = engine.store.conversation_id_for(
        "telegram", f"tg-{resident}", resident, engine.clock()
    )
    turns = engine.store.get_conversation(conversation).turns
    again = await engine.handle(
        _msg(resident, "how much do I owe?", delivery_id="tg:1:300", resend_if_processed=True)
    )
    assert [m.text for m in again] == [m.text for m in first]
    assert [b.id for m in again for b in m.buttons] == [b.id for m in first for b in m.buttons]
    assert engine.store.get_conversation(conversation).turns == turns  # no second turn


async def test_concurrent_redeliveries_act_once(make_engine: Any, seeded: Any) -> None:
    engine = make_engine()
    resident = seeded.roles["payer"]["resident_id"]
    results = await asyncio.gather(
        *(engine.handle(_msg(resident, "balance", delivery_id="tg:1:7")) for _ in range(4))
    )
    assert sorted(len(r) for r in results) == [0, 0, 0, 1]


def _espeak(text: str, path: Path) -> bytes:
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(path), text], check=True)
    return path.read_bytes()


async def test_a_voice_message_is_transcribed_by_the_engine_and_answered(
    make_engine: Any, seeded: Any, tmp_path: Path
) -> None:
    engine = make_engine()
    resident = seeded.roles["payer"]["resident_id"]
    audio = _espeak("how much is my electricity bill", tmp_path / "q.wav")
    [reply] = await engine.handle(
        _msg(resident, attachments=(Attachment("voice", audio, "q.wav", "audio/wav"),))
    )
    assert "electricity" in reply.text.lower()
    turn = engine.store.last_turn(
        engine.store.conversation_id_for("telegram", f"tg-{resident}", resident, engine.clock())
    )
    assert turn is not None and turn.transcript and "electricity" in turn.transcript
    assert turn.intent in ("check_balance", "explain_bill", "due_date")


async def test_corrupt_audio_gets_a_clear_reply(make_engine: Any, seeded: Any) -> None:
    engine = make_engine()
    resident = seeded.roles["payer"]["resident_id"]
    [reply] = await engine.handle(
        _msg(resident, attachments=(Attachment("voice", b"OggS\x00garbage", "n.ogg", "audio/ogg"),))
    )
    assert "couldn't use that recording" in reply.text


async def test_spoken_rendering_has_no_symbols_and_says_the_choices(
    make_engine: Any, seeded: Any
) -> None:
    engine = make_engine()
    resident = seeded.roles["payer"]["resident_id"]
    [confirm] = await engine.handle(_msg(resident, "pay the water bill"))
    assert "¥" not in confirm.spoken and "yuan" in confirm.spoken
    assert "\n" not in confirm.spoken and "- " not in confirm.spoken
    assert "say yes" in confirm.spoken.lower()  # the choice is said aloud


async def test_push_reaches_the_linked_chat_once_with_pressable_buttons(
    make_engine: Any, seeded: Any
) -> None:
    from bot.responses import ButtonSpec, Reply

    engine = make_engine()
    resident = seeded.roles["payer"]["resident_id"]
    await engine.handle(_msg(resident, "hi"))  # the conversation exists on telegram
    reply = Reply("help", buttons=[ButtonSpec("button_raw", "/greet{}", {"title": "Hello"})])
    assert await engine.push(resident, [reply], kind="notice", dedupe_key="n-1") == 1
    assert await engine.push(resident, [reply], kind="notice", dedupe_key="n-1") == 0
    channel = _Recording()
    sender = OutboxSender(engine.store, [channel], clock=engine.clock)
    assert await sender.run_once() == 1
    assert await sender.run_once() == 0
    [(user, message)] = channel.sent
    assert user == f"tg-{resident}" and message.kind == "notice"
    [button] = message.buttons
    assert button.title == "Hello" and button.payload == ""  # the payload stays server side
    # the pushed button is pressable in that conversation
    replies = await engine.handle(_msg(resident, button_id=button.id))
    assert replies and "expired" not in replies[0].text


async def test_failed_sends_are_retried_with_backoff_and_blocked_users_are_not(
    make_engine: Any, seeded: Any, clock: Any
) -> None:
    engine = make_engine()
    resident = seeded.roles["payer"]["resident_id"]
    await engine.handle(_msg(resident, "hi"))
    conversation = engine.store.conversation_id_for("telegram", f"tg-{resident}", resident, clock())
    assert staff_reply(engine.store, conversation, "alice", "Hello, this is Alice.", now=clock())
    channel = _Recording()
    sender = OutboxSender(engine.store, [channel], clock=clock, backoff_s=30)
    channel.fail_with = ChannelSendError("timed out")
    assert await sender.run_once() == 0
    assert await sender.run_once() == 0  # not due yet: backing off
    clock.advance(seconds=31)
    channel.fail_with = None
    assert await sender.run_once() == 1
    assert [m.text for _, m in channel.sent] == ["Hello, this is Alice."]
    assert channel.sent[0][1].kind == "staff"
    # staff messages are in the conversation log, marked as staff
    events = engine.store.events(conversation)
    assert any(e.event == "staff_message" and e.actor == "staff:alice" for e in events)
    # a user who blocked the bot: marked unreachable, never retried
    assert staff_reply(engine.store, conversation, "alice", "Still there?", now=clock())
    channel.fail_with = ChannelUnreachable("Forbidden: bot was blocked by the user")
    assert await sender.run_once() == 0
    clock.advance(hours=1)
    assert await sender.run_once() == 0
    assert pending_count(engine.store, ["telegram"]) == 0
    with engine.store.session() as s:
        statuses = sorted(r.status for r in s.query(OutboxRow).all())
    assert statuses == ["delivered", "unreachable"]


async def test_a_slow_database_call_does_not_stall_other_conversations(
    make_engine: Any, seeded: Any
) -> None:
    """The store's calls run off the event loop: one slow call blocks only its own turn."""
    engine = make_engine()
    slow_resident = seeded.roles["payer"]["resident_id"]
    other = seeded.roles["other"]["resident_id"]
    await engine.handle(_msg(other, "hi"))  # warm up
    original = engine.store.linked_resident
    release = asyncio.Event()
    loop = asyncio.get_running_loop()

    def slow_lookup(channel: str, external: str) -> Any:
        if external == "tg-slow":
            asyncio.run_coroutine_threadsafe(release.wait(), loop).result(timeout=30)
        return original(channel, external)

    engine.store.linked_resident = slow_lookup  # a database call that hangs until released
    slow = asyncio.create_task(
        engine.handle(IncomingMessage(channel="telegram", external_user_id="tg-slow", text="hi"))
    )
    await asyncio.sleep(0.05)
    fast = await engine.handle(_msg(other, "how much do I owe?"))
    assert fast and not slow.done()  # the other conversation was answered meanwhile
    release.set()
    await slow
    del slow_resident


@pytest.mark.postgres
def test_two_senders_never_claim_the_same_row(postgres_url: str) -> None:
    from billtalk.db import make_engine
    from bot.outbox import Outbox, Target
    from bot.store import ConversationStore, ensure_schema

    ensure_schema(postgres_url)
    store = ConversationStore(make_engine(postgres_url))
    outbox = Outbox(store)
    for n in range(40):
        outbox.enqueue(Target("telegram", f"u{n % 5}"), OutgoingMessage(text=f"m{n}"), kind="t")
    a = OutboxSender(store, [_Recording()])
    b = OutboxSender(store, [_Recording()])
    claimed_a = {r.id for r in a.claim(100)}
    claimed_b = {r.id for r in b.claim(100)}
    assert claimed_a and not (claimed_a & claimed_b)
    store.engine.dispose()
    time.sleep(0)


async def test_a_recording_attached_in_the_terminal_chat_is_heard_and_answered(
    make_engine: Any, seeded: Any, tmp_path: Path
) -> None:
    import io

    from bot.channels.terminal import SEPARATOR, run_chat

    engine = make_engine()
    resident = seeded.roles["payer"]["resident_id"]
    wav = tmp_path / "question.wav"
    _espeak("how much is my electricity bill", wav)
    stdout = io.StringIO()
    await run_chat(engine, resident, "en", stdin=io.StringIO(f"/attach {wav}\n"), stdout=stdout)
    printed = stdout.getvalue()
    assert printed.endswith(SEPARATOR + "\n")
    assert "electricity" in printed.lower() and "¥" in printed, printed
    assert "didn't get any text" not in printed
