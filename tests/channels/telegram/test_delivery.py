"""Sending through Telegram's failures, and pushed messages through the outbox.

The stand-in answers 429 (with ``retry_after``), 403, 5xx, or too late, on
demand; the real PTB bot (with ``AIORateLimiter``) and the outbox sender must
deliver every message once, keep running, and mark blocked chats unreachable.
"""

from __future__ import annotations

import asyncio
import io
from typing import Any

import pytest

from bot.channels.base import ChannelSendError, ChannelUnreachable
from bot.messages import Attachment, Button, OutgoingMessage
from tests.channels.telegram.conftest import new_chat
from tests.channels.telegram.helpers import TgChat

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def linked(runtime: Any, standin: Any, seeded: Any, role: str = "payer") -> TgChat:
    chat = TgChat(runtime, standin, new_chat())
    resident = seeded.roles[role]["resident_id"]
    code = (await runtime.engine.billing.create_link_code(resident)).code
    assert "linked" in await chat.send(f"/start {code}")
    return chat


def statuses(standin: Any, chat_id: int, method: str = "sendMessage") -> list[int]:
    return [
        c.status
        for c in standin.calls
        if c.method == method and str(c.params.get("chat_id")) == str(chat_id)
    ]


@pytest.mark.parametrize(
    ("status", "retry_after", "delay_s"),
    [(429, 1, 0.0), (500, None, 0.0), (502, None, 0.0), (504, None, 4.0)],
    ids=["429-retry-after", "500", "502", "timeout"],
)
async def test_a_failed_send_is_retried_and_arrives_once(
    runtime: Any, standin: Any, status: int, retry_after: int | None, delay_s: float
) -> None:
    chat = TgChat(runtime, standin, new_chat())
    standin.fail(
        "sendMessage", status, retry_after=retry_after, delay_s=delay_s, chat_id=chat.chat_id
    )
    reply = await chat.send("hello")
    assert "link" in reply.lower(), reply
    await standin.until(lambda: len(statuses(standin, chat.chat_id)) == 2, what="both calls")
    assert sorted(statuses(standin, chat.chat_id)) == [200, status]
    assert len(standin.texts(chat.chat_id)) == 1
    # the worker goes on
    assert "link" in (await chat.send("hi again")).lower()


async def test_a_reply_telegram_keeps_refusing_goes_to_the_outbox_and_arrives_once(
    runtime: Any, standin: Any
) -> None:
    from sqlalchemy import select

    from bot.outbox import OutboxRow

    chat = TgChat(runtime, standin, new_chat())
    standin.fail("sendMessage", 502, times=4, chat_id=chat.chat_id)  # the turn's 4 tries
    # The outbox sender runs every second, so it may deliver before the update is
    # seen as done: the row, not the timing, shows the reply went through the outbox.
    await chat.send("hello")
    await standin.until(
        lambda: standin.texts(chat.chat_id), timeout=30, what="the reply, sent by the outbox"
    )
    await asyncio.sleep(1.0)
    assert len(standin.texts(chat.chat_id)) == 1
    assert statuses(standin, chat.chat_id) == [502, 502, 502, 502, 200]
    with runtime.engine.store.session() as s:
        [row] = s.scalars(
            select(OutboxRow).where(OutboxRow.external_user_id == str(chat.chat_id))
        ).all()
        assert (row.status, row.kind) == ("delivered", "reply")
        assert "link" in row.message.lower()


async def test_a_chat_that_blocked_the_bot_does_not_stop_the_worker(
    runtime: Any, standin: Any
) -> None:
    blocked = TgChat(runtime, standin, new_chat())
    standin.fail("sendMessage", 403, times=5, chat_id=blocked.chat_id)
    assert await blocked.send("hello") == ""
    assert statuses(standin, blocked.chat_id) == [403]  # 403 is never retried
    other = TgChat(runtime, standin, new_chat())
    assert "link" in (await other.send("hello")).lower()


