"""What a household owes and used: balance, bills, usage series and forecast."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import select

from backend import schemas
from backend.adapters import orm
from backend.domain import bills as billing
from backend.domain.money import ZERO, total
from backend.domain.tariffs import (
    price_area,
    price_usage,
    select_tariff,
)
from backend.service_layer.common import (
    check_utility,
    get_household,
    tariff_version,
    utcnow,
)
from backend.service_layer.errors import (
    Invalid,
    NotFound,
)
from backend.service_layer.unit_of_work import UnitOfWork
from billtalk.settings import get_settings


def _summary(bill: orm.Bill | Any, today: date) -> schemas.BillSummary:
    """A bill (ORM object or a row with the same column names) as shown to the resident."""
    return schemas.BillSummary(
        bill_id=bill.bill_id,
        household_id=bill.household_id,
        utility=bill.utility,  # type: ignore[arg-type]
        period_start=bill.period_start,
        period_end=bill.period_end,
        due_date=bill.due_date,
        status=billing.bill_status(bill.total, bill.amount_paid, bill.due_date, today),  # type: ignore[arg-type]
        total=bill.total,
        amount_paid=bill.amount_paid,
        amount_due=bill.total - bill.amount_paid,
        usage=bill.usage,
        unit=bill.unit,
    )


def balance(
    uow: UnitOfWork, household_id: str, *, today: date | None = None, known: bool = False
) -> schemas.Balance:
    """What the household owes, per utility, with its credits and open bills.

    ``known``: the caller vouches that the household exists (a resident token of it:
    ``api_tokens.household_id`` is a foreign key to it, and households are never
    deleted), so a household with nothing open needs no read to tell it from an unknown
    one (``NotFound``).
    """
    today = today or utcnow().date()
    with uow.reading():
        bills = uow.repo.open_bill_rows(household_id)
        credits = uow.repo.positive_credits(household_id)
        if not bills and not credits and not known:
            get_household(uow, household_id)  # NotFound for an unknown household
    by_utility: dict[str, Decimal] = defaultdict(lambda: ZERO)
    for b in bills:
        by_utility[b.utility] += b.total - b.amount_paid
    return schemas.Balance(
        household_id=household_id,
        currency=get_settings().currency,
        total_due=total(list(by_utility.values())),
        by_utility=dict(by_utility),
        credits=credits,
        open_bills=[_summary(b, today) for b in bills],
    )


def list_bills(
    uow: UnitOfWork,
    household_id: str,
    *,
    utility: str | None = None,
    status: str | None = None,
    limit: int = 12,
    today: date | None = None,
) -> list[schemas.BillSummary]:
    """The household's bills, newest first (``status`` as of ``today``)."""
    check_utility(utility)
    if status is not None and status not in billing.BILL_STATUSES:
        raise Invalid("invalid_status", f"status must be one of {billing.BILL_STATUSES}")
    today = today or utcnow().date()
    with uow.reading():
        rows = uow.repo.bills(
            household_id, utility=utility, limit=max(limit, 1) * (4 if status else 1)
        )
        if not rows:  # a bill's household exists: only an empty list needs the check
            get_household(uow, household_id)  # NotFound for an unknown household
        out = [_summary(b, today) for b in rows]
        if status:
            out = [b for b in out if b.status == status]
        return out[:limit]


def bill_household(uow: UnitOfWork, bill_id: str) -> str:
    """The household a bill belongs to (for access checks)."""
    with uow.reading():
        hid = uow.session.scalar(select(orm.Bill.household_id).where(orm.Bill.bill_id == bill_id))
        if hid is None:
            raise NotFound("unknown_bill", f"no bill {bill_id!r}")
        return hid


def get_bill(
    uow: UnitOfWork,
    bill_id: str,
    *,
    today: date | None = None,
    check: Callable[[str], None] | None = None,
) -> schemas.BillDetail:
    """A bill with its lines and usage comparisons.

    ``check``: called with the bill's household once the bill is found, before anything
    else is read; it raises to refuse (the caller's access check, see
    :func:`backend.api.reads.get_bill`), so the check needs no query of its own.
    Plain rows, three queries (the bill with its tariff's name, its lines, the usage of
    the previous and last year's bills), no ORM objects: :func:`get_bills` of one.
    """
    return get_bills(uow, [bill_id], today=today, check=check)[0]


def get_bills(
    uow: UnitOfWork,
    bill_ids: Sequence[str],
    *,
    today: date | None = None,
    check: Callable[[str], None] | None = None,
) -> list[schemas.BillDetail]:
    """Several bills, each as :func:`get_bill` gives it, in ``bill_ids``' order.

    One session and three queries for all of them when they are of one household and
    utility (a bill and the one before it, which "why is it so high?" compares): the
    bills with their tariffs' names, their lines, and the usages they are compared with
    (one query per household and utility). The first id in order that is unknown, or
    that ``check`` refuses, raises as :func:`get_bill` would for it, before any line
    is read.
    """
    today = today or utcnow().date()
    with uow.reading():
        rows = {row.bill_id: row for row in uow.repo.bill_detail_rows(bill_ids)}
        bills = []
        for bill_id in bill_ids:
            bill = rows.get(bill_id)
            if bill is None:
                raise NotFound("unknown_bill", f"no bill {bill_id!r}")
            if check is not None:
                check(bill.household_id)
            bills.append(bill)
        lines = uow.repo.bill_line_rows_of(list(dict.fromkeys(bill_ids)))
        starts: dict[tuple[str, str], list[date]] = defaultdict(list)
        for bill in bills:
            starts[(bill.household_id, bill.utility)].extend(_compared_starts(bill))
        usages = {
            key: uow.repo.usages_for(key[0], key[1], tuple(dict.fromkeys(periods)))
            for key, periods in starts.items()
        }
        return [
            _detail(bill, lines[bill.bill_id], usages[(bill.household_id, bill.utility)], today)
            for bill in bills
        ]


