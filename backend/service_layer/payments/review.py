"""Payments held for review by the risk rules: staff approve or decline them."""

from __future__ import annotations

from sqlalchemy.orm.attributes import set_committed_value

from backend import schemas
from backend.adapters import orm
from backend.domain import payments as pay_rules
from backend.domain import reminders as reminder_rules
from backend.gateway.base import PaymentGateway
from backend.service_layer import audit
from backend.service_layer.common import (
    get_household,
    log,
    utcnow,
)
from backend.service_layer.errors import (
    Conflict,
    NotFound,
)
from backend.service_layer.payments.create import charge_and_settle
from backend.service_layer.payments.queries import get_payment
from backend.service_layer.payments.settlement import payment_out, stored_response
from backend.service_layer.unit_of_work import UnitOfWork
from billtalk.settings import get_settings


def review_payment(
    uow: UnitOfWork,
    gateway: PaymentGateway,
    payment_id: str,
    *,
    approve: bool,
    staff: str,
    reason: str = "",
) -> schemas.Payment:
    """Staff: approve (charge now) or decline (nothing is charged) a payment held for review.

    Either way the resident is told the outcome once, through the notice outbox.

    Raises:
        NotFound: unknown payment.
        Conflict: the payment is not held for review (``not_in_review``).
    """
    now = utcnow()
    with uow:
        hid = uow.repo.payment_household(payment_id)
        if hid is None:
            raise NotFound("unknown_payment", f"no payment {payment_id!r}")
        get_household(uow, hid, lock=True)
        p = uow.repo.payment(payment_id, lock=True)
        assert p is not None
        if p.status != "review":
            raise Conflict("not_in_review", f"payment {payment_id} is {p.status}, not in review")
        set_committed_value(p, "allocations", [])
        p.status = pay_rules.transition(p.status, "pending" if approve else "declined")
        p.reviewed_by = staff[:80]
        p.reviewed_at = now
        p.updated_at = now
        actor = f"staff:{staff}"
        audit.record(
            uow,
            "payment.approved" if approve else "payment.declined",
            actor=actor,
            subject=payment_id,
            data={"household_id": hid, "amount": format(p.amount, "f"), "reason": reason[:200]},
        )
        if not approve:
            p.failure_code = "declined_in_review"
            p.response = stored_response(uow, p, {})
            uow.session.add(
                orm.Notice(
                    household_id=p.household_id,
                    payment_id=p.payment_id,
                    kind=reminder_rules.PAYMENT_FAILED,
                    message=(
                        f"Your payment of {format(p.amount, 'f')} {get_settings().currency} was "
                        "declined after a security review. Nothing was charged."
                    ),
                    amount_due=p.amount,
                    status="pending",
                    created_at=now,
                )
            )
        args = (p.household_id, p.amount, p.method, p.payment_token)
        uow.commit()
    if approve:
        household_id, amount, method, token = args
        charge_and_settle(
            uow,
            gateway,
            household_id,
            payment_id,
            amount,
            method,
            token,
            None,
            actor,
            notify=True,
        )
    log.info("payment_reviewed", payment_id=payment_id, approve=approve)
    return get_payment(uow, payment_id)


def held_payments(uow: UnitOfWork, *, limit: int = 100) -> list[schemas.Payment]:
    """Staff: payments held for review, oldest first (the console's review queue)."""
    with uow.reading():
        rows = uow.repo.held_for_review(limit)
        return [payment_out(uow, p) for p in rows]
