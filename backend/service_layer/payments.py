"""Payments: create, settle, reconcile, refund and reverse; autopay.

Every function takes a :class:`~backend.service_layer.unit_of_work.UnitOfWork`
(and the :class:`~backend.gateway.base.PaymentGateway` when money moves), does
one thing, and either commits it entirely or raises a
:class:`~backend.service_layer.errors.ServiceError` having written nothing.

How a payment flows (:func:`create_payment`):

1. *Record.* Lock the household row; if the idempotency key is known, replay the
   stored response (same body) or refuse (different body: 409). Otherwise check
   the amount and the overpayment limit and store the payment as ``pending``.
   Commit.
2. *Charge.* Call the gateway with the payment id as its idempotency key (outside
   any transaction: no lock is held while waiting for the provider).
3. *Settle.* Lock the household and the payment again. If the payment is still
   ``pending``, apply the gateway's answer: ``succeeded`` allocates it to bills,
   books the ledger entry and issues the receipt number; ``failed`` records the
   reason; ``pending`` (timeout) stays for reconciliation. Commit, store the
   response for replays.

A concurrent confirmation of the same payment waits at step 1 or 3 and then finds
the payment already settled, so the gateway's idempotent charge and the state
machine together move money once. A crash between 1 and 3 leaves a ``pending``
payment that ``billtalk payments reconcile`` (or a webhook) settles.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections import defaultdict
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import inspect, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.attributes import set_committed_value

from backend import schemas
from backend.adapters import orm
from backend.domain import allocation as alloc
from backend.domain import ledger, refunds
from backend.domain import payments as pay_rules
from backend.domain import reminders as reminder_rules
from backend.domain.money import ZERO, InvalidAmount, parse_amount, total
from backend.domain.stepup import ProofBinding
from backend.domain.tariffs import (
    UTILITIES,
)
from backend.gateway.base import GatewayError, GatewayResult, PaymentGateway
from backend.service_layer import audit, faults
from backend.service_layer import risk as risk_service
from backend.service_layer.common import (
    aware,
    check_utility,
    get_household,
    log,
    post,
    refresh_status,
    utcnow,
)
from backend.service_layer.errors import (
    Conflict,
    Forbidden,
    Invalid,
    NotFound,
)
from backend.service_layer.stepup import StepUpRequired, consume_proof
from backend.service_layer.unit_of_work import UnitOfWork
from backend.settings import BillingSettings, get_billing_settings
from billtalk.settings import get_settings


def _request_hash(
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


def _open_bills(bills: list[orm.Bill]) -> list[alloc.OpenBill]:
    return [
        alloc.OpenBill(b.bill_id, b.utility, b.period_start, b.period_end, b.total - b.amount_paid)
        for b in bills
    ]


def _allocations_out(
    uow: UnitOfWork, payment: orm.Payment, known: dict[str, orm.Bill] | None = None
) -> list[schemas.AllocationOut]:
    """The payment's net allocations per bill; bills not in ``known`` are read in one query."""
    net: dict[str, Decimal] = defaultdict(lambda: ZERO)
    for a in payment.allocations:
        net[a.bill_id] += a.amount
    bills: dict[str, Any] = dict(known or {})
    missing = [b for b, amount in net.items() if amount != 0 and b not in bills]
    if missing:
        rows = uow.session.execute(
            select(
                orm.Bill.bill_id, orm.Bill.utility, orm.Bill.period_start, orm.Bill.period_end
            ).where(orm.Bill.bill_id.in_(missing))
        ).all()
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


def _payment_out(
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
        allocations=_allocations_out(uow, p, known),
        risk=p.risk,  # type: ignore[arg-type]
    )


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
        credit_row = uow.session.get(orm.HouseholdCredit, (household_id, bucket))
        existing = credit_row.amount if credit_row else ZERO
        try:
            plan = alloc.allocate(amount, _open_bills(bills), utility, existing)
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
        p.amount, _open_bills(bills), p.utility, ZERO, credit_limit=Decimal("Infinity")
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