def _compared_starts(bill: Any) -> tuple[date, date]:
    """The period starts a bill's usage is compared with: the previous month, last year."""
    prev_start = billing.previous_month(bill.period_start)[0]
    return prev_start, bill.period_start.replace(year=bill.period_start.year - 1)


def _detail(
    bill: Any, lines: Sequence[Any], usages: dict[date, Decimal | None], today: date
) -> schemas.BillDetail:
    """A bill's row, its line rows and the compared usages as the API shows them."""
    prev_start, last_year = _compared_starts(bill)
    return schemas.BillDetail(
        **_summary(bill, today).model_dump(),
        lines=[
            schemas.BillLine(
                kind=ln.kind,
                description=ln.description,
                quantity=ln.quantity,
                unit_price=ln.unit_price,
                amount=ln.amount,
                tier_from=ln.tier_from,
                tier_to=ln.tier_to,
            )
            for ln in lines
        ],
        tariff_name=bill.tariff_name,
        start_reading=bill.start_reading,
        end_reading=bill.end_reading,
        previous_usage=usages.get(prev_start),
        last_year_usage=usages.get(last_year),
    )


def usage_series(
    uow: UnitOfWork, household_id: str, utility: str, start: date, end: date
) -> schemas.UsageSeries:
    """Billed usage and amounts of one utility for periods starting in ``[start, end]``."""
    check_utility(utility)
    if end < start:
        raise Invalid("invalid_range", "end must not be before start")
    with uow:
        get_household(uow, household_id)
        rows = uow.session.scalars(
            select(orm.Bill)
            .where(
                orm.Bill.household_id == household_id,
                orm.Bill.utility == utility,
                orm.Bill.period_start >= start.replace(day=1),
                orm.Bill.period_start <= end,
            )
            .order_by(orm.Bill.period_start)
        ).all()
        return schemas.UsageSeries(
            household_id=household_id,
            utility=utility,  # type: ignore[arg-type]
            points=[
                schemas.UsagePoint(
                    period_start=b.period_start,
                    period_end=b.period_end,
                    usage=b.usage,
                    unit=b.unit,
                    amount=b.total,
                )
                for b in rows
            ],
        )


def forecast(
    uow: UnitOfWork, household_id: str, utility: str, *, today: date | None = None
) -> schemas.Forecast:
    """Next month's expected usage and its cost under the tariff then in force.

    The usage comes from :mod:`backend.domain.forecast` (trend + seasonality); the
    cost is priced by :mod:`backend.domain.tariffs`, the one place of tariff math.
    """
    from backend.domain import forecast as fc

    check_utility(utility)
    today = today or utcnow().date()
    with uow:
        hh = get_household(uow, household_id)
        rows = uow.session.execute(
            select(orm.Bill.period_start, orm.Bill.usage)
            .where(orm.Bill.household_id == household_id, orm.Bill.utility == utility)
            .order_by(orm.Bill.period_start)
        ).all()
        versions = [tariff_version(t) for t in uow.repo.tariffs()]
        area = hh.area_m2
    history = [(p, u) for p, u in rows if u is not None]
    last = rows[-1][0] if rows else today.replace(day=1)
    nxt_start = (last.replace(day=28) + timedelta(days=4)).replace(day=1)
    nxt_start, nxt_end = billing.month_period(nxt_start.year, nxt_start.month)
    try:
        tariff = select_tariff(versions, utility, nxt_start)
    except LookupError as exc:
        raise NotFound("no_tariff", str(exc)) from exc
    if utility == "property_fee":
        lines = price_area(tariff, area)
        return schemas.Forecast(
            household_id=household_id,
            utility="property_fee",
            period_start=nxt_start,
            period_end=nxt_end,
            usage=Decimal("0.000"),
            unit=None,
            amount_estimate=total([ln.amount for ln in lines]),
            method="fixed_area_fee",
        )
    if not history:
        raise NotFound("no_history", f"no {utility} usage history to forecast from")
    try:
        result = fc.forecast_next(history)
    except ValueError as exc:
        raise Invalid("forecast_failed", str(exc)) from exc
    start, end = billing.month_period(result.period_start.year, result.period_start.month)
    try:
        tariff = select_tariff(versions, utility, start)
    except LookupError as exc:
        raise NotFound("no_tariff", str(exc)) from exc
    lines = price_usage(tariff, result.usage)
    return schemas.Forecast(
        household_id=household_id,
        utility=utility,  # type: ignore[arg-type]
        period_start=start,
        period_end=end,
        usage=result.usage,
        unit=tariff.unit,
        amount_estimate=total([ln.amount for ln in lines]),
        method=result.method,
        details={
            "lower": format(result.lower, "f"),
            "upper": format(result.upper, "f"),
            "history_months": result.history_months,
        },
    )
