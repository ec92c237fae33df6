"""Resident journeys through the real PTB application polling the Bot API stand-in.

Real seeded database, real NLU, real billing backend, real HTTP on loopback. Each
test has chats of its own (one module-wide bot and engine: the NLU load is slow).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from tests.channels.telegram.botapi_standin import BOT_ID, TOKEN, keyboard_texts
from tests.channels.telegram.conftest import new_chat
from tests.channels.telegram.helpers import AMOUNT, TgChat, joined

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def linked(
    runtime: Any, standin: Any, seeded: Any, role: str = "payer", language_code: str = "en"
) -> TgChat:
    """A new chat linked with a fresh one-time code through the ``/start CODE`` deep link."""
    chat = TgChat(runtime, standin, new_chat(), language_code)
    resident = seeded.roles[role]["resident_id"]
    code = (await runtime.engine.billing.create_link_code(resident)).code
    reply = await chat.send(f"/start {code}")
    assert "linked" in reply or "绑定" in reply, reply
    return chat


async def payments_of(runtime: Any, seeded: Any, role: str = "payer") -> list[Any]:
    household = seeded.roles[role]["household_id"]
    return list(await runtime.engine.billing.list_payments(household, limit=200))


# -- start-up and linking ------------------------------------------------------------------


async def test_polling_starts_with_getme_commands_then_deletewebhook_and_getupdates(
    runtime: Any, standin: Any
) -> None:
    await standin.until(lambda: standin.calls_of("getUpdates"), what="getUpdates")
    methods = [c.method for c in standin.calls]
    first = {m: methods.index(m) for m in ("getMe", "deleteWebhook", "getUpdates")}
    assert first["getMe"] < first["deleteWebhook"] < first["getUpdates"], methods[:8]
    commands = standin.calls_of("setMyCommands")
    by_language = {c.params.get("language_code"): c.params["commands"] for c in commands}
    assert set(by_language) == {None, "zh"}
    names = [c["command"] for c in by_language[None]]
    for name in (
        "balance",
        "pay",
        "history",
        "usage",
        "reading",
        "autopay",
        "human",
        "lang",
        "help",
        "unlink",
    ):
        assert name in names
    assert any("缴费" in c["description"] for c in by_language["zh"])


async def test_an_unlinked_chat_learns_no_amount_and_wrong_codes_are_limited(
    runtime: Any, standin: Any, seeded: Any
) -> None:
    chat = TgChat(runtime, standin, new_chat())
    for text in ("how much do I owe?", "/balance", "pay the water bill", "/start"):
        reply = await chat.send(text)
        assert "link" in reply.lower(), reply
        assert not AMOUNT.search(reply) and "¥" not in reply, reply
    replies = [
        await chat.send(code)
        for code in ("111111", "222222", "333333", "444444", "555555", "666666")
    ]
    assert "isn't valid" in replies[0], replies[0]
    assert "Too many wrong link codes" in replies[-1] and "15 minutes" in replies[-1], replies
    assert all(not AMOUNT.search(r) for r in replies)
    # even the right code is refused while the chat is locked out
    resident = seeded.roles["payer"]["resident_id"]
    code = (await runtime.engine.billing.create_link_code(resident)).code
    reply = await chat.send(code)
    assert "linked" not in reply.lower() and not AMOUNT.search(reply), reply


async def test_deep_link_typed_code_and_unlink(runtime: Any, standin: Any, seeded: Any) -> None:
    chat = await linked(runtime, standin, seeded)
    reply = await chat.send("how much do I owe?")
    assert "in total" in reply and AMOUNT.search(reply), reply
    assert "Unlinked" not in reply
    reply = await chat.send("/unlink")
    assert "no longer linked" in reply, reply
    reply = await chat.send("how much do I owe?")
    assert not AMOUNT.search(reply) and "link" in reply.lower(), reply
    # the code typed when asked links again
    resident = seeded.roles["payer"]["resident_id"]
    code = (await runtime.engine.billing.create_link_code(resident)).code
    reply = await chat.send(code)
    assert "linked" in reply, reply
    assert "in total" in await chat.send("/balance")


# -- paying with buttons ----------------------------------------------------------------------


async def test_pay_with_the_inline_button_edits_the_message_and_a_double_press_pays_once(
    runtime: Any, standin: Any, seeded: Any
) -> None:
    chat = await linked(runtime, standin, seeded)
    before = len(await payments_of(runtime, seeded))
    reply = await chat.send("pay 10 for water")
    assert "Please confirm" in reply, reply
    buttons = standin.buttons(chat.chat_id)
    assert next(t for t, _ in buttons).startswith("Pay")
    for _, data in buttons:
        assert 0 < len(data.encode()) <= 64
        assert "{" not in data and "confirm" not in data  # the payload stays on the server
    [(_title, pay)] = [b for b in buttons if b[0].startswith("Pay")]
    message_id = standin.last_keyboard_message(chat.chat_id)
    answered = len(standin.calls_of("answerCallbackQuery"))
    calls = await chat.do(lambda: standin.press(chat.chat_id, pay, message_id=message_id))
    [edit] = [c for c in calls if c.method == "editMessageText"]
    assert int(edit.params["message_id"]) == message_id
    assert "Paid" in edit.params["text"] and "10.00" in edit.params["text"]
    assert not edit.params.get("reply_markup"), "the money message keeps no buttons"
    # the same button again (a double tap): nothing more is paid, and it says why
    again = await chat.press_data(pay, message_id=message_id)
    assert "expired" in again and "Paid" not in again, again
    assert len(standin.calls_of("answerCallbackQuery")) == answered + 2
    after = await payments_of(runtime, seeded)
    assert len(after) == before + 1
    assert after[0].amount == Decimal("10.00") or any(p.amount == Decimal("10.00") for p in after)


async def test_a_worker_that_died_after_paying_but_before_answering_is_answered_once(
    runtime: Any, standin: Any, seeded: Any
) -> None:
    """The turn committed (paid) and the worker died before any send; Telegram redelivers."""
    from sqlalchemy import update as sql_update

    from bot.channels.telegram.ledger import Claim, updates_table
    from bot.messages import IncomingMessage

    chat = await linked(runtime, standin, seeded, role="other")
    before = len(await payments_of(runtime, seeded, "other"))
    await chat.send("pay 4 for water")
    [pay] = [d for t, d in standin.buttons(chat.chat_id) if t.startswith("Pay")]
    press = standin.press_update(chat.chat_id, pay)
    ledger, adapter = runtime.adapter.ledger, runtime.adapter
    # the dead worker: it claimed the update and its turn paid, then it was killed
    assert ledger.claim_update(press["update_id"], str(chat.chat_id), "dead-worker") == Claim(
        wait=False, fresh=True
    )
    await runtime.engine.handle(
        IncomingMessage(
            channel="telegram",
            external_user_id=str(chat.chat_id),
            button_id=pay,
            language="en",
            delivery_id=f"telegram:{adapter.bot_id}:{press['update_id']}",
        )
    )
    assert len(await payments_of(runtime, seeded, "other")) == before + 1
    sent_before = len(standin.sent(chat.chat_id))
    with ledger.db.begin() as conn:  # its claim goes stale
        conn.execute(
            sql_update(updates_table)
            .where(updates_table.c.update_id == press["update_id"])
            .values(claimed_at=datetime.now(UTC) - timedelta(hours=1))
        )
    calls = await chat.do(lambda: standin.redeliver(press))
    outcome = joined(calls)
    assert outcome.count("Paid") == 1 and "4.00" in outcome, outcome
    assert len(standin.sent(chat.chat_id)) > sent_before
    assert len(await payments_of(runtime, seeded, "other")) == before + 1  # paid once
    # Telegram redelivers it once more: now it was answered, so nothing at all happens
    answered = len(standin.sent(chat.chat_id))
    standin.redeliver(press)
    await asyncio.sleep(1.0)
    assert len(standin.sent(chat.chat_id)) == answered
    assert len(await payments_of(runtime, seeded, "other")) == before + 1


async def test_two_presses_at_once_pay_once(runtime: Any, standin: Any, seeded: Any) -> None:
    chat = await linked(runtime, standin, seeded, role="other")
    before = len(await payments_of(runtime, seeded, "other"))
    await chat.send("pay 5 for water")
    [pay] = [d for t, d in standin.buttons(chat.chat_id) if t.startswith("Pay")]
    first = standin.press(chat.chat_id, pay)
    second = standin.press(chat.chat_id, pay)
    ledger = runtime.adapter.ledger
    await standin.until(
        lambda: all(ledger.status(u["update_id"]) == "done" for u in (first, second)),
        what="both presses",
    )
    assert len(await payments_of(runtime, seeded, "other")) == before + 1
    texts = joined(standin.sent(chat.chat_id))
    assert texts.count("Paid") == 1, texts


async def test_expired_foreign_and_forged_buttons_pay_nothing_and_say_why(
    runtime: Any, standin: Any, seeded: Any, clock: Any
) -> None:
    mine = await linked(runtime, standin, seeded)
    theirs = await linked(runtime, standin, seeded, role="other")
    before = (
        len(await payments_of(runtime, seeded)),
        len(await payments_of(runtime, seeded, "other")),
    )
    await theirs.send("pay 7 for water")
    [their_pay] = [d for t, d in standin.buttons(theirs.chat_id) if t.startswith("Pay")]
    # another chat's confirmation pressed in mine
    await mine.send("pay 3 for water")
    reply = await mine.press_data(their_pay)
    assert "expired" in reply and "Paid" not in reply, reply
    # data never issued
    reply = await mine.press_data("never-issued-0123")
    assert "expired" in reply and "Paid" not in reply, reply
    # my own confirmation after it expired (the clock moves past its 5 minutes)
    [my_pay] = [d for t, d in standin.buttons(mine.chat_id) if t.startswith("Pay")]
    clock.advance(minutes=6)
    try:
        reply = await mine.press_data(my_pay)
    finally:
        clock.advance(minutes=-6)
    assert "Paid" not in reply and ("expired" in reply or "no longer valid" in reply), reply
    after = (
        len(await payments_of(runtime, seeded)),
        len(await payments_of(runtime, seeded, "other")),
    )
    assert after == before


async def test_pin_step_up_in_chinese(runtime: Any, standin: Any, seeded: Any) -> None:
    from bot.verifiers.pin import hash_pin

    resident = seeded.roles["payer"]["resident_id"]
    runtime.engine.store.set_pin_hash(resident, hash_pin("482916"), runtime.engine.clock())
    chat = await linked(runtime, standin, seeded, language_code="zh")
    before = len(await payments_of(runtime, seeded))
    reply = await chat.send("交250元物业费")
    assert "确认" in reply, reply
    reply = await chat.press(chat.titles()[0])
    assert "密码" in reply, reply
    reply = await chat.send("508317")
    assert "支付成功" not in reply and "已支付" not in reply, reply
    reply = await chat.send("482916")
    assert "250.00" in reply, reply
    assert len(await payments_of(runtime, seeded)) == before + 1
    log = runtime.engine.store.turns(
        runtime.engine.store.conversation_id_for(
            "telegram", str(chat.chat_id), resident, runtime.engine.clock()
        )
    )
    assert all("482916" not in (t.text_raw or "") for t in log)


# -- language ------------------------------------------------------------------------------


async def test_language_code_picks_chinese_until_lang(
    runtime: Any, standin: Any, seeded: Any
) -> None:
    chat = await linked(runtime, standin, seeded, language_code="zh-hans")
    reply = await chat.send("/balance")
    assert "共" in reply or "欠" in reply, reply
    assert AMOUNT.search(reply), reply
    reply = await chat.send("/lang en")
    assert "English" in reply, reply
    reply = await chat.send("/balance")
    assert "in total" in reply, reply


async def test_resident_journey_in_english(runtime: Any, standin: Any, seeded: Any) -> None:
    chat = await linked(runtime, standin, seeded)
    reply = await chat.send("why is my electricity bill so high?")
    assert "electricity" in reply.lower() and AMOUNT.search(reply), reply
    for amount in AMOUNT.findall(reply):
        assert len(amount.split(".")[1]) == 2
    reply = await chat.send("/history")
    assert reply, "history answered"
    before = len(standin.calls_of("sendDocument", chat.chat_id))
    await chat.send("pay 2 for water")
    await chat.press("Pay")
    await chat.send("send me the receipt for my last payment")
    documents = standin.calls_of("sendDocument", chat.chat_id)
    assert len(documents) == before + 1
    name, data = documents[-1].files["document"]
    assert data.startswith(b"%PDF") and name.endswith(".pdf")


# -- what the bot must not act on -----------------------------------------------------------


async def test_edited_and_forwarded_messages_never_pay(
    runtime: Any, standin: Any, seeded: Any
) -> None:
    chat = await linked(runtime, standin, seeded)
    before = len(await payments_of(runtime, seeded))
    calls = await chat.do(
        lambda: standin.inject(
            standin.message(chat.chat_id, text="pay 4 for water", key="edited_message")
        )
    )
    assert "edited messages" in joined(calls), joined(calls)
    forwarded = standin.message(chat.chat_id, text="pay 4 for water")
    forwarded["message"]["forward_origin"] = {
        "type": "hidden_user",
        "date": 1,
        "sender_user_name": "Someone",
    }
    calls = await chat.do(lambda: standin.inject(forwarded))
    assert "forwarded" in joined(calls), joined(calls)
    assert all(not c.params.get("reply_markup") for c in calls)
    assert len(await payments_of(runtime, seeded)) == before


async def test_a_group_is_told_once_and_shown_nothing(
    runtime: Any, standin: Any, seeded: Any
) -> None:
    group = -new_chat()
    tg = TgChat(runtime, standin, group)
    first = await tg.do(lambda: standin.text(group, "how much do I owe?", chat_type="group"))
    assert "private" in joined(first), joined(first)
    second = await tg.do(lambda: standin.text(group, "/balance", chat_type="supergroup"))
    third = await tg.do(lambda: standin.text(group, "pay 5 for water", chat_type="group"))
    assert second == [] and third == []
    assert not AMOUNT.search(joined(standin.sent(group)))


@pytest.mark.parametrize(
    "content",
    [
        {
            "sticker": {
                "file_id": "s1",
                "file_unique_id": "s1",
                "width": 512,
                "height": 512,
                "is_animated": False,
                "is_video": False,
                "type": "regular",
            }
        },
        {"location": {"latitude": 31.23, "longitude": 121.47}},
        {"contact": {"phone_number": "+8613800000000", "first_name": "Li"}},
        {
            "poll": {
                "id": "p1",
                "question": "?",
                "options": [{"text": "a", "voter_count": 0, "persistent_id": "o1"}],
                "total_voter_count": 0,
                "is_closed": False,
                "is_anonymous": True,
                "type": "regular",
                "allows_multiple_answers": False,
                "allows_revoting": False,
                "members_only": False,
            }
        },
        {"dice": {"emoji": "🎲", "value": 3}},
    ],
    ids=["sticker", "location", "contact", "poll", "dice"],
)
async def test_message_kinds_the_bot_does_not_read_get_a_clear_reply(
    runtime: Any, standin: Any, content: dict[str, Any]
) -> None:
    chat = TgChat(runtime, standin, new_chat())
    calls = await chat.do(lambda: standin.inject(standin.message(chat.chat_id, **content)))
    assert "can't read that kind of message" in joined(calls), joined(calls)


async def test_updates_without_a_chat_are_recorded_and_the_bot_keeps_going(
    runtime: Any, standin: Any
) -> None:
    poll_answer = {"poll_answer": {"poll_id": "p1", "option_ids": [0], "user": standin.user(42)}}
    update_id = standin.inject(poll_answer)
    ledger = runtime.adapter.ledger
    await standin.until(lambda: ledger.status(update_id) == "done", what="poll answer")
    chat = TgChat(runtime, standin, new_chat())
    assert "link" in (await chat.send("hello")).lower()


async def test_an_update_the_library_cannot_parse_does_not_block_later_updates(
    runtime: Any, standin: Any
) -> None:
    chat = TgChat(runtime, standin, new_chat())
    broken = standin.message(chat.chat_id, poll={"id": "p2", "question": "?"})  # fields missing
    calls = await chat.do(lambda: standin.inject(broken))
    assert "can't read that kind of message" in joined(calls)
    assert "link" in (await chat.send("hello")).lower()
    chinese = TgChat(runtime, standin, new_chat(), language_code="zh-hans")
    broken = standin.message(
        chinese.chat_id, poll={"id": "p3", "question": "?"}, language_code="zh-hans"
    )
    calls = await chinese.do(lambda: standin.inject(broken))
    assert "我看不懂这类消息" in joined(calls), joined(calls)


async def test_a_10000_character_message_is_refused_clearly(
    runtime: Any, standin: Any, seeded: Any
) -> None:
    chat = await linked(runtime, standin, seeded)
    reply = await chat.send("pay " + "x" * 9_996)
    assert "too long" in reply.lower(), reply
    assert not standin.buttons(chat.chat_id) or "Pay" not in keyboard_texts(
        standin.calls_of("sendMessage", chat.chat_id)[-1]
    )


async def test_a_redelivered_update_acts_once(runtime: Any, standin: Any, seeded: Any) -> None:
    chat = await linked(runtime, standin, seeded)
    update = standin.message(chat.chat_id, text="how much do I owe?")
    calls = await chat.do(lambda: standin.inject(update))
    assert len([c for c in calls if c.method == "sendMessage"]) == 1
    again = await chat.do(lambda: standin.redeliver(update))
    assert again == []
    assert runtime.adapter.ledger.status(update["update_id"]) == "done"


async def test_a_fresh_update_skips_the_delivery_read_and_a_redelivery_still_acts_once(
    runtime: Any, standin: Any, seeded: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An update whose ledger claim is its first has no recorded turn: the engine does not
    read its delivery record (one statement less a turn), yet records it; a redelivery is
    still dropped by the ledger, and one the ledger let through (its claim taken over from
    a worker presumed dead) is read and answered from the record, not acted on again."""
    from bot.messages import IncomingMessage

    chat = await linked(runtime, standin, seeded)
    store, ledger = runtime.engine.store, runtime.adapter.ledger
    assert runtime.adapter.remembers_redeliveries  # keep_handled_h 48 >= Telegram's 24
    reads: list[str] = []
    read = store.processed_delivery

    def counted(delivery_id: str) -> Any:
        reads.append(delivery_id)
        return read(delivery_id)

    monkeypatch.setattr(store, "processed_delivery", counted)
    update = standin.message(chat.chat_id, text="how much do I owe?")
    calls = await chat.do(lambda: standin.inject(update))
    assert len([c for c in calls if c.method == "sendMessage"]) == 1
    delivery = f"telegram:{runtime.adapter.bot_id}:{update['update_id']}"
    assert reads == [] and store.processed_delivery(delivery) is not None
    assert runtime.adapter._unseen == set()  # nothing left behind
    reads.clear()
    assert await chat.do(lambda: standin.redeliver(update)) == []  # the ledger drops it
    # the same delivery reaching the engine without the channel's word: read, not acted on
    again = await runtime.engine.handle(
        IncomingMessage(
            channel="telegram",
            external_user_id=str(chat.chat_id),
            text="how much do I owe?",
            language="en",
            delivery_id=delivery,
        )
    )
    assert again == [] and reads == [delivery]
    assert ledger.status(update["update_id"]) == "done"


