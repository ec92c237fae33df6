"""Reading payments and receipts."""

from __future__ import annotations

from backend import schemas
from backend.service_layer.common import (
    aware,
    get_household,
)
from backend.service_layer.errors import (
    NotFound,
)
from backend.service_layer.payments.settlement import allocations_out, payment_out
from backend.service_layer.unit_of_work import UnitOfWork
from billtalk.settings import get_settings


def payment_household(uow: UnitOfWork, payment_id: str) -> str:
    """The household a payment belongs to (for access checks)."""
    with uow.reading():
        hid = uow.repo.payment_household(payment_id)
        if hid is None:
            raise NotFound("unknown_payment", f"no payment {payment_id!r}")
        return hid


def get_payment(uow: UnitOfWork, payment_id: str) -> schemas.Payment:
    """One payment."""
    with uow.reading():
        p = uow.repo.payment(payment_id)
        if p is None:
            raise NotFound("unknown_payment", f"no payment {payment_id!r}")
        return payment_out(uow, p)


def list_payments(uow: UnitOfWork, household_id: str, *, limit: int = 5) -> list[schemas.Payment]:
    """The household's payments, newest first."""
    with uow.reading():
        get_household(uow, household_id)
        rows = uow.repo.recent_payments(household_id, limit)
        return [payment_out(uow, p) for p in rows]


def get_receipt(uow: UnitOfWork, payment_id: str) -> schemas.Receipt:
    """The receipt of a succeeded (or later refunded/reversed) payment."""
    with uow.reading():
        p = uow.repo.payment(payment_id)
        if p is None:
            raise NotFound("unknown_payment", f"no payment {payment_id!r}")
        if p.receipt_no is None or p.paid_at is None:
            raise NotFound("no_receipt", f"payment {payment_id} is {p.status} and has no receipt")
        hh = uow.repo.household(p.household_id)
        assert hh is not None
        building = uow.repo.building(hh.building_id)
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
            allocations=allocations_out(uow, p),
        )
