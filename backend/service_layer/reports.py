"""The trial balance, the ledger check and staff reports."""

from __future__ import annotations

from collections import defaultdict
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select

from backend import schemas
from backend.adapters import orm
from backend.domain import ledger
from backend.domain.money import ZERO
from backend.service_layer.common import (
    utcnow,
)
from backend.service_layer.errors import (
    ServiceError,
)
from backend.service_layer.statements import forecast
from backend.service_layer.unit_of_work import UnitOfWork


def trial_balance(uow: UnitOfWork) -> schemas.TrialBalance:
    """Total debits and credits per account; balanced when they are equal."""
    with uow:
        rows = uow.session.execute(
            select(
                orm.JournalLine.account,
                func.sum(orm.JournalLine.debit),
                func.sum(orm.JournalLine.credit),
            )
            .group_by(orm.JournalLine.account)
            .order_by(orm.JournalLine.account)
        ).all()
    tb = ledger.trial_balance([(a, d or ZERO, c or ZERO) for a, d, c in rows])
    return schemas.TrialBalance(
        balanced=tb.balanced,
        debits=tb.debits,
        credits=tb.credits,
        accounts={a: {"debits": d, "credits": c} for a, (d, c) in tb.by_account.items()},
    )


def ledger_check(uow: UnitOfWork) -> dict[str, Any]:
    """Check every household's bills and credits against the ledger.

    The receivable of a household in the ledger must equal what its bills still
    owe, and its ``customer_credit`` must equal its credit rows.
    """
    with uow:
        recv: dict[str | None, Decimal] = defaultdict(lambda: ZERO)
        cred: dict[str | None, Decimal] = defaultdict(lambda: ZERO)
        for acct, hid, d, c in uow.session.execute(
            select(
                orm.JournalLine.account,
                orm.JournalLine.household_id,
                func.sum(orm.JournalLine.debit),
                func.sum(orm.JournalLine.credit),
            )
            .where(orm.JournalLine.account.in_((ledger.RECEIVABLE, ledger.CUSTOMER_CREDIT)))
            .group_by(orm.JournalLine.account, orm.JournalLine.household_id)
        ):
            if acct == ledger.RECEIVABLE:
                recv[hid] += d - c
            else:
                cred[hid] += c - d
        owed: dict[str | None, Decimal] = defaultdict(lambda: ZERO)
        for hid, t, p in uow.session.execute(
            select(
                orm.Bill.household_id, func.sum(orm.Bill.total), func.sum(orm.Bill.amount_paid)
            ).group_by(orm.Bill.household_id)
        ):
            owed[hid] = t - p
        credits: dict[str | None, Decimal] = defaultdict(lambda: ZERO)
        for hid, a in uow.session.execute(
            select(orm.HouseholdCredit.household_id, func.sum(orm.HouseholdCredit.amount)).group_by(
                orm.HouseholdCredit.household_id
            )
        ):
            credits[hid] = a
    mismatches = []
    for hid in set(recv) | set(owed) | set(cred) | set(credits):
        if recv[hid] != owed[hid] or cred[hid] != credits[hid]:
            mismatches.append(
                {
                    "household_id": hid,
                    "ledger_receivable": format(recv[hid], "f"),
                    "bills_owed": format(owed[hid], "f"),
                    "ledger_credit": format(cred[hid], "f"),
                    "credit_rows": format(credits[hid], "f"),
                }
            )
    return {
        "consistent": not mismatches,
        "households": len(set(owed) | set(recv)),
        "mismatches": mismatches[:50],
    }


def report_usage_revenue(
    uow: UnitOfWork, *, start: date | None = None, end: date | None = None
) -> list[dict[str, Any]]:
    """Usage and billed revenue by utility, building and month."""
    with uow:
        q = (
            select(
                orm.Bill.utility,
                orm.Household.building_id,
                orm.Bill.period_start,
                func.count(),
                func.sum(orm.Bill.usage),
                func.sum(orm.Bill.total),
                func.sum(orm.Bill.amount_paid),
            )
            .join(orm.Household, orm.Household.household_id == orm.Bill.household_id)
            .group_by(orm.Bill.utility, orm.Household.building_id, orm.Bill.period_start)
            .order_by(orm.Bill.period_start, orm.Household.building_id, orm.Bill.utility)
        )
        if start:
            q = q.where(orm.Bill.period_start >= start)
        if end:
            q = q.where(orm.Bill.period_start <= end)
        rows = uow.session.execute(q).all()
    return [
        {
            "month": f"{ps:%Y-%m}",
            "building_id": b,
            "utility": u,
            "bills": n,
            "usage": format(us, "f") if us is not None else None,
            "revenue": format(t, "f"),
            "collected": format(p, "f"),
        }
        for u, b, ps, n, us, t, p in rows
    ]


AGING_BUCKETS = (
    ("current", -10_000, 0),
    ("1-30", 1, 30),
    ("31-60", 31, 60),
    ("61-90", 61, 90),
    ("90+", 91, 10_000_000),
)


def report_arrears(uow: UnitOfWork, *, today: date | None = None) -> dict[str, Any]:
    """Households with overdue amounts, with aging buckets by days past due."""
    today = today or utcnow().date()
    with uow:
        rows = uow.session.execute(
            select(orm.Bill, orm.Household.unit, orm.Household.building_id)
            .join(orm.Household, orm.Household.household_id == orm.Bill.household_id)
            .where(orm.Bill.status != "paid")
        ).all()
    per: dict[str, dict[str, Any]] = {}
    totals = {name: ZERO for name, _, _ in AGING_BUCKETS}
    for bill, unit, building in rows:
        due = bill.total - bill.amount_paid
        if due <= 0:
            continue
        days = (today - bill.due_date).days
        name = next(n for n, lo, hi in AGING_BUCKETS if lo <= days <= hi)
        entry = per.setdefault(
            bill.household_id,
            {
                "household_id": bill.household_id,
                "unit": unit,
                "building_id": building,
                "buckets": {n: ZERO for n, _, _ in AGING_BUCKETS},
                "oldest_due": bill.due_date,
            },
        )
        entry["buckets"][name] += due
        entry["oldest_due"] = min(entry["oldest_due"], bill.due_date)
        totals[name] += due
    households = []
    for e in sorted(per.values(), key=lambda e: e["oldest_due"]):
        overdue = sum((v for k, v in e["buckets"].items() if k != "current"), ZERO)
        if overdue <= 0:
            continue
        households.append(
            {
                **e,
                "oldest_due": e["oldest_due"].isoformat(),
                "overdue": format(overdue, "f"),
                "buckets": {k: format(v, "f") for k, v in e["buckets"].items()},
            }
        )
    return {
        "as_of": today.isoformat(),
        "totals": {k: format(v, "f") for k, v in totals.items()},
        "households": households,
    }


def report_forecasts(uow: UnitOfWork, *, limit: int = 100) -> list[dict[str, Any]]:
    """Next month's usage forecast for each meter (first ``limit`` meters)."""
    with uow:
        meters = uow.session.execute(
            select(orm.Meter.household_id, orm.Meter.utility)
            .order_by(orm.Meter.meter_id)
            .limit(limit)
        ).all()
    out = []
    for hid, utility in meters:
        try:
            f = forecast(uow, hid, utility)
        except ServiceError:
            continue
        out.append(f.model_dump(mode="json"))
    return out
