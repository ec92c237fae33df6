"""Pushed without asking: the backend's reminders and a pending payment's outcome in Telegram.

The runtime polls the backend's notices (``notice_poll_s``); the courier writes each
into the resident's Telegram conversation with its outbox row, keeping the community's
quiet hours and the resident's language; the outbox sender sends it once.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import update

from tests.channels.telegram.conftest import new_chat
from tests.channels.telegram.helpers import TgChat

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest.fixture(scope="module")
def telegram_overrides() -> dict[str, Any]:
    """The bot polls the backend's notices about three times a second."""
    return {"notice_poll_s": 0.3}


async def linked(runtime: Any, standin: Any, seeded: Any, role: str, language: str) -> TgChat:
    chat = TgChat(runtime, standin, new_chat(), language_code=language)
    resident = seeded.roles[role]["resident_id"]
    code = (await runtime.engine.billing.create_link_code(resident)).code
    await chat.send(f"/start {code}")
    return chat


def reminders(standin: Any, chat: TgChat, marker: str) -> list[str]:
    return [t for t in standin.texts(chat.chat_id) if marker in t]


async def test_reminders_wait_for_the_quiet_hours_then_arrive_once_in_chinese(
    runtime: Any, standin: Any, seeded: Any, clock: Any
) -> None:
    clock.now = datetime(2026, 11, 20, 14, 30, tzinfo=UTC)  # 22:30 in Shanghai: quiet
    chat = await linked(runtime, standin, seeded, "payer", "zh-hans")
    await asyncio.sleep(1.5)  # several polls
    assert reminders(standin, chat, "缴费提醒") == []
    clock.now = datetime(2026, 11, 21, 0, 30, tzinfo=UTC)  # 08:30 in Shanghai
    await standin.until(
        lambda: reminders(standin, chat, "缴费提醒"), timeout=30, what="the morning's reminder"
    )
    await asyncio.sleep(1.5)  # more polls, by this worker: told once
    [digest] = reminders(standin, chat, "缴费提醒")
    assert "已逾期" in digest and "元" in digest, digest


async def test_a_pending_payment_that_settles_later_is_told_once(
    runtime: Any, standin: Any, seeded: Any, tg_db: str
) -> None:
    from backend.adapters import orm
    from backend.gateway import get_gateway
    from backend.service_layer import services
    from backend.service_layer.unit_of_work import UnitOfWork
    from billtalk.db import make_engine

    role = seeded.roles["other"]
    db = make_engine(tg_db)
    with db.begin() as conn:  # the gateway times out on this household's card: pending
        conn.execute(
            update(orm.Household)
            .where(orm.Household.household_id == role["household_id"])
            .values(saved_method_token="tok_timeout")
        )
    db.dispose()
    chat = await linked(runtime, standin, seeded, "other", "en")
    await chat.send("pay 6 for water")
    [pay] = [d for t, d in standin.buttons(chat.chat_id) if t.startswith("Pay")]
    outcome = await chat.press_data(pay)
    assert "pending" in outcome.lower(), outcome
    assert services.reconcile_pending(UnitOfWork.from_url(tg_db), get_gateway())["succeeded"] >= 1
    await standin.until(
        lambda: reminders(standin, chat, "has gone through"),
        timeout=30,
        what="the payment's outcome",
    )
    await asyncio.sleep(1.5)
    [told] = reminders(standin, chat, "has gone through")
    assert "6.00" in told and "Receipt number R" in told, told
