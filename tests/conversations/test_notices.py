"""Proactive notices: a pending payment that settles later is told once, unprompted.

Real seeded database, real NLU, the sandbox gateway's timeout token, and the
real reconciliation (``services.reconcile_pending``, what ``billtalk payments
reconcile`` runs) on the same database.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from sqlalchemy import select, update

from bot.channels.terminal import run_chat
from bot.log_export import export_conversation
from bot.messages import IncomingMessage

REPO = Path(__file__).resolve().parents[2]


def _msg(
    resident: str, text: str | None = None, payload: str | None = None, channel: str = "telegram"
) -> IncomingMessage:
    return IncomingMessage(
        channel=channel,
        external_user_id=f"{channel}-{resident}",
        resident_id=resident,
        text=text,
        button_payload=payload,
    )


def _set_token(url: str, household: str, token: str) -> None:
    from backend.adapters import orm
    from billtalk.db import make_engine

    db = make_engine(url)
    with db.begin() as conn:
        conn.execute(
            update(orm.Household)
            .where(orm.Household.household_id == household)
            .values(saved_method_token=token)
        )
    db.dispose()


def _reconcile(url: str) -> dict[str, int]:
    from backend.gateway import get_gateway
    from backend.service_layer import services
    from backend.service_layer.unit_of_work import UnitOfWork

    return services.reconcile_pending(UnitOfWork.from_url(url), get_gateway())


def _notice_rows(url: str, payment_id: str) -> list[Any]:
    from sqlalchemy.orm import Session

    from backend.adapters import orm
    from billtalk.db import make_engine

    db = make_engine(url)
    with Session(db) as session:
        rows = list(session.scalars(select(orm.Notice).where(orm.Notice.payment_id == payment_id)))
        session.expunge_all()
    db.dispose()
    return rows


async def _pay_pending(
    engine: Any, resident: str, text: str = "pay the water bill", channel: str = "telegram"
) -> str:
    [confirm] = await engine.handle(_msg(resident, text, channel=channel))
    [reply] = await engine.handle(
        _msg(resident, payload=confirm.buttons[0].payload, channel=channel)
    )
    assert "pending" in reply.text.lower() or "处理中" in reply.text, reply.text
    conversation = engine.store.conversation_id_for(
        channel, f"{channel}-{resident}", resident, engine.clock()
    )
    state = json.loads(engine.store.get_conversation(conversation).state)
    return str(state["slots"]["pending_payment_id"])


def _payment_deliveries(deliveries: list[Any]) -> list[Any]:
    return [d for d in deliveries if d.kind.startswith("payment_")]


async def test_a_settled_pending_payment_is_delivered_once_by_polling(
    seeded: Any, make_engine: Any, community_db: str
) -> None:
    payer = seeded.roles["payer"]
    resident = payer["resident_id"]
    _set_token(community_db, payer["household_id"], "tok_timeout")
    worker_a, worker_b = make_engine(), make_engine()
    try:
        payment_id = await _pay_pending(worker_a, resident)
        assert _payment_deliveries(await worker_a.deliver_notices(channel="telegram")) == []
        assert _reconcile(community_db)["succeeded"] == 1
        assert len(_notice_rows(community_db, payment_id)) == 1
        # two workers poll at once: one of them delivers it
        a, b = await asyncio.gather(
            worker_a.deliver_notices(channel="telegram"),
            worker_b.deliver_notices(channel="telegram"),
        )
        [delivery] = _payment_deliveries(a + b)
        assert delivery.channel == "telegram" and delivery.resident_id == resident
        text = delivery.messages[0].text
        assert "has gone through" in text and "Receipt number R" in text, text
        assert _payment_deliveries(await worker_a.deliver_notices()) == []
        # the resident's next message does not repeat it
        [reply] = await worker_b.handle(_msg(resident, "thanks"))
        assert "has gone through" not in reply.text
        conversation = delivery.conversation_id
        state = json.loads(worker_a.store.get_conversation(conversation).state)
        assert "pending_payment_id" not in state["slots"]
        [row] = _notice_rows(community_db, payment_id)
        assert row.status == "delivered" and row.channel == "telegram"
        events = export_conversation(worker_a.store, conversation)["events"]  # type: ignore[index]
        told = [e for e in events if e["event"] == "bot" and e["metadata"].get("name") == "notice"]
        paid = [e for e in told if e["metadata"]["kind"] == "payment_succeeded"]
        assert len(paid) == 1 and paid[0]["metadata"]["payment_id"] == payment_id
        assert "has gone through" in paid[0]["text"]
        # placed after the payment turn and before the "thanks" turn
        users = [i for i, e in enumerate(events) if e["event"] == "user"]
        assert users[1] < events.index(paid[0]) < users[2]
    finally:
        await worker_a.billing.aclose()
        await worker_b.billing.aclose()


async def test_the_next_message_tells_it_when_nobody_polled(
    seeded: Any, make_engine: Any, community_db: str, clock: Any
) -> None:
    payer = seeded.roles["payer"]
    resident = payer["resident_id"]
    _set_token(community_db, payer["household_id"], "tok_timeout_decline")
    engine = make_engine()
    try:
        payment_id = await _pay_pending(engine, resident)
        clock.advance(minutes=30)  # the session idles out; the promise to tell them does not
        _reconcile(community_db)
        [reply] = await engine.handle(_msg(resident, "hello"))
        assert "did not go through" in reply.text, reply.text
        assert (
            "payment_status_update"
            in engine.store.turns(
                engine.store.conversation_id_for(
                    "telegram", f"telegram-{resident}", resident, clock()
                )
            )[-1].actions
        )
        [row] = _notice_rows(community_db, payment_id)
        assert row.status == "delivered" and row.kind == "payment_failed"
        assert _payment_deliveries(await engine.deliver_notices()) == []
        [reply] = await engine.handle(_msg(resident, "hello"))
        assert "did not go through" not in reply.text
    finally:
        await engine.billing.aclose()


async def test_a_poller_on_another_channel_leaves_it_for_the_right_conversation(
    seeded: Any, make_engine: Any, community_db: str
) -> None:
    payer = seeded.roles["payer"]
    resident = payer["resident_id"]
    _set_token(community_db, payer["household_id"], "tok_timeout")
    engine = make_engine()
    try:
        await engine.handle(_msg(resident, "hi", channel="terminal"))
        payment_id = await _pay_pending(engine, resident, "交水费", channel="telegram")
        _reconcile(community_db)
        assert _payment_deliveries(await engine.deliver_notices(channel="terminal")) == []
        assert _notice_rows(community_db, payment_id)[0].status == "pending"
        [delivery] = _payment_deliveries(await engine.deliver_notices(channel="telegram"))
        assert "支付已成功" in delivery.messages[0].text, "in the conversation's language"
    finally:
        await engine.billing.aclose()


async def test_arrears_reminders_are_delivered_in_the_residents_words(
    seeded: Any, make_engine: Any
) -> None:
    resident = seeded.roles["payer"]["resident_id"]
    engine = make_engine()
    try:
        assert await engine.deliver_notices(resident_id=resident) == []  # no conversation yet
        await engine.handle(_msg(resident, "hi"))
        deliveries = await engine.deliver_notices(resident_id=resident, channel="telegram")
        assert deliveries, "the seed queues reminders for a household with bills due"
        for d in deliveries:
            assert d.kind in ("due_soon", "due_today", "overdue_7", "overdue_30"), d.kind
            text = d.messages[0].text
            assert "¥" in text and "bill" in text, text
        assert await engine.deliver_notices(resident_id=resident) == []
    finally:
        await engine.billing.aclose()


class _ScriptedStdin(io.StringIO):
    """Lines for the chat; runs ``between`` before handing out line ``at``."""

    def __init__(self, lines: list[str], at: int, between: Any) -> None:
        super().__init__("".join(line + "\n" for line in lines))
        self.count, self.at, self.between = 0, at, between

    def readline(self, *args: Any) -> str:  # type: ignore[override]
        if self.count == self.at:
            self.between()
        self.count += 1
        return super().readline(*args)

    def isatty(self) -> bool:
        return False


async def test_terminal_chat_prints_the_notice_when_it_arrives(
    seeded: Any, make_engine: Any, community_db: str
) -> None:
    payer = seeded.roles["payer"]
    resident = payer["resident_id"]
    _set_token(community_db, payer["household_id"], "tok_timeout")
    engine = make_engine()
    # drain the seed's reminders first, so the blocks below hold only this story
    await engine.handle(_msg(resident, "hi", channel="terminal"))
    await engine.deliver_notices(resident_id=resident)
    stdin = _ScriptedStdin(
        ["pay the water bill", "1", "how much do I owe?"],
        at=2,
        between=lambda: _reconcile(community_db),
    )
    stdout = io.StringIO()
    try:
        await run_chat(engine, resident, "en", stdin=stdin, stdout=stdout)
    finally:
        await engine.billing.aclose()
    blocks = stdout.getvalue().split("--\n")
    assert blocks[-1] == "" and len(blocks) == 4, stdout.getvalue()
    assert "I'll tell you when it completes" in blocks[1]
    assert "has gone through" not in blocks[1]
    assert "has gone through" in blocks[2] and "in total" in blocks[2], blocks[2]
    assert blocks[2].index("has gone through") < blocks[2].index("in total")


def test_chat_after_billtalk_payments_reconcile(seeded: Any, community_db: str) -> None:
    """Separate processes: pay (pending), ``billtalk payments reconcile``, chat again."""
    payer = seeded.roles["payer"]
    _set_token(community_db, payer["household_id"], "tok_timeout")
    env = dict(os.environ)
    env["BILLTALK_DATABASE_URL"] = community_db
    env["BILLTALK_SECRET_KEY"] = "test-secret-key-for-the-test-suite-only"

    def run(*args: str, lines: list[str] | None = None) -> str:
        result = subprocess.run(
            [sys.executable, "-m", "app", *args],
            input="".join(line + "\n" for line in lines or []),
            capture_output=True,
            encoding="utf-8",
            env=env,
            cwd=REPO,
            timeout=900,
        )
        assert result.returncode == 0, result.stderr[-2000:]
        return result.stdout

    chat = ["chat", "--resident", payer["resident_id"]]
    first = run(*chat, lines=["pay the water bill", "1"]).split("--\n")
    assert "I'll tell you when it completes" in first[1]
    assert json.loads(run("payments", "reconcile"))["succeeded"] == 1
    second = run(*chat, lines=["thanks"]).split("--\n")
    assert second[0].count("has gone through") == 1, second[0]
    third = run(*chat, lines=["thanks"]).split("--\n")
    assert "has gone through" not in third[0]
