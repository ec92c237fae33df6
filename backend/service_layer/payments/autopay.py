"""Autopay: the settings, and paying new bills with them."""

from __future__ import annotations

import hashlib
from datetime import datetime
from decimal import Decimal

from backend import schemas
from backend.adapters import orm
from backend.domain import payments as pay_rules
from backend.domain.stepup import ProofBinding, StepUpPolicy
from backend.domain.tariffs import (
    UTILITIES,
)
from backend.gateway.base import PaymentGateway
from backend.service_layer.common import (
    check_utility,
    get_household,
    log,
    utcnow,
)
from backend.service_layer.errors import (
    Invalid,
)
from backend.service_layer.payments.create import create_payment
from backend.service_layer.stepup import StepUpRequired, consume_proof
from backend.service_layer.unit_of_work import UnitOfWork


def get_autopay(uow: UnitOfWork, household_id: str) -> dict[str, schemas.AutopaySetting]:
    """Autopay settings per utility (utilities never set are reported disabled)."""
    with uow.reading():
        get_household(uow, household_id)
        rows = uow.repo.autopay_settings(household_id)
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
    step_up: StepUpPolicy | None = None,
    step_up_proof: str | None = None,
) -> schemas.AutopaySetting:
    """Turn autopay on or off for one utility.

    With ``step_up`` (a resident's request), turning autopay on with a limit at or above
    the step-up threshold consumes ``step_up_proof``, which must be bound to this
    household, utility, limit and method.

    Raises:
        StepUpRequired: the proof is missing, used, expired or bound to something else.
    """
    check_utility(utility)
    if utility is None:
        raise Invalid("unknown_utility", "utility is required")
    if method is not None and method not in pay_rules.METHODS:
        raise Invalid("unknown_method", f"method must be one of {pay_rules.METHODS}")
    with uow:
        hh = get_household(uow, household_id, lock=True)
        if enabled and method is None and hh.saved_method is None:
            raise Invalid("no_payment_method", "autopay needs a payment method")
        row = uow.repo.autopay_setting(household_id, utility)
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
        if enabled and step_up is not None and row.max_amount >= step_up.threshold:
            _consume_autopay_proof(uow, household_id, utility, row, step_up_proof)
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


def _consume_autopay_proof(
    uow: UnitOfWork,
    household_id: str,
    utility: str,
    row: orm.AutopaySetting,
    step_up_proof: str | None,
) -> None:
    limit = Decimal(row.max_amount)
    if not step_up_proof:
        raise StepUpRequired(
            f"turning on autopay up to {limit:f} a month needs step-up verification"
        )
    binding = ProofBinding(household_id, utility, limit, str(row.method), purpose="autopay")
    consume_proof(
        uow.session, step_up_proof, binding, utcnow(), f"autopay:{household_id}:{utility}"
    )


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
        settings = uow.repo.autopay_settings(household_id, enabled_only=True)
        todo = []
        for bid in bill_ids:
            b = uow.repo.bill_row(bid)
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