def _apply_result(
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


def _queue_settled_notice(uow: UnitOfWork, p: orm.Payment, now: datetime) -> None:
    """Tell the household that a payment left pending has settled (outbox, once).

    Called where a pending payment settles *after* the resident was answered
    (reconciliation, webhook); the unique ``payment_id`` keeps it to one notice.
    """
    if p.status not in ("succeeded", "failed"):
        return
    exists = uow.session.scalar(
        select(orm.Notice.notice_id).where(orm.Notice.payment_id == p.payment_id)
    )
    if exists is not None:
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


def _response(
    uow: UnitOfWork, p: orm.Payment, known: dict[str, orm.Bill] | None = None
) -> dict[str, Any]:
    return _payment_out(uow, p, known).model_dump(mode="json")


class PaymentBlocked(Forbidden):
    """The risk rules refused the payment outright (403 ``payment_blocked``)."""

    def __init__(self, message: str, risk: dict[str, object] | None = None) -> None:
        super().__init__("payment_blocked", message)
        self.risk = risk


def _audit_payment(
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
    rhash = _request_hash(household_id, utility, amount, method, payment_token)
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
                    return _response(uow, existing), True
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
                    uow.session, household_id, amount, method, channel or source, due, now, settings
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
                _audit_payment(
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
                    held = _response(uow, p, {})
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
    return _charge_and_settle(
        uow, gateway, household_id, payment_id, amount, method, token, stamp, actor
    )


def _charge_and_settle(
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
        result = _charge(gateway, payment_id, amount, method, token)
    except GatewayError as exc:
        result = GatewayResult("failed", "", exc.code, exc.message, amount, get_settings().currency)
    faults.point("during_charge")
    # 3. settle
    with uow:
        get_household(uow, household_id, lock=True)
        p = uow.repo.payment(payment_id, lock=True)
        assert p is not None
        touched = _apply_result(uow, p, result, stamp or utcnow())
        response = _response(uow, p, touched)
        if p.response is None and p.status != "pending":
            p.response = response
        if touched is not None and p.status != "pending":
            _audit_payment(uow, p, f"payment.{p.status}", actor)
            if notify:
                _queue_settled_notice(uow, p, utcnow())
        uow.session.flush()
        faults.point("during_settle")
        uow.commit()
    log.info("payment", payment_id=payment_id, status=response["status"], household_id=household_id)
    return response, False


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
        hid = uow.session.scalar(
            select(orm.Payment.household_id).where(orm.Payment.payment_id == payment_id)
        )
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
            p.response = _response(uow, p, {})
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
        _charge_and_settle(
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
        rows = uow.session.scalars(
            select(orm.Payment)
            .where(orm.Payment.status == "review")
            .order_by(orm.Payment.created_at)
            .limit(limit)
        ).all()
        return [_payment_out(uow, p) for p in rows]


def _charge(
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
        rows = uow.session.execute(
            select(orm.Payment.payment_id, orm.Payment.household_id).where(
                orm.Payment.status == "pending", orm.Payment.created_at <= cutoff
            )
        ).all()
    counts = {"checked": 0, "succeeded": 0, "failed": 0, "pending": 0}
    for payment_id, household_id in rows:
        counts["checked"] += 1
        with uow:
            p = uow.repo.payment(payment_id)
            assert p is not None
            ref, amount, method, token = p.gateway_reference, p.amount, p.method, p.payment_token
        try:
            result = (
                gateway.status(ref) if ref else _charge(gateway, payment_id, amount, method, token)
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
            touched = _apply_result(uow, p, result, now)
            if p.status != "pending" and p.response is None:
                p.response = _response(uow, p, touched)
            if touched is not None:
                _queue_settled_notice(uow, p, now)
                if p.status != "pending":
                    _audit_payment(uow, p, f"payment.{p.status}", "reconcile")
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
        if uow.session.get(orm.WebhookEvent, event_id) is not None:
            return "duplicate"
        hid = uow.session.scalar(
            select(orm.Payment.household_id).where(orm.Payment.gateway_reference == reference)
        )
        outcome = "ignored"
        if hid is not None:
            get_household(uow, hid, lock=True)
            p = uow.session.scalars(
                select(orm.Payment)
                .where(orm.Payment.gateway_reference == reference)
                .with_for_update()
                .execution_options(populate_existing=True)
            ).first()
            assert p is not None
            now = utcnow()
            touched = _apply_result(uow, p, result, now)
            if touched is not None:
                outcome = "applied"
                if p.status != "pending" and p.response is None:
                    p.response = _response(uow, p, touched)
                _queue_settled_notice(uow, p, now)
                if p.status != "pending":
                    _audit_payment(uow, p, f"payment.{p.status}", "gateway_webhook")
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
        hid = uow.session.scalar(
            select(orm.Payment.household_id).where(orm.Payment.payment_id == payment_id)
        )
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
        bills = {b: uow.session.get(orm.Bill, b) for b in net}
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
        _audit_payment(uow, p, "payment.reversed" if reverse else "payment.refunded", "staff")
        out = _payment_out(uow, p)
        uow.commit()
    log.info("refund", payment_id=payment_id, amount=str(amount), reverse=reverse, reason=reason)
    return out


def payment_household(uow: UnitOfWork, payment_id: str) -> str:
    """The household a payment belongs to (for access checks)."""
    with uow.reading():
        hid = uow.session.scalar(
            select(orm.Payment.household_id).where(orm.Payment.payment_id == payment_id)
        )
        if hid is None:
            raise NotFound("unknown_payment", f"no payment {payment_id!r}")
        return hid


def get_payment(uow: UnitOfWork, payment_id: str) -> schemas.Payment:
    """One payment."""
    with uow.reading():
        p = uow.repo.payment(payment_id)
        if p is None:
            raise NotFound("unknown_payment", f"no payment {payment_id!r}")
        return _payment_out(uow, p)


def list_payments(uow: UnitOfWork, household_id: str, *, limit: int = 5) -> list[schemas.Payment]:
    """The household's payments, newest first."""
    with uow.reading():
        get_household(uow, household_id)
        rows = uow.session.scalars(
            select(orm.Payment)
            .where(orm.Payment.household_id == household_id)
            .order_by(orm.Payment.created_at.desc())
            .limit(limit)
        ).all()
        return [_payment_out(uow, p) for p in rows]


def get_receipt(uow: UnitOfWork, payment_id: str) -> schemas.Receipt:
    """The receipt of a succeeded (or later refunded/reversed) payment."""
    with uow.reading():
        p = uow.repo.payment(payment_id)
        if p is None:
            raise NotFound("unknown_payment", f"no payment {payment_id!r}")
        if p.receipt_no is None or p.paid_at is None:
            raise NotFound("no_receipt", f"payment {payment_id} is {p.status} and has no receipt")
        hh = uow.session.get(orm.Household, p.household_id)
        assert hh is not None
        building = uow.session.get(orm.Building, hh.building_id)
        return schemas.Receipt(
            receipt_no=p.receipt_no,
            payment_id=p.payment_id,
            household_id=p.household_id,
            unit=hh.unit,
            building=building.name if building else "",
            amount=p.amount,
            method=p.method,  # type: ignore[arg-type]
            currency=get_settings().currency,
            paid_at=aware(p.paid_at),
            status=p.status,  # type: ignore[arg-type]
            refunded=p.refunded,
            allocations=_allocations_out(uow, p),
        )


def get_autopay(uow: UnitOfWork, household_id: str) -> dict[str, schemas.AutopaySetting]:
    """Autopay settings per utility (utilities never set are reported disabled)."""
    with uow.reading():
        get_household(uow, household_id)
        rows = {
            r.utility: r
            for r in uow.session.scalars(
                select(orm.AutopaySetting).where(orm.AutopaySetting.household_id == household_id)
            )
        }
    out = {}
    for u in UTILITIES:
        r = rows.get(u)
        out[u] = schemas.AutopaySetting(
            utility=u,  # type: ignore[arg-type]
            enabled=bool(r and r.enabled),
            method=r.method if r else None,  # type: ignore[arg-type]
            max_amount=r.max_amount if r else Decimal("2000.00"),
        )
    return out


def set_autopay(
    uow: UnitOfWork,
    household_id: str,
    utility: str,
    enabled: bool,
    *,
    method: str | None = None,
    max_amount: Decimal | None = None,
) -> schemas.AutopaySetting:
    """Turn autopay on or off for one utility."""
    check_utility(utility)
    if utility is None:
        raise Invalid("unknown_utility", "utility is required")
    if method is not None and method not in pay_rules.METHODS:
        raise Invalid("unknown_method", f"method must be one of {pay_rules.METHODS}")
    with uow:
        hh = get_household(uow, household_id, lock=True)
        if enabled and method is None and hh.saved_method is None:
            raise Invalid("no_payment_method", "autopay needs a payment method")
        row = uow.session.get(orm.AutopaySetting, (household_id, utility))
        if row is None:
            row = orm.AutopaySetting(
                household_id=household_id, utility=utility, updated_at=utcnow()
            )
            uow.session.add(row)
        row.enabled = enabled
        row.method = method or row.method or hh.saved_method
        if max_amount is not None:
            row.max_amount = max_amount
        elif row.max_amount is None:
            row.max_amount = Decimal("2000.00")
        row.updated_at = utcnow()
        out = schemas.AutopaySetting.model_validate(
            {
                "utility": utility,
                "enabled": row.enabled,
                "method": row.method,
                "max_amount": row.max_amount,
            }
        )
        uow.commit()
        return out


def run_autopay(
    uow: UnitOfWork,
    gateway: PaymentGateway,
    household_id: str,
    bill_ids: list[str],
    *,
    now: datetime | None = None,
) -> int:
    """Pay new bills of utilities with autopay on, through :func:`create_payment`.

    Each bill version is paid at most once (the idempotency key names it), with
    the setting's method (or the household's saved one), up to ``max_amount``.
    """
    paid = 0
    with uow:
        hh = get_household(uow, household_id)
        settings = {
            r.utility: r
            for r in uow.session.scalars(
                select(orm.AutopaySetting).where(
                    orm.AutopaySetting.household_id == household_id,
                    orm.AutopaySetting.enabled.is_(True),
                )
            )
        }
        todo = []
        for bid in bill_ids:
            b = uow.session.get(orm.Bill, bid)
            if b is None or b.utility not in settings:
                continue
            due = b.total - b.amount_paid
            s = settings[b.utility]
            if due <= 0:
                continue
            if due > s.max_amount:
                log.info("autopay_over_limit", bill_id=bid, due=str(due), limit=str(s.max_amount))
                continue
            todo.append(
                (b.bill_id, b.utility, due, b.version, s.method or hh.saved_method or "card")
            )
    for bid, utility, due, version, method in todo:
        key = f"autopay-{bid}-v{version}"
        resp, _ = create_payment(
            uow,
            gateway,
            household_id,
            due,
            method,
            key,
            utility=utility,
            source="autopay",
            now=now,
            payment_id=f"pay_auto_{hashlib.sha256(key.encode()).hexdigest()[:16]}",
        )
        paid += resp["status"] == "succeeded"
    return paid
