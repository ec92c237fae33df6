"""Settling a payment: the gateway call, applying its answer, the payment as the API shows it."""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import inspect
from sqlalchemy.orm.attributes import set_committed_value

from backend import schemas
from backend.adapters import orm
from backend.domain import allocation as alloc
from backend.domain import ledger
from backend.domain import payments as pay_rules
from backend.domain import reminders as reminder_rules
from backend.domain.money import ZERO
from backend.gateway.base import GatewayResult, PaymentGateway
from backend.service_layer import audit
from backend.service_layer.common import (
    aware,
    post,
    refresh_status,
)
from backend.service_layer.unit_of_work import UnitOfWork
from billtalk.settings import get_settings


def request_hash(
    household_id: str, utility: str | None, amount: Decimal, method: str, payment_token: str | None
) -> str:
    body = json.dumps(
        {
            "household_id": household_id,
            "utility": utility,
            "amount": format(amount, "f"),
            "method": method,
            "payment_token": payment_token,
        },
        sort_keys=True,
    )
    return hashlib.sha256(body.encode()).hexdigest()


def open_bills(bills: list[orm.Bill]) -> list[alloc.OpenBill]:
    return [
        alloc.OpenBill(b.bill_id, b.utility, b.period_start, b.period_end, b.total - b.amount_paid)
        for b in bills
    ]


def allocations_out(
    uow: UnitOfWork, payment: orm.Payment, known: dict[str, orm.Bill] | None = None
) -> list[schemas.AllocationOut]:
    """The payment's net allocations per bill; bills not in ``known`` are read in one query."""
    net: dict[str, Decimal] = defaultdict(lambda: ZERO)
    for a in payment.allocations:
        net[a.bill_id] += a.amount
    bills: dict[str, Any] = dict(known or {})
    missing = [b for b, amount in net.items() if amount != 0 and b not in bills]
    if missing:
        rows = uow.repo.bill_periods(missing)
        bills.update({r.bill_id: r for r in rows})
    out = []
    for bill_id, amount in net.items():
        if amount == 0:
            continue
        b = bills[bill_id]
        out.append(
            schemas.AllocationOut(
                bill_id=bill_id,
                utility=b.utility,
                period_start=b.period_start,
                period_end=b.period_end,
                amount=amount,
            )
        )
    return sorted(out, key=lambda a: (a.period_start, a.utility))


def payment_out(
    uow: UnitOfWork, p: orm.Payment, known: dict[str, orm.Bill] | None = None
) -> schemas.Payment:
    return schemas.Payment(
        payment_id=p.payment_id,
        household_id=p.household_id,
        status=p.status,  # type: ignore[arg-type]
        amount=p.amount,
        method=p.method,  # type: ignore[arg-type]
        utility=p.utility,  # type: ignore[arg-type]
        receipt_no=p.receipt_no,
        failure_code=p.failure_code,
        gateway_reference=p.gateway_reference,
        credited=p.credited,
        refunded=p.refunded,
        created_at=aware(p.created_at),
        paid_at=aware(p.paid_at) if p.paid_at else None,
        allocations=allocations_out(uow, p, known),
        risk=p.risk,  # type: ignore[arg-type]
    )


def _settle_success(
    uow: UnitOfWork, p: orm.Payment, now: datetime, today: date
) -> dict[str, orm.Bill]:
    """Allocate a succeeded payment, book it and give it a receipt number.

    Returns the bills it touched (by id), for building the response without
    reading them again.
    """
    bills = uow.repo.unpaid_bills(p.household_id, p.utility)
    # The limit was checked before charging; money already captured is never refused,
    # so the existing credit does not matter here.
    plan = alloc.allocate(
        p.amount, open_bills(bills), p.utility, ZERO, credit_limit=Decimal("Infinity")
    )
    by_id = {b.bill_id: b for b in bills}
    for a in plan.allocations:
        bill = by_id[a.bill_id]
        bill.amount_paid += a.amount
        refresh_status(bill, today)
        p.allocations.append(
            orm.PaymentAllocation(bill_id=a.bill_id, amount=a.amount, created_at=now)
        )
    if plan.overpayment > 0:
        credit = uow.repo.credit(p.household_id, plan.credit_bucket)
        credit.amount += plan.overpayment
    p.credited = plan.overpayment
    p.status = pay_rules.transition(p.status, "succeeded")
    p.paid_at = now
    p.failure_code = None
    post(
        uow,
        ledger.payment_entry(
            p.payment_id, p.household_id, p.amount - plan.overpayment, plan.overpayment
        ),
        now,
    )
    p.updated_at = now
    # Write everything else in one flush first: the year's receipt counter is one
    # row every payment locks, so it is taken last (only this payment's own row is
    # updated after it) and held only until the commit.
    uow.session.flush()
    number = uow.repo.next_receipt_number(now.year)
    p.receipt_no = f"R{now.year}-{number:06d}"
    return by_id


