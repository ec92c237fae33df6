"""The risk review queue: held payments approved or declined by supervisors, per building."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.adapters.orm import Payment
from tests.console.helpers import login, page_csrf


def _held(engine, household: str, amount: str) -> str:  # type: ignore[no-untyped-def]
    pid = f"pay-{uuid.uuid4().hex[:12]}"
    now = datetime.now(UTC)
    with Session(engine) as s, s.begin():
        s.add(
            Payment(
                payment_id=pid,
                household_id=household,
                utility=None,
                amount=Decimal(amount),
                method="wallet",
                status="review",
                idempotency_key=pid,
                request_hash="x" * 64,
                gateway="sandbox",
                source="api",
                created_at=now,
                updated_at=now,
                risk={
                    "score": 91,
                    "level": "highest",
                    "action": "review",
                    "reasons": ["new_device", "amount_spike"],
                },
            )
        )
    return pid


def _status(engine, pid: str) -> str:  # type: ignore[no-untyped-def]
    with Session(engine) as s:
        return str(s.scalar(select(Payment.status).where(Payment.payment_id == pid)))


def test_supervisors_approve_or_decline_held_payments_of_their_buildings(console_env) -> None:  # type: ignore[no-untyped-def]
    e = console_env.engine
    mine = _held(e, "H0101", "420.00")
    other = _held(e, "H0201", "390.00")
    agent = login(console_env.base, "agent1")
    assert agent.get("/console/risk").status_code == 403
    sup = login(console_env.base, "super1")
    page = sup.get("/console/risk").text
    assert mine in page and other not in page and "amount_spike" in page
    csrf = page_csrf(sup, "/console/risk")
    # another building's payment cannot be decided
    assert sup.post(f"/console/risk/{other}/decline", data={"csrf_token": csrf}).status_code == 400
    assert _status(e, other) == "review"
    assert (
        agent.post(
            f"/console/risk/{mine}/decline", data={"csrf_token": page_csrf(agent)}
        ).status_code
        == 403
    )
    r = sup.post(
        f"/console/risk/{mine}/decline",
        data={"csrf_token": csrf, "reason": "resident did not confirm"},
    )
    assert r.status_code == 303
    assert _status(e, mine) != "review"
    assert mine not in sup.get("/console/risk").text
    # deciding twice is refused clearly
    assert sup.post(f"/console/risk/{mine}/approve", data={"csrf_token": csrf}).status_code == 400
    admin = login(console_env.base, "admin1")
    r = admin.post(f"/console/risk/{other}/approve", data={"csrf_token": page_csrf(admin)})
    assert r.status_code == 303
    assert _status(e, other) == "succeeded"
