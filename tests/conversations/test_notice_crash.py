"""Notices survive a worker dying between writing one and marking it delivered.

The notice is written into the conversation first (keyed by its backend id in
``bot_notice_deliveries``), then marked delivered in the backend. These tests
kill the worker at the seam between the two steps (the real in-process
``BillingClient``'s mark raises, as if the process died there), then poll with
a new engine on the same database: the resident is told exactly once, and the
backend ends up showing the notice delivered.

Real seeded database, real NLU, the sandbox gateway's timeout token, and the
real reconciliation, as in ``test_notices.py``.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import select

from bot.log_export import export_conversation
from bot.store import NoticeDeliveryRow
from tests.conversations.test_notices import (
    _msg,
    _notice_rows,
    _pay_pending,
    _payment_deliveries,
    _reconcile,
    _set_token,
)


class WorkerDied(RuntimeError):
    """The fault injected at the seam: the worker process is gone."""


def _die_on_mark(engine: Any, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Make ``engine``'s backend mark fail as if the worker died just before it."""
    attempts: list[int] = []

    async def died(notice_id: int, channel: str) -> Any:
        attempts.append(notice_id)
        raise WorkerDied(notice_id)

    monkeypatch.setattr(engine.billing, "mark_notice_delivered", died)
    return attempts


def _told(engine: Any, conversation: str, payment_id: str) -> list[dict[str, Any]]:
    events = export_conversation(engine.store, conversation)["events"]  # type: ignore[index]
    return [
        e
        for e in events
        if e["event"] == "bot"
        and e["metadata"].get("name") == "notice"
        and e["metadata"].get("payment_id") == payment_id
    ]


def _conversation(engine: Any, resident: str) -> str:
    return str(
        engine.store.conversation_id_for(
            "telegram", f"telegram-{resident}", resident, engine.clock()
        )
    )


async def _settled_pending(
    seeded: Any, make_engine: Any, community_db: str, token: str
) -> tuple[Any, str, str]:
    """A worker, a resident and their payment: left pending, then settled by reconciliation."""
    payer = seeded.roles["payer"]
    resident = payer["resident_id"]
    _set_token(community_db, payer["household_id"], token)
    worker = make_engine()
    payment_id = await _pay_pending(worker, resident)
    await worker.deliver_notices(channel="telegram")  # the seed's reminders, out of the way
    _reconcile(community_db)
    return worker, resident, payment_id


