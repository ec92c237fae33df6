"""Several workers on one database: concurrent Pay presses charge once; handoff release."""

from __future__ import annotations

import asyncio
from typing import Any

from bot.handoff import release, waiting
from bot.messages import IncomingMessage


def _msg(resident: str, text: str | None = None, payload: str | None = None) -> IncomingMessage:
    return IncomingMessage(
        channel="telegram",
        external_user_id=f"tg-{resident}",
        resident_id=resident,
        text=text,
        button_payload=payload,
        supports_files=True,
    )


async def test_two_workers_pressing_pay_at_once_charge_once(seeded: Any, make_engine: Any) -> None:
    worker_a, worker_b = make_engine(), make_engine()
    resident = seeded.roles["payer"]["resident_id"]
    household = seeded.roles["payer"]["household_id"]
    try:
        before = await worker_a.billing.list_payments(household, limit=50)
        [confirm] = await worker_a.handle(_msg(resident, "pay 10 for water"))
        pay = confirm.buttons[0].payload
        results = await asyncio.gather(
            worker_a.handle(_msg(resident, payload=pay)),
            worker_b.handle(_msg(resident, payload=pay)),
            worker_a.handle(_msg(resident, payload=pay)),
        )
        texts = [r[0].text for r in results]
        assert sum("Paid" in t for t in texts) == 1, texts
        assert sum("already been made" in t for t in texts) == 2, texts
        after = await worker_b.billing.list_payments(household, limit=50)
        assert len(after) == len(before) + 1
        conversation = worker_a.store.conversation_id_for(
            "telegram", f"tg-{resident}", resident, worker_a.clock()
        )
        assert len(worker_a.store.turns(conversation)) == 4
    finally:
        await worker_a.billing.aclose()
        await worker_b.billing.aclose()


async def test_the_receipt_pdf_goes_to_channels_that_take_files(
    seeded: Any, make_engine: Any
) -> None:
    engine = make_engine()
    resident = seeded.roles["payer"]["resident_id"]
    try:
        [confirm] = await engine.handle(_msg(resident, "pay 10 for water"))
        await engine.handle(_msg(resident, payload=confirm.buttons[0].payload))
        [reply] = await engine.handle(_msg(resident, "send me the receipt for my last payment"))
        assert reply.attachments and reply.attachments[0].data.startswith(b"%PDF")
        assert "Receipt" in reply.text
    finally:
        await engine.billing.aclose()


async def test_staff_release_a_handed_off_conversation(seeded: Any, make_engine: Any) -> None:
    engine = make_engine()
    resident = seeded.roles["payer"]["resident_id"]
    try:
        await engine.handle(_msg(resident, "let me talk to a human please"))
        conversation = engine.store.conversation_id_for(
            "telegram", f"tg-{resident}", resident, engine.clock()
        )
        assert waiting(engine.store, conversation)
        assert await engine.handle(_msg(resident, "hello?")) == []
        assert release(engine.store, conversation, staff="staff-1")
        assert not waiting(engine.store, conversation)
        [reply] = await engine.handle(_msg(resident, "how much do I owe?"))
        assert "in total" in reply.text
    finally:
        await engine.billing.aclose()


async def test_an_unlinked_chat_user_can_only_link(seeded: Any, make_engine: Any) -> None:
    engine = make_engine()
    other = seeded.roles["other"]
    stranger = IncomingMessage(
        channel="telegram", external_user_id="tg-stranger", text="how much do I owe?"
    )
    try:
        [reply] = await engine.handle(stranger)
        assert "link code" in reply.text and other["unit"] not in reply.text
        bad = IncomingMessage(
            channel="telegram", external_user_id="tg-stranger", text="my link code is 000001"
        )
        [reply] = await engine.handle(bad)
        assert "isn't valid" in reply.text
        good = IncomingMessage(
            channel="telegram",
            external_user_id="tg-stranger",
            text=f"my link code is {other['link_code']}",
        )
        [reply] = await engine.handle(good)
        assert "linked" in reply.text
        assert engine.store.linked_resident("telegram", "tg-stranger") == (
            other["resident_id"],
            other["household_id"],
        )
        [reply] = await engine.handle(stranger)
        assert "in total" in reply.text
    finally:
        await engine.billing.aclose()
