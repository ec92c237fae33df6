"""Webhook mode: the route in a FastAPI app served by uvicorn, fed by the stand-in.

The stand-in POSTs updates with the secret header to the URL registered by
``billtalk telegram set-webhook`` (run as a command), redelivers when the
webhook does not answer in time, and the bot must act once per update.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import pytest_asyncio

from tests.channels.telegram.botapi_standin import TOKEN, BotApiStandIn, free_port
from tests.channels.telegram.conftest import new_chat, telegram_settings
from tests.channels.telegram.helpers import AMOUNT, joined

pytestmark = pytest.mark.asyncio(loop_scope="module")
SECRET = "stand-in-webhook-secret"


@pytest.fixture(scope="module")
def standin() -> Iterator[BotApiStandIn]:
    """A stand-in that gives the webhook 1.5 s before it redelivers."""
    with BotApiStandIn(webhook_timeout_s=1.5) as server:
        yield server


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def webhook(engine: Any, standin: BotApiStandIn) -> AsyncIterator[Any]:
    """A FastAPI app with the webhook mounted, served by uvicorn on loopback."""
    import uvicorn
    from fastapi import FastAPI

    from bot.channels.telegram.webhook import mount

    async def same_engine() -> Any:
        return engine

    app = FastAPI()
    service = mount(app, settings=telegram_settings(standin), engine_factory=same_engine)
    assert service is not None
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.02)
    yield service, f"http://127.0.0.1:{port}/telegram/webhook"
    server.should_exit = True
    await task


def cli_env(standin: BotApiStandIn, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BILLTALK_TELEGRAM_")}
    env.update(
        {
            "BILLTALK_TELEGRAM_TOKEN": TOKEN,
            "BILLTALK_TELEGRAM_API_URL": standin.api_url,
            "BILLTALK_TELEGRAM_FILE_URL": standin.file_url,
            "BILLTALK_TELEGRAM_WEBHOOK_SECRET": SECRET,
            **extra,
        }
    )
    return env


async def test_set_webhook_registers_the_url_with_its_secret(
    webhook: Any, standin: BotApiStandIn
) -> None:
    _, url = webhook
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "app", "telegram", "set-webhook", "--url", url],
        env=cli_env(standin),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert '"ok": true' in done.stdout
    assert TOKEN not in done.stdout + done.stderr
    assert standin.webhook == {"url": url, "secret_token": SECRET, "max_connections": "40"}


async def test_a_request_without_or_with_a_wrong_secret_is_403_and_does_nothing(
    webhook: Any, standin: BotApiStandIn
) -> None:
    service, url = webhook
    chat = new_chat()
    update = standin.message(chat, text="how much do I owe?")
    async with httpx.AsyncClient() as client:
        for headers in (
            {},
            {"X-Telegram-Bot-Api-Secret-Token": "wrong"},
            {"X-Telegram-Bot-Api-Secret-Token": ""},
        ):
            response = await client.post(url, json=update, headers=headers)
            assert response.status_code == 403
            assert response.json()["error"]["code"] == "forbidden"
        bad = await client.post(
            url, content=b"{not json", headers={"X-Telegram-Bot-Api-Secret-Token": SECRET}
        )
        assert bad.status_code == 400
    assert service.runtime.adapter.ledger.status(update["update_id"]) is None
    assert standin.sent(chat) == []


async def test_updates_posted_to_the_webhook_are_answered(
    webhook: Any, standin: BotApiStandIn, seeded: Any, engine: Any
) -> None:
    _service, url = webhook
    standin.webhook = {"url": url, "secret_token": SECRET}
    chat = new_chat()
    resident = seeded.roles["payer"]["resident_id"]
    code = (await engine.billing.create_link_code(resident)).code
    standin.text(chat, f"/start {code}")
    await standin.until(lambda: any("linked" in t for t in standin.texts(chat)))
    standin.text(chat, "how much do I owe?")
    await standin.until(lambda: len(standin.texts(chat)) == 2, what="balance")
    assert AMOUNT.search(standin.texts(chat)[1])
    answered = {d.update_id for d in standin.deliveries if d.status == 200}
    assert {d.update_id for d in standin.deliveries} <= answered, standin.deliveries


async def test_an_update_redelivered_after_a_webhook_timeout_acts_once(
    webhook: Any, standin: BotApiStandIn, seeded: Any, engine: Any
) -> None:
    service, url = webhook
    standin.webhook = {"url": url, "secret_token": SECRET}
    chat = new_chat()
    resident = seeded.roles["other"]["resident_id"]
    code = (await engine.billing.create_link_code(resident)).code
    standin.text(chat, f"/start {code}")
    await standin.until(lambda: standin.texts(chat), what="linked")
    household = seeded.roles["other"]["household_id"]
    before = len(await engine.billing.list_payments(household, limit=200))
    standin.text(chat, "pay 3 for water")
    await standin.until(lambda: standin.buttons(chat), what="confirm")
    [pay] = [d for t, d in standin.buttons(chat) if t.startswith("Pay")]
    # the bot's answer to the press is slow: the stand-in gives up and redelivers the press
    standin.fail("editMessageText", 0, delay_s=2.5, chat_id=chat)
    press = standin.press(chat, pay)
    await standin.until(
        lambda: sum(d.update_id == press["update_id"] for d in standin.deliveries) >= 2,
        timeout=30,
        what="a redelivery",
    )
    await standin.until(
        lambda: service.runtime.adapter.ledger.status(press["update_id"]) == "done",
        what="the press handled",
    )
    await asyncio.sleep(1.0)
    assert len(await engine.billing.list_payments(household, limit=200)) == before + 1
    outcome = joined(standin.sent(chat)[2:])
    assert outcome.count("Paid") == 1, outcome
    # the very same update delivered twice more at once: still acts once
    update = standin.message(chat, text="how much do I owe?")
    standin.inject(update)
    standin.redeliver(update)
    await standin.until(
        lambda: service.runtime.adapter.ledger.status(update["update_id"]) == "done",
        what="the balance",
    )
    await asyncio.sleep(0.5)
    assert sum("in total" in t for t in standin.texts(chat)) == 1


async def test_a_webhook_redelivery_of_an_update_whose_worker_died_is_answered_once(
    webhook: Any, standin: BotApiStandIn, seeded: Any, engine: Any
) -> None:
    """Another worker claimed the update, recorded its turn and died before answering."""
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import update as sql_update

    from bot.channels.telegram.ledger import Claim, updates_table
    from bot.messages import IncomingMessage

    service, url = webhook
    standin.webhook = {"url": url, "secret_token": SECRET}
    adapter = service.runtime.adapter
    chat = new_chat()
    code = (await engine.billing.create_link_code(seeded.roles["payer"]["resident_id"])).code
    start = standin.text(chat, f"/start {code}")
    await standin.until(lambda: adapter.ledger.status(start["update_id"]) == "done", what="linked")
    update = standin.message(chat, text="how much do I owe?")
    assert adapter.ledger.claim_update(update["update_id"], str(chat), "dead-worker") == Claim(
        wait=False, fresh=True
    )
    await engine.handle(
        IncomingMessage(
            channel="telegram",
            external_user_id=str(chat),
            text="how much do I owe?",
            delivery_id=f"telegram:{adapter.bot_id}:{update['update_id']}",
        )
    )
    with adapter.ledger.db.begin() as conn:
        conn.execute(
            sql_update(updates_table)
            .where(updates_table.c.update_id == update["update_id"])
            .values(claimed_at=datetime.now(UTC) - timedelta(hours=1))
        )
    standin.redeliver(update)
    await standin.until(
        lambda: adapter.ledger.status(update["update_id"]) == "done", what="the redelivery handled"
    )
    await standin.until(
        lambda: any("in total" in t for t in standin.texts(chat)), what="the recorded answer"
    )
    standin.redeliver(update)  # answered now: nothing more
    await asyncio.sleep(1.0)
    assert sum("in total" in t for t in standin.texts(chat)) == 1


async def test_a_voice_note_is_acknowledged_once_claimed_and_only_its_own_chat_waits_for_it(
    webhook: Any, standin: BotApiStandIn, seeded: Any, engine: Any, tmp_path: Any
) -> None:
    """The webhook answers a voice note's request as soon as the update is claimed (its raw
    JSON kept in the ledger) and finishes the turn in the background: another chat's text is
    answered meanwhile, while the same chat's next text still waits for the note."""
    from sqlalchemy import text

    from tests.channels.telegram.helpers import ogg_note

    service, url = webhook
    standin.webhook = {"url": url, "secret_token": SECRET}
    runtime = service.runtime
    ledger = runtime.adapter.ledger
    voice_chat, text_chat = new_chat(), new_chat()
    for chat, role in ((voice_chat, "payer"), (text_chat, "other")):
        code = (await engine.billing.create_link_code(seeded.roles[role]["resident_id"])).code
        standin.text(chat, f"/start {code}")
    await standin.until(
        lambda: standin.texts(voice_chat) and standin.texts(text_chat), what="both linked"
    )
    # which updates may be answered before their turn is done: media, not text or presses
    assert runtime.acks_early(standin.message(voice_chat, voice={"file_id": "x"}))
    assert runtime.acks_early(standin.message(voice_chat, photo=[{"file_id": "x"}]))
    assert not runtime.acks_early(standin.message(voice_chat, text="hi"))
    assert not runtime.acks_early(standin.press_update(voice_chat, "b", message_id=1))

    ogg = ogg_note("how much do I owe", tmp_path)
    standin.fail("getFile", 0, delay_s=2.0)  # a slow download: the turn outlasts the request
    note = standin.voice(voice_chat, ogg)
    later = standin.text(voice_chat, "show my payment history")  # sent after the note
    await standin.until(
        lambda: any(d.update_id == note["update_id"] for d in standin.deliveries),
        what="the note's delivery answered",
    )
    [delivery] = [d for d in standin.deliveries if d.update_id == note["update_id"]]
    assert delivery.status == 200
    assert ledger.status(note["update_id"]) == "processing"  # answered before its turn
    kept = with_payload(ledger, note["update_id"])
    assert kept is not None and json.loads(kept) == note  # the update, for a takeover

    other = standin.text(text_chat, "how much do I owe?")
    await standin.until(lambda: ledger.status(other["update_id"]) == "done", what="other chat")
    assert ledger.status(note["update_id"]) == "processing"  # other chats do not wait for it

    await standin.until(
        lambda: ledger.status(later["update_id"]) == "done", timeout=60, what="the later text"
    )
    assert ledger.status(note["update_id"]) == "done"
    replies = standin.calls_of("sendMessage", voice_chat)[1:]  # after "linked"
    assert delivery.at < replies[0].at  # acknowledged before the first reply
    # the same chat's later text waited: the note's turn was logged (and answered) first
    with engine.store.session() as s:
        logged = [
            r[0]
            for r in s.execute(
                text(
                    "SELECT t.text_raw FROM bot_turns t JOIN bot_conversations c "
                    "ON c.id = t.conversation_id WHERE c.channel = 'telegram' "
                    "AND c.external_user_id = :chat ORDER BY t.turn"
                ),
                {"chat": str(voice_chat)},
            )
        ]
    assert len(logged) == 3 and logged[2] == "show my payment history", logged
    assert AMOUNT.search(joined(replies[:-1])), joined(replies)
    assert len([d for d in standin.deliveries if d.update_id == note["update_id"]]) == 1
    assert with_payload(ledger, note["update_id"]) is None  # dropped once done


def with_payload(ledger: Any, update_id: int) -> str | None:
    """The raw update kept in the ledger's claim row of ``update_id``."""
    from sqlalchemy import select

    from bot.channels.telegram.ledger import updates_table

    with ledger.db.connect() as conn:
        return conn.execute(
            select(updates_table.c.payload).where(
                updates_table.c.bot_id == ledger.bot_id,
                updates_table.c.update_id == update_id,
            )
        ).scalar()
