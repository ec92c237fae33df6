"""A PIN is chosen right after the link code (the property office's), not inside a payment."""

from __future__ import annotations

from typing import Any

from bot.messages import IncomingMessage


def _tg(text: str, user: str = "tg-5001") -> IncomingMessage:
    return IncomingMessage(channel="telegram", external_user_id=user, text=text)


async def test_the_pin_is_offered_right_after_the_link_code(make_engine: Any, seeded: Any) -> None:
    payer = seeded.roles["payer"]
    engine = make_engine(step_up_threshold="1.00")
    try:
        [reply] = await engine.handle(_tg("how much do I owe?"))
        assert "¥" not in reply.text, "an unlinked chat is never shown an amount"
        [reply] = await engine.handle(_tg(payer["link_code"]))
        assert "linked" in reply.text and "6-digit PIN" in reply.text, reply.text
        [reply] = await engine.handle(_tg("482916"))
        assert "same PIN again" in reply.text
        [reply] = await engine.handle(_tg("482916"))
        assert "PIN is set" in reply.text
        [reply] = await engine.handle(_tg("pay the water bill"))
        assert "Please confirm" in reply.text
        [reply] = await engine.handle(_tg("1"))
        assert "send your 6-digit PIN" in reply.text, reply.text
        [reply] = await engine.handle(_tg("482916"))
        assert "Paid" in reply.text, reply.text
    finally:
        await engine.billing.aclose()


async def test_later_skips_the_pin_and_a_large_payment_then_waits(
    make_engine: Any, seeded: Any
) -> None:
    payer = seeded.roles["payer"]
    engine = make_engine(step_up_threshold="1.00")
    try:
        await engine.handle(_tg(payer["link_code"], user="tg-5002"))
        [reply] = await engine.handle(_tg("cancel", user="tg-5002"))
        assert "stopped setting up the PIN" in reply.text, reply.text
        await engine.handle(_tg("pay the water bill", user="tg-5002"))
        [reply] = await engine.handle(_tg("1", user="tg-5002"))
        assert "one-time code" in reply.text and "Paid" not in reply.text, reply.text
        assert "choose a 6-digit PIN" not in reply.text
    finally:
        await engine.billing.aclose()
