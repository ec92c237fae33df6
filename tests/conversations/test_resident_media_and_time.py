"""A photo outside a verification step is explained; times are in the community's zone.

Real seeded database, real NLU, real JPEG bytes from the shared face data.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bot.messages import Attachment, IncomingMessage


def _msg(resident: str, text: str | None = None, **kw: Any) -> IncomingMessage:
    return IncomingMessage(
        channel="telegram", external_user_id=resident, resident_id=resident, text=text, **kw
    )


def _a_photo(shared_data: Path) -> bytes:
    return next(iter(sorted(shared_data.rglob("*.jpg")))).read_bytes()


async def test_a_photo_outside_verification_is_explained(
    make_engine: Any, seeded: Any, shared_data: Path
) -> None:
    engine = make_engine()
    resident = seeded.roles["payer"]["resident_id"]
    try:
        photo = Attachment("image", _a_photo(shared_data), "me.jpg", "image/jpeg")
        [reply] = await engine.handle(_msg(resident, attachments=(photo,)))
        assert "only to check it's you when you pay" in reply.text, reply.text
        assert "didn't get any text" not in reply.text
        [reply] = await engine.handle(_msg(resident, attachments=(photo,), language="zh"))
        assert "确认是您本人" in reply.text or "only to check" in reply.text
    finally:
        await engine.billing.aclose()


async def test_a_photo_during_a_payment_keeps_the_payment(
    make_engine: Any, seeded: Any, shared_data: Path
) -> None:
    engine = make_engine()
    resident = seeded.roles["payer"]["resident_id"]
    try:
        [reply] = await engine.handle(_msg(resident, "pay the water bill"))
        assert "Please confirm" in reply.text
        photo = Attachment("image", _a_photo(shared_data), "bill.jpg", "image/jpeg")
        [reply] = await engine.handle(_msg(resident, attachments=(photo,)))
        assert "only to check it's you" in reply.text
        [reply] = await engine.handle(_msg(resident, "1"))
        assert "Paid" in reply.text, "the confirmation's buttons stayed valid"
    finally:
        await engine.billing.aclose()


async def test_times_are_in_the_community_time_zone_and_labelled(
    make_engine: Any, seeded: Any
) -> None:
    engine = make_engine()
    resident = seeded.roles["payer"]["resident_id"]
    try:
        [reply] = await engine.handle(_msg(resident, "show my payment history"))
        assert "(Beijing time)" in reply.text, reply.text
        [reply] = await engine.handle(_msg(resident, "我的缴费记录"))
        assert "北京时间" in reply.text, reply.text
    finally:
        await engine.billing.aclose()


def test_format_datetime_converts_utc_to_the_community_zone() -> None:
    from datetime import UTC, datetime

    from bot.responses import format_datetime

    at = datetime(2026, 11, 20, 17, 30, tzinfo=UTC)
    assert format_datetime(at, "en") == "21 Nov 2026 01:30 (Beijing time)"
    assert format_datetime(at, "zh") == "2026年11月21日 01:30（北京时间）"