async def test_only_a_ledger_that_outlives_telegrams_redeliveries_vouches_for_fresh_updates(
    engine: Any, standin: Any
) -> None:
    from bot.channels.telegram.adapter import TelegramAdapter
    from tests.channels.telegram.conftest import telegram_settings

    def adapter(keep_handled_h: float) -> TelegramAdapter:
        settings = telegram_settings(standin, keep_handled_h=keep_handled_h)
        return TelegramAdapter(engine, settings)

    assert adapter(48).remembers_redeliveries and adapter(24).remembers_redeliveries
    assert adapter(0).remembers_redeliveries  # kept forever
    assert not adapter(23.5).remembers_redeliveries


async def test_housekeeping_forgets_old_updates_yet_a_late_redelivery_acts_once(
    runtime: Any, standin: Any, seeded: Any
) -> None:
    """Handled updates and the replies kept with them are forgotten after ``keep_handled_h``;
    the delivery's id is kept, so even a redelivery after that acts once."""
    chat = await linked(runtime, standin, seeded)
    update = standin.message(chat.chat_id, text="how much do I owe?")
    await chat.do(lambda: standin.inject(update))
    delivery = f"telegram:{runtime.adapter.bot_id}:{update['update_id']}"
    store, ledger = runtime.engine.store, runtime.adapter.ledger
    assert store.processed_delivery(delivery).replies
    assert runtime.housekeep() == {"updates": 0, "delivery_replies": 0}  # nothing is old yet
    forgotten = runtime.housekeep(ahead=timedelta(hours=49))
    assert forgotten["updates"] >= 1 and forgotten["delivery_replies"] >= 1
    assert ledger.status(update["update_id"]) is None
    kept = store.processed_delivery(delivery)
    assert kept is not None and kept.replies is None
    # a redelivery that late reaches the engine again (the ledger forgot it): nothing is
    # done and, its replies forgotten, nothing is sent twice
    from bot.messages import IncomingMessage

    again = await runtime.engine.handle(
        IncomingMessage(
            channel="telegram",
            external_user_id=str(chat.chat_id),
            text="how much do I owe?",
            language="en",
            delivery_id=delivery,
            resend_if_processed=True,
        )
    )
    assert again == []


