"""Finishing payments left pending: reconciliation with the gateway, and its webhooks."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.exc import IntegrityError

from backend.adapters import orm
from backend.gateway.base import GatewayError, GatewayResult, PaymentGateway
from backend.service_layer.common import (
    get_household,
    log,
    utcnow,
)
from backend.service_layer.payments.settlement import (
    apply_result,
    audit_payment,
    charge_gateway,
    queue_settled_notice,
    stored_response,
)
from backend.service_layer.unit_of_work import UnitOfWork


def reconcile_pending(
    uow: UnitOfWork, gateway: PaymentGateway, *, older_than: timedelta = timedelta(0)
) -> dict[str, int]:
    """Settle ``pending`` payments by asking the gateway (``billtalk payments reconcile``).

    A payment with no gateway reference (the process died before the gateway
    answered) is charged again with the same gateway idempotency key, which the
    gateway answers without charging twice.
    """
    cutoff = utcnow() - older_than
    with uow:
        rows = uow.repo.pending_payments(cutoff)
    counts = {"checked": 0, "succeeded": 0, "failed": 0, "pending": 0}
    for payment_id, household_id in rows:
        counts["checked"] += 1
        with uow:
            p = uow.repo.payment(payment_id)
            assert p is not None
            ref, amount, method, token = p.gateway_reference, p.amount, p.method, p.payment_token
        try:
            result = (
                gateway.status(ref)
                if ref
                else charge_gateway(gateway, payment_id, amount, method, token)
            )
        except GatewayError as exc:
            log.warning("reconcile_error", payment_id=payment_id, code=exc.code)
            counts["pending"] += 1
            continue
        with uow:
            get_household(uow, household_id, lock=True)
            p = uow.repo.payment(payment_id, lock=True)
            assert p is not None
            now = utcnow()
            touched = apply_result(uow, p, result, now)
            if p.status != "pending" and p.response is None:
                p.response = stored_response(uow, p, touched)
            if touched is not None:
                queue_settled_notice(uow, p, now)
                if p.status != "pending":
                    audit_payment(uow, p, f"payment.{p.status}", "reconcile")
            counts[p.status if p.status in counts else "pending"] += 1
            uow.commit()
    return counts


def apply_webhook(uow: UnitOfWork, event_id: str, reference: str, result: GatewayResult) -> str:
    """Apply a verified gateway webhook once (its event id is remembered).

    Returns:
        ``applied``, ``duplicate`` (event seen before) or ``ignored`` (unknown
        reference or a payment already settled).
    """
    with uow:
        if uow.repo.webhook_seen(event_id):
            return "duplicate"
        hid = uow.repo.payment_household_by_reference(reference)
        outcome = "ignored"
        if hid is not None:
            get_household(uow, hid, lock=True)
            p = uow.repo.lock_payment_by_reference(reference)
            assert p is not None
            now = utcnow()
            touched = apply_result(uow, p, result, now)
            if touched is not None:
                outcome = "applied"
                if p.status != "pending" and p.response is None:
                    p.response = stored_response(uow, p, touched)
                queue_settled_notice(uow, p, now)
                if p.status != "pending":
                    audit_payment(uow, p, f"payment.{p.status}", "gateway_webhook")
        uow.session.add(
            orm.WebhookEvent(
                event_id=event_id,
                gateway_reference=reference,
                status=result.status,
                received_at=utcnow(),
            )
        )
        try:
            uow.commit()
        except IntegrityError:
            return "duplicate"
        return outcome
