"""Reminders people read: one digest per resident, computed days, one pay button.

Real seeded database (its reminder notices queued by the seed), real NLU, the
engine's courier (``deliver_notices``), the community's quiet hours.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from bot.messages import IncomingMessage


def _msg(resident: str, text: str | None = None, **kw: Any) -> IncomingMessage:
    return IncomingMessage(
        channel="telegram", external_user_id=resident, resident_id=resident, text=text, **kw
    )


async def _pending_reminders(engine: Any, household_id: str) -> list[Any]:
    return [
        n
        for n in await engine.billing.pending_notices(limit=200)
        if n.household_id == household_id and n.bill_id
    ]


async def test_one_digest_per_resident_with_computed_days_and_one_button(
    make_engine: Any, seeded: Any, clock: Any
) -> None:
    payer = seeded.roles["payer"]
    resident = payer["resident_id"]
    engine = make_engine()
    try:
        before = await _pending_reminders(engine, payer["household_id"])
        assert len(before) >= 2, "the seed queues several reminders for this household"
        [hello] = await engine.handle(_msg(resident, "hi"))
        assert "Reminder" not in hello.text, "notices are never glued onto a reply"
        deliveries = await engine.deliver_notices(resident_id=resident, channel="telegram")
        assert len(deliveries) == 1, [d.messages[0].text for d in deliveries]
        [message] = deliveries[0].messages
        text = message.text
        today = clock.now.astimezone(UTC).date()  # 09:00 UTC is 17:00 in Shanghai, same day
        balance = await engine.billing.get_balance(payer["household_id"])
        overdue = [b for b in balance.open_bills if b.amount_due > 0 and b.due_date < today]
        assert overdue
        for bill in overdue:
            assert f"{(today - bill.due_date).days} days overdue" in text, text
        assert "Final notice" not in text and "is 7 days overdue" not in text
        assert "late fee" not in text.lower(), "late fees are off in the demo policy"
        [button] = message.buttons
        assert button.title.startswith("Everything") and button.id
        assert await _pending_reminders(engine, payer["household_id"]) == []
        assert await engine.deliver_notices(resident_id=resident) == []

        # The digest's one button pays everything: one confirmation of the whole debt.
        [reply] = await engine.handle(_msg(resident, button_id=button.id))
        assert "one payment of" in reply.text and "covers" in reply.text, reply.text
    finally:
        await engine.billing.aclose()


async def test_reminders_wait_for_the_end_of_quiet_hours(
    make_engine: Any, seeded: Any, clock: Any
) -> None:
    payer = seeded.roles["payer"]
    resident = payer["resident_id"]
    engine = make_engine()
    try:
        await engine.handle(_msg(resident, "hi"))
        clock.now = datetime(2026, 11, 20, 14, 30, tzinfo=UTC)  # 22:30 in Shanghai
        assert await engine.deliver_notices(resident_id=resident, channel="telegram") == []
        assert await _pending_reminders(engine, payer["household_id"]), "still pending"
        clock.now = datetime(2026, 11, 20, 23, 30, tzinfo=UTC)  # 07:30 next day: still quiet
        assert await engine.deliver_notices(resident_id=resident, channel="telegram") == []
        clock.now += timedelta(hours=1)  # 08:30 in Shanghai
        deliveries = await engine.deliver_notices(resident_id=resident, channel="telegram")
        assert len(deliveries) == 1
    finally:
        await engine.billing.aclose()


async def test_the_digest_is_in_the_residents_language(make_engine: Any, seeded: Any) -> None:
    resident = seeded.roles["payer"]["resident_id"]
    engine = make_engine()
    try:
        await engine.handle(_msg(resident, "你好"))
        [delivery] = await engine.deliver_notices(resident_id=resident, channel="telegram")
        text = delivery.messages[0].text
        assert "缴费提醒" in text and "已逾期" in text and "天" in text, text
        assert delivery.messages[0].buttons[0].title.startswith("全部")
    finally:
        await engine.billing.aclose()


async def test_a_digest_during_a_payment_leaves_its_buttons_alone(
    make_engine: Any, seeded: Any
) -> None:
    resident = seeded.roles["payer"]["resident_id"]
    engine = make_engine()
    try:
        [confirm] = await engine.handle(_msg(resident, "pay the water bill"))
        assert "Please confirm" in confirm.text
        [delivery] = await engine.deliver_notices(resident_id=resident, channel="telegram")
        assert delivery.messages[0].buttons == ()
        [paid] = await engine.handle(_msg(resident, "1"))
        assert "Paid" in paid.text and "water" in paid.text, paid.text
    finally:
        await engine.billing.aclose()