async def test_the_token_never_reaches_a_log_line(
    runtime: Any, standin: Any, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    caplog.set_level(logging.DEBUG)
    chat = TgChat(runtime, standin, new_chat())
    await chat.send("hello")
    text = caplog.text
    assert "/bot<token>/" in text, "httpx logs the request URL, masked"
    assert TOKEN not in text and TOKEN.split(":")[1] not in text
    assert str(BOT_ID) in TOKEN  # the bot id is public; only the secret half matters


@pytest.mark.parametrize("language_code", ["en", "zh"])
async def test_every_menu_command_is_understood(
    runtime: Any, standin: Any, seeded: Any, language_code: str
) -> None:
    chat = await linked(runtime, standin, seeded, role="other", language_code=language_code)
    store = runtime.engine.store
    intents = {}
    for command in ("balance", "history", "usage", "reading", "autopay", "help", "human"):
        reply = await chat.send(f"/{command}")
        assert reply, command
        conversation = store.conversation_id_for(
            "telegram", str(chat.chat_id), None, runtime.engine.clock()
        )
        last = store.turns(conversation)[-1]
        intents[command] = last.intent
        if command == "human":
            break
    assert intents == {
        "balance": "check_balance",
        "history": "payment_history",
        "usage": "usage",
        "reading": "submit_meter_reading",
        "autopay": "manage_autopay",
        "help": "help",
        "human": "human_handoff",
    }, intents
