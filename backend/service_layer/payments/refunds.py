"""Refunds and reversals of succeeded payments.

Where the money comes from is a domain rule: :mod:`backend.domain.refunds`.
"""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal

from backend import schemas
from backend.adapters import orm
from backend.domain import allocation as alloc
from backend.domain import ledger, refunds
from backend.domain import payments as pay_rules
from backend.domain.money import ZERO
from backend.gateway.base import GatewayError, PaymentGateway
from backend.service_layer.common import (
    get_household,
    log,
    post,
    refresh_status,
    utcnow,
)
from backend.service_layer.errors import (
    Conflict,
    NotFound,
)
from backend.service_layer.payments.settlement import audit_payment, payment_out
from backend.service_layer.unit_of_work import UnitOfWork


def refund_payment(
    uow: UnitOfWork,
    gateway: PaymentGateway,
    payment_id: str,
    amount: Decimal | None = None,
    *,
    reverse: bool = False,
    reason: str = "",
) -> schemas.Payment:
    """Staff: refund part or all of a succeeded payment, or reverse it entirely.

    The money comes back from the payment's unused credit first, then from its
    bill allocations (newest bill first), which reopens those bills. A
    compensating ledger entry books it. ``reverse=True`` returns everything left
    and marks the payment ``reversed``.

    Raises:
        NotFound: unknown payment.
        Conflict: the payment is not ``succeeded`` or the amount is too large.
    """
    now = utcnow()
    with uow:
        hid = uow.repo.payment_household(payment_id)
        if hid is None:
            raise NotFound("unknown_payment", f"no payment {payment_id!r}")
        get_household(uow, hid, lock=True)
        p = uow.repo.payment(payment_id, lock=True)
        assert p is not None
        left = p.amount - p.refunded
        amount = left if reverse or amount is None else amount
        bucket = p.utility or alloc.GENERAL
        credit = uow.repo.credit(p.household_id, bucket)
        net: dict[str, Decimal] = defaultdict(lambda: ZERO)
        for a in p.allocations:
            net[a.bill_id] += a.amount
        bills = {b: uow.repo.bill_row(b) for b in net}
        try:
            pay_rules.check_refund(p.status, amount, p.refunded, p.amount)
            status = pay_rules.transition(p.status, "reversed") if reverse else p.status
            plan = refunds.plan_refund(
                amount,
                credit_left=p.credited - min(p.refunded, p.credited),
                credit_available=credit.amount,
                paid_bills={b: (bills[b].period_start, net[b]) for b in net},  # type: ignore[union-attr]
            )
        except pay_rules.InvalidTransition as exc:
            raise Conflict(exc.code, str(exc)) from exc
        if not p.gateway_reference:
            raise Conflict("no_gateway_reference", "the payment has no gateway reference")
        try:
            gateway.refund(p.gateway_reference, amount, f"{payment_id}-refund-{p.refunded}")
        except GatewayError as exc:
            raise Conflict(exc.code, exc.message) from exc
        credit.amount -= plan.from_credit
        for bill_id, part in plan.from_bills:
            bill = bills[bill_id]
            assert bill is not None
            bill.amount_paid -= part
            refresh_status(bill, now.date())
            p.allocations.append(
                orm.PaymentAllocation(bill_id=bill_id, amount=-part, created_at=now)
            )
        p.refunded += amount
        p.status = status
        p.updated_at = now
        post(
            uow,
            ledger.reversal_entry(
                "reversal" if reverse else "refund",
                payment_id,
                p.household_id,
                plan.bills_total,
                plan.from_credit,
            ),
            now,
        )
        uow.session.flush()
        audit_payment(uow, p, "payment.reversed" if reverse else "payment.refunded", "staff")
        out = payment_out(uow, p)
        uow.commit()
    log.info("refund", payment_id=payment_id, amount=str(amount), reverse=reverse, reason=reason)
    return out