def apply_result(
    uow: UnitOfWork, p: orm.Payment, result: GatewayResult, now: datetime
) -> dict[str, orm.Bill] | None:
    """Apply a gateway answer to a locked payment.

    Returns ``None`` if nothing changed, else the bills the settlement touched
    (empty unless it succeeded). Nothing is flushed before the settlement's one
    flush (``no_autoflush``).
    """
    with uow.session.no_autoflush:
        if result.reference and p.gateway_reference != result.reference:
            p.gateway_reference = result.reference
        if p.status != "pending":
            return None
        # Allocations are only ever written when a pending payment succeeds (here)
        # or a succeeded one is refunded, so a pending payment has none: skip the load.
        if "allocations" not in inspect(p).dict:
            set_committed_value(p, "allocations", [])
        touched: dict[str, orm.Bill] = {}
        if result.status == "succeeded":
            touched = _settle_success(uow, p, now, now.date())
        elif result.status == "failed":
            p.status = pay_rules.transition(p.status, "failed")
            p.failure_code = result.failure_code or "failed"
        else:
            p.failure_code = result.failure_code or "pending"
        p.updated_at = now
        return touched


def queue_settled_notice(uow: UnitOfWork, p: orm.Payment, now: datetime) -> None:
    """Tell the household that a payment left pending has settled (outbox, once).

    Called where a pending payment settles *after* the resident was answered
    (reconciliation, webhook); the unique ``payment_id`` keeps it to one notice.
    """
    if p.status not in ("succeeded", "failed"):
        return
    if uow.repo.has_payment_notice(p.payment_id):
        return
    kind = (
        reminder_rules.PAYMENT_SUCCEEDED
        if p.status == "succeeded"
        else reminder_rules.PAYMENT_FAILED
    )
    uow.session.add(
        orm.Notice(
            household_id=p.household_id,
            payment_id=p.payment_id,
            kind=kind,
            message=reminder_rules.payment_notice_text(
                kind, p.utility, p.amount, get_settings().currency, p.receipt_no
            ),
            amount_due=p.amount,
            status="pending",
            created_at=now,
        )
    )


def stored_response(
    uow: UnitOfWork, p: orm.Payment, known: dict[str, orm.Bill] | None = None
) -> dict[str, Any]:
    return payment_out(uow, p, known).model_dump(mode="json")


def audit_payment(
    uow: UnitOfWork, p: orm.Payment, kind: str, actor: str = "", **extra: Any
) -> None:
    audit.record(
        uow,
        kind,
        actor=actor or f"{p.source}",
        subject=p.payment_id,
        data={
            "household_id": p.household_id,
            "amount": format(p.amount, "f"),
            "utility": p.utility,
            "method": p.method,
            "status": p.status,
            "receipt_no": p.receipt_no,
            "failure_code": p.failure_code,
            **extra,
        },
    )


def charge_gateway(
    gateway: PaymentGateway, payment_id: str, amount: Decimal, method: str, token: str | None
) -> GatewayResult:
    """Charge a recorded payment; the payment id is the gateway's idempotency key, so a
    retry (a replayed request, reconciliation after a crash) never charges twice."""
    return gateway.charge(
        amount=amount,
        currency=get_settings().currency,
        method=method,
        payment_token=token,
        idempotency_key=payment_id,
    )
