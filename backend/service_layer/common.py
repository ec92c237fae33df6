"""Helpers every billing use case shares: time, lookups, posting to the ledger."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from decimal import Decimal

from backend.adapters import orm
from backend.domain import bills as billing
from backend.domain import ledger
from backend.domain.tariffs import (
    METERED_UTILITIES,
    UTILITIES,
    TariffVersion,
    tiers_from_json,
)
from backend.service_layer.errors import (
    Invalid,
    NotFound,
)
from backend.service_layer.unit_of_work import UnitOfWork
from billtalk.logs import get_logger

log = get_logger("backend.services")

_UTILITY_CODES = {"electricity": "el", "water": "wa", "gas": "ga", "property_fee": "pf"}


def utcnow() -> datetime:
    """The current time in UTC."""
    return datetime.now(UTC)


def aware(dt: datetime) -> datetime:
    """SQLite returns naive datetimes; every stored time is UTC."""
    return dt if dt.tzinfo is not None else dt.replace(tzinfo=UTC)


def midnight(d: date) -> datetime:
    return datetime.combine(d, time(0, 0), tzinfo=UTC)


def check_utility(utility: str | None, *, metered: bool = False) -> None:
    allowed = METERED_UTILITIES if metered else UTILITIES
    if utility is not None and utility not in allowed:
        raise Invalid("unknown_utility", f"unknown utility {utility!r}; expected one of {allowed}")


def get_household(uow: UnitOfWork, household_id: str, *, lock: bool = False) -> orm.Household:
    hh = uow.repo.lock_household(household_id) if lock else uow.repo.household(household_id)
    if hh is None:
        raise NotFound("unknown_household", f"no household {household_id!r}")
    return hh


def post(uow: UnitOfWork, entry: ledger.Entry, now: datetime | None = None) -> None:
    """Write a balanced journal entry (built by :mod:`backend.domain.ledger`)."""
    if not entry.postings:
        return
    je = orm.JournalEntry(
        kind=entry.kind,
        reference=entry.reference,
        household_id=entry.household_id,
        memo=entry.memo,
        posted_at=now or utcnow(),
    )
    je.lines = [
        orm.JournalLine(
            account=p.account, household_id=p.household_id, debit=p.debit, credit=p.credit
        )
        for p in entry.postings
    ]
    uow.session.add(je)


def tariff_version(row: orm.Tariff) -> TariffVersion:
    """The domain view of a stored tariff."""
    tou = {k: Decimal(str(v)) for k, v in (row.tou or {}).items()}
    return TariffVersion(
        utility=row.utility,
        kind=row.kind,
        name=row.name,
        effective_from=row.effective_from,
        unit=row.unit,
        unit_price=row.unit_price,
        fixed_monthly=row.fixed_monthly,
        tiers=tiers_from_json(row.tiers),
        tou_prices=tou,
        tariff_id=row.tariff_id,
    )


def bill_id_for(household_id: str, utility: str, period_start: date) -> str:
    """The stable id of a household's bill for one utility and period."""
    return f"b-{household_id}-{_UTILITY_CODES[utility]}-{period_start:%Y%m}"


def refresh_status(bill: orm.Bill, today: date) -> None:
    """Store the bill's status as of ``today``."""
    bill.status = billing.bill_status(bill.total, bill.amount_paid, bill.due_date, today)