async def test_long_text_is_split_on_lines_and_files_go_as_document_and_photo(
    runtime: Any, standin: Any
) -> None:
    from PIL import Image

    chat_id = new_chat()
    channel = runtime.adapter.channel
    lines = [f"line {i:04d} " + "x" * 80 for i in range(100)]  # about 9,000 characters
    png = io.BytesIO()
    Image.new("RGB", (64, 32), (10, 120, 200)).save(png, "PNG")
    message = OutgoingMessage(
        text="\n".join(lines),
        buttons=(Button("OK", "/ok{}", "b1"), Button("Cancel", "/cancel{}", "b2")),
        attachments=(
            Attachment("pdf", b"%PDF-1.4 receipt", "R1.pdf", "application/pdf"),
            Attachment("image", png.getvalue(), "usage.png", "image/png"),
        ),
    )
    await channel.send(str(chat_id), message)
    texts = [c for c in standin.calls_of("sendMessage", chat_id)]
    assert len(texts) == 3
    assert all(len(c.params["text"]) <= 4096 for c in texts)
    assert "\n".join(c.params["text"] for c in texts) == message.text  # cut between lines
    assert [bool(c.params.get("reply_markup")) for c in texts] == [False, False, True]
    [doc] = standin.calls_of("sendDocument", chat_id)
    assert doc.files["document"] == ("R1.pdf", b"%PDF-1.4 receipt")
    [photo] = standin.calls_of("sendPhoto", chat_id)
    assert photo.files["photo"][1] == png.getvalue()


async def test_a_message_retried_after_a_failure_midway_does_not_repeat_its_first_part(
    runtime: Any, standin: Any
) -> None:
    chat_id = new_chat()
    channel = runtime.adapter.channel
    message = OutgoingMessage(text="\n".join(["a" * 3000, "b" * 3000]))
    standin.fail("sendMessage", 500, chat_id=chat_id, after=1)  # the second piece fails
    with pytest.raises(ChannelSendError):
        await channel.send(str(chat_id), message)
    await channel.send(str(chat_id), message)  # what the outbox does next
    sent = [c.params["text"][0] for c in standin.calls_of("sendMessage", chat_id)]
    assert sent == ["a", "b"], sent


async def test_a_403_on_a_pushed_message_marks_the_chat_unreachable(
    runtime: Any, standin: Any
) -> None:
    chat_id = new_chat()
    standin.fail("sendMessage", 403, chat_id=chat_id)
    with pytest.raises(ChannelUnreachable):
        await runtime.adapter.channel.send(str(chat_id), OutgoingMessage(text="reminder"))


async def test_pushed_reminders_and_staff_replies_arrive_once(
    runtime: Any, standin: Any, seeded: Any
) -> None:
    from bot.outbox import staff_reply

    chat = await linked(runtime, standin, seeded, role="other")
    resident = seeded.roles["other"]["resident_id"]
    engine = runtime.engine
    queued = await engine.push(
        resident,
        "Reminder: your water bill is due on 16 Dec.",
        kind="notice",
        dedupe_key="reminder-water-2026-12",
    )
    assert queued >= 1
    again = await engine.push(
        resident,
        "Reminder: your water bill is due on 16 Dec.",
        kind="notice",
        dedupe_key="reminder-water-2026-12",
    )
    assert again == 0
    await standin.until(
        lambda: any("Reminder" in t for t in standin.texts(chat.chat_id)),
        what="the pushed reminder",
    )
    conversation = engine.store.conversation_id_for(
        "telegram", str(chat.chat_id), resident, engine.clock()
    )
    assert staff_reply(engine.store, conversation, "staff-7", "Hi, this is Lin from the office.")
    await standin.until(
        lambda: any("Lin from the office" in t for t in standin.texts(chat.chat_id)),
        what="staff reply",
    )
    texts = standin.texts(chat.chat_id)
    assert sum("Reminder" in t for t in texts) == 1
    assert sum("Lin from the office" in t for t in texts) == 1


async def test_a_pushed_message_to_a_blocked_chat_is_not_retried_forever(
    runtime: Any, standin: Any, seeded: Any
) -> None:
    from sqlalchemy import select

    from bot.outbox import OutboxRow

    chat = await linked(runtime, standin, seeded, role="clear")
    resident = seeded.roles["clear"]["resident_id"]
    standin.fail("sendMessage", 403, times=50, chat_id=chat.chat_id)
    assert await runtime.engine.push(resident, "Your bill is ready.", kind="notice") >= 1

    def row_status() -> str | None:
        with runtime.engine.store.session() as s:
            row = s.scalars(
                select(OutboxRow).where(OutboxRow.external_user_id == str(chat.chat_id))
            ).first()
            return None if row is None else row.status

    await standin.until(lambda: row_status() == "unreachable", what="row unreachable")
    assert statuses(standin, chat.chat_id) == [200, 403]  # the link reply, then one 403