async def test_a_worker_dying_between_write_and_mark_loses_nothing_and_repeats_nothing(
    seeded: Any, make_engine: Any, community_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    dead, resident, payment_id = await _settled_pending(
        seeded, make_engine, community_db, "tok_timeout"
    )
    attempts = _die_on_mark(dead, monkeypatch)
    with pytest.raises(WorkerDied):
        await dead.deliver_notices(channel="telegram")
    await dead.billing.aclose()
    [notice] = _notice_rows(community_db, payment_id)
    assert attempts == [notice.notice_id], "it died at the mark, after the write"
    assert notice.status == "pending", "the backend was never told"
    conversation = _conversation(dead, resident)
    assert len(_told(dead, conversation, payment_id)) == 1, "written before the crash"
    written = dead.store.notice_delivery(notice.notice_id)
    assert written is not None and written.mode == "poll" and written.marked_at is None

    # two fresh workers on the same database poll at once: one of them hands it over
    worker_b, worker_c = make_engine(), make_engine()
    try:
        b, c = await asyncio.gather(
            worker_b.deliver_notices(channel="telegram"),
            worker_c.deliver_notices(channel="telegram"),
        )
        [delivery] = _payment_deliveries(b + c)
        assert delivery.conversation_id == conversation and delivery.notice_id == notice.notice_id
        assert "has gone through" in delivery.messages[0].text, delivery.messages[0].text
        [row] = _notice_rows(community_db, payment_id)
        assert row.status == "delivered" and row.channel == "telegram"
        assert worker_b.store.notice_delivery(notice.notice_id).marked_at is not None
        assert len(_told(worker_b, conversation, payment_id)) == 1, "not written twice"
        assert _payment_deliveries(await worker_b.deliver_notices()) == []
        [reply] = await worker_c.handle(_msg(resident, "thanks"))
        assert "has gone through" not in reply.text
    finally:
        await worker_b.billing.aclose()
        await worker_c.billing.aclose()


async def test_a_worker_dying_while_writing_leaves_the_notice_pending(
    seeded: Any, make_engine: Any, community_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The old order (mark, then write) lost the notice here; now it is still owed."""
    dead, resident, payment_id = await _settled_pending(
        seeded, make_engine, community_db, "tok_timeout_decline"
    )

    def died(*args: Any, **kwargs: Any) -> None:
        raise WorkerDied("in the write")

    monkeypatch.setattr(dead.store, "commit_event", died)
    with pytest.raises(WorkerDied):
        await dead.deliver_notices(channel="telegram")
    await dead.billing.aclose()
    [notice] = _notice_rows(community_db, payment_id)
    assert notice.status == "pending"
    assert dead.store.notice_delivery(notice.notice_id) is None
    conversation = _conversation(dead, resident)
    assert _told(dead, conversation, payment_id) == []

    worker = make_engine()
    try:
        [delivery] = _payment_deliveries(await worker.deliver_notices(channel="telegram"))
        assert "did not go through" in delivery.messages[0].text
        assert _notice_rows(community_db, payment_id)[0].status == "delivered"
        assert len(_told(worker, conversation, payment_id)) == 1
    finally:
        await worker.billing.aclose()


async def test_a_turn_that_told_it_then_died_before_the_mark_is_not_repeated(
    seeded: Any, make_engine: Any, community_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    dead, resident, payment_id = await _settled_pending(
        seeded, make_engine, community_db, "tok_timeout"
    )
    attempts = _die_on_mark(dead, monkeypatch)
    [reply] = await dead.handle(_msg(resident, "hello"))  # the turn itself tells it
    assert "has gone through" in reply.text, reply.text
    await dead.billing.aclose()
    [notice] = _notice_rows(community_db, payment_id)
    assert attempts == [notice.notice_id] and notice.status == "pending"
    written = dead.store.notice_delivery(notice.notice_id)
    assert written is not None and written.mode == "turn"
    conversation = _conversation(dead, resident)
    assert written.conversation_id == conversation

    worker = make_engine()
    try:
        # the poll only marks it: the turn's reply was the telling
        assert _payment_deliveries(await worker.deliver_notices()) == []
        assert _notice_rows(community_db, payment_id)[0].status == "delivered"
        assert _told(worker, conversation, payment_id) == []
        [again] = await worker.handle(_msg(resident, "hello"))
        assert "has gone through" not in again.text
        told = [t for t in worker.store.turns(conversation) if "has gone through" in t.replies]
        assert len(told) == 1
    finally:
        await worker.billing.aclose()


async def test_a_notice_written_elsewhere_is_not_told_in_the_turn(
    seeded: Any, make_engine: Any, community_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A poller wrote it (then died); the resident's next turn leaves it to the retry."""
    dead, resident, payment_id = await _settled_pending(
        seeded, make_engine, community_db, "tok_timeout"
    )
    _die_on_mark(dead, monkeypatch)
    with pytest.raises(WorkerDied):
        await dead.deliver_notices(channel="telegram")
    await dead.billing.aclose()

    worker = make_engine()
    try:
        [reply] = await worker.handle(_msg(resident, "hello"))
        assert "has gone through" not in reply.text
        [delivery] = _payment_deliveries(await worker.deliver_notices(channel="telegram"))
        assert "has gone through" in delivery.messages[0].text
        with worker.store.session() as s:
            rows = list(s.scalars(select(NoticeDeliveryRow)))
        [notice] = _notice_rows(community_db, payment_id)
        assert notice.status == "delivered"
        assert [r.notice_id for r in rows if r.kind.startswith("payment_")] == [notice.notice_id]
    finally:
        await worker.billing.aclose()
