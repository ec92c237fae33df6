"""Creating a payment (record, charge, settle) and its preview, with the step-up and risk checks."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy.exc import IntegrityError

from backend import schemas
from backend.adapters import orm
from backend.domain import allocation as alloc
from backend.domain import payments as pay_rules
from backend.domain.money import InvalidAmount, parse_amount, total
from backend.domain.stepup import ProofBinding
from backend.gateway.base import GatewayError, GatewayResult, PaymentGateway
from backend.service_layer import audit, faults
from backend.service_layer import risk as risk_service
from backend.service_layer.common import (
    check_utility,
    get_household,
    log,
    utcnow,
)
from backend.service_layer.errors import (
    Conflict,
    Forbidden,
    Invalid,
)
from backend.service_layer.payments.settlement import (
    apply_result,
    audit_payment,
    charge_gateway,
    open_bills,
    queue_settled_notice,
    request_hash,
    stored_response,
)
from backend.service_layer.stepup import StepUpRequired, consume_proof
from backend.service_layer.unit_of_work import UnitOfWork
from backend.settings import BillingSettings, get_billing_settings
from billtalk.settings import get_settings


def preview_payment(
    uow: UnitOfWork,
    household_id: str,
    amount: Decimal,
    *,
    utility: str | None = None,
    settings: BillingSettings | None = None,
    method: str | None = None,
    channel: str | None = None,
) -> schemas.PaymentPreview:
    """What paying ``amount`` would do: allocations, overpayment, step-up and risk.

    ``step_up_required`` is the step-up policy's answer for a resident-scoped
    payment of this amount now (see :mod:`backend.domain.stepup`); the dialogue
    asks for verification exactly when it is true.

    Raises:
        Invalid: ``overpayment_limit`` when the payment would exceed the credit limit.
    """
    check_utility(utility)
    settings = settings or get_billing_settings()
    now = utcnow()
    with uow:
        hh = get_household(uow, household_id)
        bills = uow.repo.unpaid_bills(household_id, utility)
        bucket = utility or alloc.GENERAL
        existing = uow.repo.credit_balance(household_id, bucket)
        try:
            plan = alloc.allocate(amount, open_bills(bills), utility, existing)
        except alloc.OverpaymentLimit as exc:
            raise Invalid(exc.code, str(exc)) from exc
        due = total([b.total - b.amount_paid for b in bills])
        features = risk_service.features(
            uow.session,
            household_id,
            amount,
            method or hh.saved_method or "card",
            channel or "api",
            due,
            now,
            settings,
        )
    risk = risk_service.assess_payment(features, settings, enforce=True)
    step_up = risk.step_up
    reasons = list(step_up) + (["overpayment"] if plan.overpayment > 0 else [])
    return schemas.PaymentPreview(
        household_id=household_id,
        amount=amount,
        utility=utility,  # type: ignore[arg-type]
        allocations=[
            schemas.AllocationOut(
                bill_id=a.bill_id,
                utility=a.utility,  # type: ignore[arg-type]
                period_start=a.period_start,
                period_end=a.period_end,
                amount=a.amount,
            )
            for a in plan.allocations
        ],
        overpayment=plan.overpayment,
        amount_due=due,
        paid_today=features.paid_today,
        risk_flagged=bool(step_up),
        risk_reasons=reasons,
        step_up_required=bool(step_up),
        step_up_reasons=step_up,
        risk=schemas.Risk.model_validate(risk.to_json()),
    )


class PaymentBlocked(Forbidden):
    """The risk rules refused the payment outright (403 ``payment_blocked``)."""

    def __init__(self, message: str, risk: dict[str, object] | None = None) -> None:
        super().__init__("payment_blocked", message)
        self.risk = risk


def _refuse(
    uow: UnitOfWork,
    exc: StepUpRequired | PaymentBlocked,
    household_id: str,
    amount: Decimal,
    actor: str,
) -> None:
    """Write the refused risk decision to the audit log (its own transaction), then raise."""
    audit.append(
        uow,
        "risk.decision",
        actor=actor,
        subject=household_id,
        data={"amount": format(amount, "f"), "refused": exc.code, "risk": exc.risk},
    )
    log.info("payment_refused", household_id=household_id, code=exc.code)
    raise exc


def create_payment(
    uow: UnitOfWork,
    gateway: PaymentGateway,
    household_id: str,
    amount: Decimal,
    method: str,
    idempotency_key: str,
    *,
    utility: str | None = None,
    payment_token: str | None = None,
    source: str = "api",
    now: datetime | None = None,
    payment_id: str | None = None,
    step_up_proof: str | None = None,
    channel: str | None = None,
    actor: str = "",
    settings: BillingSettings | None = None,
) -> tuple[dict[str, Any], bool]:
    """Pay ``amount`` for a household (see the module docstring for the flow).

    Every new payment is risk-scored (:mod:`backend.domain.risk`) in the record
    step. For a resident-scoped caller (``source="resident"``) the decision
    applies: ``step_up`` without a valid proof raises :class:`StepUpRequired`,
    ``block`` raises :class:`PaymentBlocked` (nothing is recorded or charged),
    ``review`` records the payment as ``review`` and charges nothing until staff
    approve it (:func:`review_payment`). A replay of a known key returns the
    first result and needs no new proof.

    Args:
        now: the payment time (default: now); the demo seeder back-dates payments.
        payment_id: the id to give a new payment (default: random).
        step_up_proof: a proof from :func:`~backend.service_layer.stepup.record_verification`
            bound to this exact payment (used up by it).
        channel: where the request came from (terminal, telegram, speaker, api...).
        actor: who asks, for the audit log (default: ``source``).

    Returns:
        ``(response, replayed)``: the payment as JSON-ready dict (with ``risk``),
        and whether it is the stored response of an earlier request with the same
        idempotency key.

    Raises:
        NotFound: unknown household.
        Conflict: the key was used with a different body (``idempotency_key_reused``).
        Invalid: bad amount, method or utility, or the overpayment limit.
        StepUpRequired: see above (403 ``step_up_required``).
        PaymentBlocked: see above (403 ``payment_blocked``).
    """
    check_utility(utility)
    if method not in pay_rules.METHODS:
        raise Invalid("unknown_method", f"method must be one of {pay_rules.METHODS}")
    if not idempotency_key or len(idempotency_key) > 100 or not idempotency_key.isprintable():
        raise Invalid(
            "invalid_idempotency_key", "Idempotency-Key must be 1-100 printable characters"
        )
    try:
        amount = parse_amount(amount)
    except InvalidAmount as exc:
        raise Invalid(exc.code, str(exc)) from exc
    settings = settings or get_billing_settings()
    actor = actor or source
    rhash = request_hash(household_id, utility, amount, method, payment_token)
    stamp = now
    now = now or utcnow()
    refusal: StepUpRequired | PaymentBlocked | None = None
    # 1. record (or find) the pending payment
    try:
        with uow:
            hh = get_household(uow, household_id, lock=True)
            existing = uow.repo.payment_by_key(idempotency_key)
            if existing is not None:
                if existing.request_hash != rhash:
                    raise Conflict(
                        "idempotency_key_reused",
                        "this Idempotency-Key was already used with a different request",
                    )
                if existing.response is not None and existing.status != "pending":
                    return existing.response, True
                if existing.status == "review":
                    return stored_response(uow, existing), True
                payment_id = existing.payment_id
                token = existing.payment_token
            else:
                due, credit = uow.repo.amount_due_and_credit(
                    household_id, utility, utility or alloc.GENERAL
                )
                try:
                    alloc.check_credit_limit(amount, due, utility, credit)
                except alloc.OverpaymentLimit as exc:
                    raise Invalid(exc.code, str(exc)) from exc
                payment_id = payment_id or f"pay_{uuid.uuid4().hex[:24]}"
                token = payment_token if payment_token is not None else hh.saved_method_token
                enforce = source == "resident"
                features = risk_service.features(
                    uow.session, household_id, amount, method, channel or "api", due, now, settings
                )
                proof = None
                proof_error: StepUpRequired | None = None
                if step_up_proof:
                    try:
                        proof = consume_proof(
                            uow.session,
                            step_up_proof,
                            ProofBinding(household_id, utility, amount, method),
                            now,
                            payment_id,
                        )
                    except StepUpRequired as exc:
                        proof_error = exc
                risk = risk_service.assess_payment(
                    features,
                    settings,
                    enforce=enforce,
                    proof_valid=proof is not None,
                    proof_kind=proof.kind if proof is not None else None,
                )
                risk_json = risk.to_json()
                if risk.action == "step_up":
                    why = ", ".join(risk.step_up)
                    refusal = StepUpRequired(
                        proof_error.message
                        if proof_error is not None
                        else f"this payment needs step-up verification ({why})",
                        risk_json,
                    )
                    raise refusal
                if risk.action == "block":
                    refusal = PaymentBlocked(
                        "this payment was refused by our security checks", risk_json
                    )
                    raise refusal
                p = orm.Payment(
                    payment_id=payment_id,
                    household_id=household_id,
                    utility=utility,
                    amount=amount,
                    method=method,
                    status="review" if risk.action == "review" else "pending",
                    idempotency_key=idempotency_key,
                    request_hash=rhash,
                    gateway=getattr(gateway, "name", "gateway"),
                    payment_token=token,
                    source=source,
                    channel=(channel or None) and channel[:20],
                    risk=risk_json,
                    created_at=now,
                    updated_at=now,
                )
                uow.session.add(p)
                uow.session.flush()
                # One entry for the request and its risk decision (and the proof it used).
                audit_payment(
                    uow,
                    p,
                    "payment.held" if p.status == "review" else "payment.requested",
                    actor,
                    risk={
                        **risk_json,
                        "rules_score": risk.rules_score,
                        "model_score": risk.model_score,
                    },
                    proof_id=proof.proof_id if proof is not None else None,
                )
                if p.status == "review":
                    held = stored_response(uow, p, {})
                    uow.commit()
                    log.info("payment_held", payment_id=payment_id, household_id=household_id)
                    return held, False
                uow.commit()
    except (StepUpRequired, PaymentBlocked) as exc:
        if exc is not refusal:
            raise
        _refuse(uow, exc, household_id, amount, actor)
    except IntegrityError as exc:
        # The same key raced in from another household's request: replay or refuse.
        with uow:
            existing = uow.repo.payment_by_key(idempotency_key)
        if existing is None or existing.request_hash != rhash:
            raise Conflict(
                "idempotency_key_reused", "this Idempotency-Key is already in use"
            ) from exc
        return create_payment(
            uow,
            gateway,
            household_id,
            amount,
            method,
            idempotency_key,
            utility=utility,
            payment_token=payment_token,
            source=source,
            now=stamp,
            step_up_proof=step_up_proof,
            channel=channel,
            actor=actor,
            settings=settings,
        )
    faults.point("after_record")
    assert payment_id is not None
    return charge_and_settle(
        uow, gateway, household_id, payment_id, amount, method, token, stamp, actor
    )


def charge_and_settle(
    uow: UnitOfWork,
    gateway: PaymentGateway,
    household_id: str,
    payment_id: str,
    amount: Decimal,
    method: str,
    token: str | None,
    stamp: datetime | None,
    actor: str,
    *,
    notify: bool = False,
) -> tuple[dict[str, Any], bool]:
    """Steps 2 and 3: charge a recorded pending payment, then settle it."""
    # 2. charge (idempotent at the gateway: the payment id is its key)
    try:
        result = charge_gateway(gateway, payment_id, amount, method, token)
    except GatewayError as exc:
        result = GatewayResult("failed", "", exc.code, exc.message, amount, get_settings().currency)
    faults.point("during_charge")
    # 3. settle
    with uow:
        get_household(uow, household_id, lock=True)
        p = uow.repo.payment(payment_id, lock=True)
        assert p is not None
        touched = apply_result(uow, p, result, stamp or utcnow())
        response = stored_response(uow, p, touched)
        if p.response is None and p.status != "pending":
            p.response = response
        if touched is not None and p.status != "pending":
            audit_payment(uow, p, f"payment.{p.status}", actor)
            if notify:
                queue_settled_notice(uow, p, utcnow())
        uow.session.flush()
        faults.point("during_settle")
        uow.commit()
    log.info("payment", payment_id=payment_id, status=response["status"], household_id=household_id)
    return response, False
