"""Billing use cases as plain functions, each in its own unit of work.

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
import hmac
import json
import secrets
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from backend import schemas
from backend.adapters import orm
from backend.domain import allocation as alloc
from backend.domain import bills as billing
from backend.domain import ledger
from backend.domain import payments as pay_rules
from backend.domain import reminders as reminder_rules
from backend.domain.money import ZERO, InvalidAmount, parse_amount, total
from backend.domain.readings import (
    SOURCES,
    PriorReading,
    ReadingError,
    validate_reading,
)
from backend.domain.tariffs import (
    METERED_UTILITIES,
    UTILITIES,
    Line,
    TariffVersion,
    price_area,
    price_usage,
    select_tariff,
    tiers_from_json,
)
from backend.gateway.base import GatewayError, GatewayResult, PaymentGateway
from backend.service_layer.errors import (
    Conflict,
    Forbidden,
    Invalid,
    NotFound,
    ServiceError,
    TooManyAttempts,
)
from backend.service_layer.unit_of_work import UnitOfWork
from backend.settings import BillingSettings, get_billing_settings
from billtalk.logs import get_logger
from billtalk.settings import get_settings

log = get_logger("backend.services")

_UTILITY_CODES = {"electricity": "el", "water": "wa", "gas": "ga", "property_fee": "pf"}


def utcnow() -> datetime:
    """The current time in UTC."""
    return datetime.now(UTC)


def _aware(dt: datetime) -> datetime:
    """SQLite returns naive datetimes; every stored time is UTC."""
    return dt if dt.tzinfo is not None else dt.replace(tzinfo=UTC)


def _midnight(d: date) -> datetime:
    return datetime.combine(d, time(0, 0), tzinfo=UTC)


def _check_utility(utility: str | None, *, metered: bool = False) -> None:
    allowed = METERED_UTILITIES if metered else UTILITIES
    if utility is not None and utility not in allowed:
        raise Invalid("unknown_utility", f"unknown utility {utility!r}; expected one of {allowed}")


def _household(uow: UnitOfWork, household_id: str, *, lock: bool = False) -> orm.Household:
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


# ---------------------------------------------------------------------------------
# tariffs and bills
# ---------------------------------------------------------------------------------


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


@dataclass
class GenerationReport:
    """What :func:`generate_bills` did."""

    created: int = 0
    regenerated: int = 0
    unchanged: int = 0
    skipped: int = 0
    autopaid: int = 0


def _metered_usage(
    uow: UnitOfWork, meter: orm.Meter, start: date, end: date
) -> tuple[Decimal, Decimal, Decimal] | None:
    """(usage, start value, end value) of ``meter`` over the period, or ``None``."""
    start_at = _midnight(start)
    end_at = _midnight(end + timedelta(days=1))
    first = uow.repo.reading_at_or_before(meter.meter_id, start_at)
    if first is None:  # a meter installed during the period: bill from its first reading
        first = uow.repo.reading_after(meter.meter_id, start_at)
        if first is None or _aware(first.taken_at) >= end_at:
            return None
    last = uow.repo.reading_at_or_before(meter.meter_id, end_at)
    if last is None or last.reading_id == first.reading_id:
        return None  # no reading during the period: nothing to bill yet
    return last.value - first.value, first.value, last.value


def _lines_for(
    uow: UnitOfWork,
    hh: orm.Household,
    utility: str,
    start: date,
    end: date,
    tariffs: list[TariffVersion],
) -> tuple[TariffVersion, list[Line], tuple[Decimal, Decimal, Decimal] | None] | None:
    try:
        tariff = select_tariff(tariffs, utility, start)
    except LookupError:
        return None
    if utility == "property_fee":
        return tariff, price_area(tariff, hh.area_m2), None
    meter = uow.repo.meter(hh.household_id, utility)
    if meter is None:
        return None
    usage = _metered_usage(uow, meter, start, end)
    if usage is None:
        return None
    if tariff.kind == "tou":
        # Time-of-use needs per-period registers; the meters here have one register.
        log.warning("tou_needs_registers", household_id=hh.household_id, utility=utility)
        return None
    return tariff, price_usage(tariff, usage[0]), usage


def _apply_credit(uow: UnitOfWork, bill: orm.Bill, now: datetime) -> Decimal:
    """Use the household's credit (utility bucket, then general) on ``bill``."""
    applied = ZERO
    for bucket in (bill.utility, alloc.GENERAL):
        due = bill.total - bill.amount_paid
        if due <= 0:
            break
        row = uow.session.get(orm.HouseholdCredit, (bill.household_id, bucket))
        if row is None or row.amount <= 0:
            continue
        use = min(due, row.amount)
        row.amount -= use
        bill.amount_paid += use
        applied += use
        post(uow, ledger.credit_applied_entry(bill.bill_id, bill.household_id, use), now)
    return applied


def _refresh_status(bill: orm.Bill, today: date) -> None:
    bill.status = billing.bill_status(bill.total, bill.amount_paid, bill.due_date, today)


def generate_household_bills(
    uow: UnitOfWork,
    household_id: str,
    period_start: date,
    *,
    today: date | None = None,
    tariffs: list[TariffVersion] | None = None,
    report: GenerationReport | None = None,
) -> list[str]:
    """Generate (or regenerate) one household's bills for the month of ``period_start``.

    Idempotent: generating again with unchanged readings and tariffs changes
    nothing. If the readings or tariffs changed, the charge lines are replaced, a
    compensating ledger entry books the difference and anything paid beyond the
    new total becomes credit. Commits; returns the ids of bills created or changed.
    """
    start, end = billing.month_period(period_start.year, period_start.month)
    today = today or utcnow().date()
    report = report or GenerationReport()
    now = utcnow()
    changed: list[str] = []
    with uow:
        hh = _household(uow, household_id, lock=True)
        versions = (
            tariffs if tariffs is not None else [tariff_version(t) for t in uow.repo.tariffs()]
        )
        for utility in UTILITIES:
            priced = _lines_for(uow, hh, utility, start, end, versions)
            if priced is None:
                report.skipped += 1
                continue
            tariff, lines, usage = priced
            charges = total([ln.amount for ln in lines])
            bill = uow.repo.bill_for(hh.household_id, utility, start)
            if bill is None:
                bill = orm.Bill(
                    bill_id=bill_id_for(hh.household_id, utility, start),
                    household_id=hh.household_id,
                    utility=utility,
                    period_start=start,
                    period_end=end,
                    issued_on=end + timedelta(days=1),
                    due_date=billing.due_date_for(end),
                    tariff_id=tariff.tariff_id,
                    usage=usage[0] if usage else None,
                    unit=tariff.unit,
                    start_reading=usage[1] if usage else None,
                    end_reading=usage[2] if usage else None,
                    total=charges,
                    amount_paid=ZERO,
                    status="open",
                    version=1,
                )
                bill.lines = [_line_row(i, ln) for i, ln in enumerate(lines)]
                uow.session.add(bill)
                uow.session.flush()
                post(uow, ledger.bill_entry(bill.bill_id, hh.household_id, utility, charges), now)
                _apply_credit(uow, bill, now)
                _refresh_status(bill, today)
                report.created += 1
                changed.append(bill.bill_id)
                continue
            old_charge_lines = [ln for ln in bill.lines if ln.kind in ("tier", "fixed", "area")]
            same = [(ln.kind, ln.description, ln.amount) for ln in old_charge_lines] == [
                (ln.kind, ln.description, ln.amount) for ln in lines
            ]
            if same:
                report.unchanged += 1
                continue
            old_charges = total([ln.amount for ln in old_charge_lines])
            kept = [ln for ln in bill.lines if ln.kind not in ("tier", "fixed", "area")]
            for ln in old_charge_lines:
                bill.lines.remove(ln)
            uow.session.flush()
            new_rows = [_line_row(i, ln) for i, ln in enumerate(lines)]
            for i, row in enumerate(kept, start=len(new_rows)):
                row.position = i
            bill.lines.extend(new_rows)
            bill.total = bill.total - old_charges + charges
            bill.usage = usage[0] if usage else None
            bill.start_reading = usage[1] if usage else None
            bill.end_reading = usage[2] if usage else None
            bill.tariff_id = tariff.tariff_id
            bill.version += 1
            post(
                uow,
                ledger.bill_entry(
                    f"{bill.bill_id}/v{bill.version}",
                    hh.household_id,
                    utility,
                    charges - old_charges,
                ),
                now,
            )
            if bill.amount_paid > bill.total:
                excess = bill.amount_paid - bill.total
                bill.amount_paid = bill.total
                credit = uow.repo.credit(hh.household_id, utility)
                credit.amount += excess
                post(
                    uow,
                    ledger.make_entry(
                        "credit_from_bill",
                        bill.bill_id,
                        [
                            ledger.Posting(
                                ledger.RECEIVABLE, debit=excess, household_id=hh.household_id
                            ),
                            ledger.Posting(
                                ledger.CUSTOMER_CREDIT, credit=excess, household_id=hh.household_id
                            ),
                        ],
                        household_id=hh.household_id,
                    ),
                    now,
                )
            else:
                _apply_credit(uow, bill, now)
            _refresh_status(bill, today)
            report.regenerated += 1
            changed.append(bill.bill_id)
        uow.commit()
    return changed


def _line_row(position: int, line: Line) -> orm.BillLine:
    return orm.BillLine(
        position=position,
        kind=line.kind,
        description=line.description,
        quantity=line.quantity,
        unit_price=line.unit_price,
        amount=line.amount,
        tier_from=line.tier_from,
        tier_to=line.tier_to,
    )


def generate_bills(
    uow: UnitOfWork,
    period_start: date,
    *,
    today: date | None = None,
    household_ids: Iterable[str] | None = None,
    gateway: PaymentGateway | None = None,
    progress: Callable[[int], None] | None = None,
) -> GenerationReport:
    """Generate every household's bills for the month of ``period_start``.

    One transaction per household (so a long run never holds a lock for long and a
    crash loses at most one household's work, which the next run redoes
    idempotently). With a ``gateway``, households with autopay for a utility get
    their new bills paid through :func:`create_payment`.
    """
    report = GenerationReport()
    with uow:
        ids = (
            list(household_ids)
            if household_ids is not None
            else list(
                uow.session.scalars(
                    select(orm.Household.household_id).order_by(orm.Household.household_id)
                )
            )
        )
        versions = [tariff_version(t) for t in uow.repo.tariffs()]
    for hid in ids:
        changed = generate_household_bills(
            uow, hid, period_start, today=today, tariffs=versions, report=report
        )
        if gateway is not None and changed:
            report.autopaid += run_autopay(uow, gateway, hid, changed)
        if progress is not None:
            progress(1)
    return report


# ---------------------------------------------------------------------------------
# readings
# ---------------------------------------------------------------------------------


def _monthly_history(uow: UnitOfWork, household_id: str, utility: str) -> list[Decimal]:
    rows = uow.session.scalars(
        select(orm.Bill.usage)
        .where(orm.Bill.household_id == household_id, orm.Bill.utility == utility)
        .order_by(orm.Bill.period_start.desc())
        .limit(12)
    ).all()
    return [r for r in rows if r is not None]


def record_reading(
    uow: UnitOfWork,
    household_id: str,
    utility: str,
    value: Decimal,
    *,
    source: str = "resident",
    taken_at: datetime | None = None,
) -> schemas.ReadingResult:
    """Validate and store a meter reading (see :mod:`backend.domain.readings`).

    Raises:
        NotFound: unknown household or no meter of that utility.
        Invalid: backwards (code ``reading_backwards``), negative, or bad source.
        Conflict: a different value was already recorded at the same time.
    """
    _check_utility(utility, metered=True)
    if source not in SOURCES:
        raise Invalid("invalid_source", f"source must be one of {SOURCES}")
    taken_at = _aware(taken_at) if taken_at else utcnow()
    if taken_at > utcnow() + timedelta(minutes=5):
        raise Invalid("reading_in_future", "a reading cannot be taken in the future")
    with uow:
        _household(uow, household_id, lock=True)
        meter = uow.repo.meter(household_id, utility)
        if meter is None:
            raise NotFound("unknown_meter", f"household {household_id} has no {utility} meter")
        same_time = uow.session.scalars(
            select(orm.MeterReading).where(
                orm.MeterReading.meter_id == meter.meter_id, orm.MeterReading.taken_at == taken_at
            )
        ).first()
        if same_time is not None:
            if same_time.value == value:
                return schemas.ReadingResult(
                    reading_id=same_time.reading_id,
                    status="duplicate",
                    message="This reading was already recorded.",
                )
            raise Conflict("reading_conflict", "a different reading was recorded at that time")
        prev = uow.repo.reading_at_or_before(meter.meter_id, taken_at)
        nxt = uow.repo.reading_after(meter.meter_id, taken_at)
        try:
            verdict = validate_reading(
                value,
                taken_at,
                PriorReading(prev.value, _aware(prev.taken_at)) if prev else None,
                PriorReading(nxt.value, _aware(nxt.taken_at)) if nxt else None,
                _monthly_history(uow, household_id, utility),
                unit=meter.unit,
            )
        except ReadingError as exc:
            raise Invalid(exc.code, str(exc)) from exc
        if verdict.status == "duplicate":
            return schemas.ReadingResult(
                reading_id=prev.reading_id if prev else None,
                status="duplicate",
                message=verdict.message,
            )
        row = orm.MeterReading(
            meter_id=meter.meter_id,
            value=value,
            taken_at=taken_at,
            source=source,
            status="accepted" if verdict.status == "accepted" else "flagged",
            note=verdict.message if verdict.status == "flagged" else "",
            created_at=utcnow(),
        )
        uow.session.add(row)
        uow.session.flush()
        uow.commit()
        if verdict.status == "flagged":
            log.warning(
                "reading_flagged",
                household_id=household_id,
                utility=utility,
                reading_id=row.reading_id,
            )
        return schemas.ReadingResult(
            reading_id=row.reading_id,
            status="accepted" if verdict.status == "accepted" else "flagged",
            message=verdict.message,
            suggested_value=verdict.suggested_value,
        )


def review_reading(uow: UnitOfWork, reading_id: int, *, approve: bool) -> schemas.Reading:
    """Staff: approve (make billable) or reject a flagged reading."""
    with uow:
        row = uow.session.get(orm.MeterReading, reading_id)
        if row is None:
            raise NotFound("unknown_reading", f"no reading {reading_id}")
        meter = uow.session.get(orm.Meter, row.meter_id)
        assert meter is not None
        _household(uow, meter.household_id, lock=True)
        if row.status != "flagged":
            raise Conflict("not_flagged", f"reading {reading_id} is {row.status}, not flagged")
        row.status = "accepted" if approve else "rejected"
        out = _reading_out(row, meter.utility)
        uow.commit()
        return out


def _reading_out(row: orm.MeterReading, utility: str) -> schemas.Reading:
    return schemas.Reading(
        reading_id=row.reading_id,
        utility=utility,  # type: ignore[arg-type]
        value=row.value,
        taken_at=_aware(row.taken_at),
        source=row.source,
        status=row.status,
    )


def list_readings(
    uow: UnitOfWork, household_id: str, *, utility: str | None = None, limit: int = 24
) -> list[schemas.Reading]:
    """The household's readings, newest first."""
    _check_utility(utility, metered=True)
    with uow:
        _household(uow, household_id)
        q = (
            select(orm.MeterReading, orm.Meter.utility)
            .join(orm.Meter, orm.Meter.meter_id == orm.MeterReading.meter_id)
            .where(orm.Meter.household_id == household_id)
        )
        if utility:
            q = q.where(orm.Meter.utility == utility)
        rows = uow.session.execute(q.order_by(orm.MeterReading.taken_at.desc()).limit(limit)).all()
        return [_reading_out(r, u) for r, u in rows]


def flagged_readings(uow: UnitOfWork, limit: int = 100) -> list[dict[str, Any]]:
    """Staff: readings waiting for review."""
    with uow:
        rows = uow.session.execute(
            select(orm.MeterReading, orm.Meter)
            .join(orm.Meter, orm.Meter.meter_id == orm.MeterReading.meter_id)
            .where(orm.MeterReading.status == "flagged")
            .order_by(orm.MeterReading.taken_at)
            .limit(limit)
        ).all()
        return [
            {
                "household_id": m.household_id,
                "note": r.note,
                **_reading_out(r, m.utility).model_dump(mode="json"),
            }
            for r, m in rows
        ]


# ---------------------------------------------------------------------------------
# bills, balance, usage
# ---------------------------------------------------------------------------------


def _summary(bill: orm.Bill, today: date) -> schemas.BillSummary:
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


def balance(uow: UnitOfWork, household_id: str, *, today: date | None = None) -> schemas.Balance:
    """What the household owes, per utility, with its credits and open bills."""
    today = today or utcnow().date()
    with uow:
        _household(uow, household_id)
        bills = uow.repo.unpaid_bills(household_id)
        by_utility: dict[str, Decimal] = defaultdict(lambda: ZERO)
        for b in bills:
            by_utility[b.utility] += b.total - b.amount_paid
        credits = {
            c.utility: c.amount
            for c in uow.session.scalars(
                select(orm.HouseholdCredit).where(
                    orm.HouseholdCredit.household_id == household_id, orm.HouseholdCredit.amount > 0
                )
            )
        }
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
    _check_utility(utility)
    if status is not None and status not in billing.BILL_STATUSES:
        raise Invalid("invalid_status", f"status must be one of {billing.BILL_STATUSES}")
    today = today or utcnow().date()
    with uow:
        _household(uow, household_id)
        rows = uow.repo.bills(
            household_id, utility=utility, limit=max(limit, 1) * (4 if status else 1)
        )
        out = [_summary(b, today) for b in rows]
        if status:
            out = [b for b in out if b.status == status]
        return out[:limit]


def bill_household(uow: UnitOfWork, bill_id: str) -> str:
    """The household a bill belongs to (for access checks)."""
    with uow:
        hid = uow.session.scalar(select(orm.Bill.household_id).where(orm.Bill.bill_id == bill_id))
        if hid is None:
            raise NotFound("unknown_bill", f"no bill {bill_id!r}")
        return hid


def get_bill(uow: UnitOfWork, bill_id: str, *, today: date | None = None) -> schemas.BillDetail:
    """A bill with its lines and usage comparisons."""
    today = today or utcnow().date()
    with uow:
        bill = uow.repo.bill(bill_id)
        if bill is None:
            raise NotFound("unknown_bill", f"no bill {bill_id!r}")
        prev_start = billing.previous_month(bill.period_start)[0]
        last_year = bill.period_start.replace(year=bill.period_start.year - 1)
        prev = uow.repo.bill_for(bill.household_id, bill.utility, prev_start)
        ly = uow.repo.bill_for(bill.household_id, bill.utility, last_year)
        tariff = uow.session.get(orm.Tariff, bill.tariff_id) if bill.tariff_id else None
        return schemas.BillDetail(
            **_summary(bill, today).model_dump(),
            lines=[
                schemas.BillLine(
                    kind=ln.kind,  # type: ignore[arg-type]
                    description=ln.description,
                    quantity=ln.quantity,
                    unit_price=ln.unit_price,
                    amount=ln.amount,
                    tier_from=ln.tier_from,
                    tier_to=ln.tier_to,
                )
                for ln in bill.lines
            ],
            tariff_name=tariff.name if tariff else None,
            start_reading=bill.start_reading,
            end_reading=bill.end_reading,
            previous_usage=prev.usage if prev else None,
            last_year_usage=ly.usage if ly else None,
        )


def usage_series(
    uow: UnitOfWork, household_id: str, utility: str, start: date, end: date
) -> schemas.UsageSeries:
    """Billed usage and amounts of one utility for periods starting in ``[start, end]``."""
    _check_utility(utility)
    if end < start:
        raise Invalid("invalid_range", "end must not be before start")
    with uow:
        _household(uow, household_id)
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

    _check_utility(utility)
    today = today or utcnow().date()
    with uow:
        hh = _household(uow, household_id)
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


# ---------------------------------------------------------------------------------
# payments
# ---------------------------------------------------------------------------------


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


def _allocations_out(uow: UnitOfWork, payment: orm.Payment) -> list[schemas.AllocationOut]:
    net: dict[str, Decimal] = defaultdict(lambda: ZERO)
    for a in payment.allocations:
        net[a.bill_id] += a.amount
    out = []
    for bill_id, amount in net.items():
        if amount == 0:
            continue
        b = uow.session.get(orm.Bill, bill_id)
        assert b is not None
        out.append(
            schemas.AllocationOut(
                bill_id=bill_id,
                utility=b.utility,  # type: ignore[arg-type]
                period_start=b.period_start,
                period_end=b.period_end,
                amount=amount,
            )
        )
    return sorted(out, key=lambda a: (a.period_start, a.utility))


def _payment_out(uow: UnitOfWork, p: orm.Payment) -> schemas.Payment:
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
        created_at=_aware(p.created_at),
        paid_at=_aware(p.paid_at) if p.paid_at else None,
        allocations=_allocations_out(uow, p),
    )


def _paid_today(uow: UnitOfWork, household_id: str, now: datetime) -> Decimal:
    start = _midnight(now.date())
    value = uow.session.scalar(
        select(func.sum(orm.Payment.amount)).where(
            orm.Payment.household_id == household_id,
            orm.Payment.status.in_(("succeeded", "pending")),
            orm.Payment.created_at >= start,
        )
    )
    return value if value is not None else ZERO


def preview_payment(
    uow: UnitOfWork,
    household_id: str,
    amount: Decimal,
    *,
    utility: str | None = None,
    settings: BillingSettings | None = None,
) -> schemas.PaymentPreview:
    """What paying ``amount`` would do: allocations, overpayment and risk flags.

    Raises:
        Invalid: ``overpayment_limit`` when the payment would exceed the credit limit.
    """
    _check_utility(utility)
    settings = settings or get_billing_settings()
    now = utcnow()
    with uow:
        _household(uow, household_id)
        bills = uow.repo.unpaid_bills(household_id, utility)
        bucket = utility or alloc.GENERAL
        credit_row = uow.session.get(orm.HouseholdCredit, (household_id, bucket))
        existing = credit_row.amount if credit_row else ZERO
        try:
            plan = alloc.allocate(amount, _open_bills(bills), utility, existing)
        except alloc.OverpaymentLimit as exc:
            raise Invalid(exc.code, str(exc)) from exc
        due = total([b.total - b.amount_paid for b in bills])
        paid_today = _paid_today(uow, household_id, now)
    reasons = []
    if amount >= settings.high_value_threshold:
        reasons.append("high_value")
    if paid_today + amount > settings.daily_limit:
        reasons.append("daily_limit")
    if plan.overpayment > 0:
        reasons.append("overpayment")
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
        paid_today=paid_today,
        risk_flagged=bool(set(reasons) & {"high_value", "daily_limit"}),
        risk_reasons=reasons,
    )


def _settle_success(uow: UnitOfWork, p: orm.Payment, now: datetime, today: date) -> None:
    """Allocate a succeeded payment, book it and give it a receipt number."""
    bills = uow.repo.unpaid_bills(p.household_id, p.utility)
    bucket = p.utility or alloc.GENERAL
    credit = uow.repo.credit(p.household_id, bucket)
    # The limit was checked before charging; money already captured is never refused.
    plan = alloc.allocate(
        p.amount, _open_bills(bills), p.utility, credit.amount, credit_limit=Decimal("Infinity")
    )
    by_id = {b.bill_id: b for b in bills}
    for a in plan.allocations:
        bill = by_id[a.bill_id]
        bill.amount_paid += a.amount
        _refresh_status(bill, today)
        p.allocations.append(
            orm.PaymentAllocation(bill_id=a.bill_id, amount=a.amount, created_at=now)
        )
    if plan.overpayment > 0:
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
    # Write everything else first: the year's receipt counter is one row every
    # payment locks, so it is taken last and held only until the commit.
    uow.session.flush()
    number = uow.repo.next_receipt_number(now.year)
    p.receipt_no = f"R{now.year}-{number:06d}"


def _apply_result(uow: UnitOfWork, p: orm.Payment, result: GatewayResult, now: datetime) -> bool:
    """Apply a gateway answer to a locked payment; returns whether anything changed."""
    if result.reference and p.gateway_reference != result.reference:
        p.gateway_reference = result.reference
    if p.status != "pending":
        return False
    if result.status == "succeeded":
        _settle_success(uow, p, now, now.date())
    elif result.status == "failed":
        p.status = pay_rules.transition(p.status, "failed")
        p.failure_code = result.failure_code or "failed"
    else:
        p.failure_code = result.failure_code or "pending"
    p.updated_at = now
    return True


def _response(uow: UnitOfWork, p: orm.Payment) -> dict[str, Any]:
    return _payment_out(uow, p).model_dump(mode="json")


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
) -> tuple[dict[str, Any], bool]:
    """Pay ``amount`` for a household (see the module docstring for the flow).

    Args:
        now: the payment time (default: now); the demo seeder back-dates payments.
        payment_id: the id to give a new payment (default: random).

    Returns:
        ``(response, replayed)``: the payment as JSON-ready dict, and whether it is
        the stored response of an earlier request with the same idempotency key.

    Raises:
        NotFound: unknown household.
        Conflict: the key was used with a different body (``idempotency_key_reused``).
        Invalid: bad amount, method or utility, or the overpayment limit.
    """
    _check_utility(utility)
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
    rhash = _request_hash(household_id, utility, amount, method, payment_token)
    stamp = now
    now = now or utcnow()
    # 1. record (or find) the pending payment
    try:
        with uow:
            hh = _household(uow, household_id, lock=True)
            existing = uow.repo.payment_by_key(idempotency_key)
            if existing is not None:
                if existing.request_hash != rhash:
                    raise Conflict(
                        "idempotency_key_reused",
                        "this Idempotency-Key was already used with a different request",
                    )
                if existing.response is not None and existing.status != "pending":
                    return existing.response, True
                payment_id = existing.payment_id
                token = existing.payment_token
            else:
                bucket = utility or alloc.GENERAL
                credit_row = uow.session.get(orm.HouseholdCredit, (household_id, bucket))
                try:
                    alloc.allocate(
                        amount,
                        _open_bills(uow.repo.unpaid_bills(household_id, utility)),
                        utility,
                        credit_row.amount if credit_row else ZERO,
                    )
                except alloc.OverpaymentLimit as exc:
                    raise Invalid(exc.code, str(exc)) from exc
                payment_id = payment_id or f"pay_{uuid.uuid4().hex[:24]}"
                token = payment_token if payment_token is not None else hh.saved_method_token
                uow.session.add(
                    orm.Payment(
                        payment_id=payment_id,
                        household_id=household_id,
                        utility=utility,
                        amount=amount,
                        method=method,
                        status="pending",
                        idempotency_key=idempotency_key,
                        request_hash=rhash,
                        gateway=getattr(gateway, "name", "gateway"),
                        payment_token=token,
                        source=source,
                        created_at=now,
                        updated_at=now,
                    )
                )
                uow.commit()
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
        )
    # 2. charge (idempotent at the gateway: the payment id is its key)
    try:
        result = gateway.charge(
            amount=amount,
            currency=get_settings().currency,
            method=method,
            payment_token=token,
            idempotency_key=payment_id,
        )
    except GatewayError as exc:
        result = GatewayResult("failed", "", exc.code, exc.message, amount, get_settings().currency)
    # 3. settle
    with uow:
        _household(uow, household_id, lock=True)
        p = uow.repo.payment(payment_id, lock=True)
        assert p is not None
        _apply_result(uow, p, result, stamp or utcnow())
        uow.session.flush()
        response = _response(uow, p)
        if p.response is None and p.status != "pending":
            p.response = response
        uow.commit()
    log.info("payment", payment_id=payment_id, status=response["status"], household_id=household_id)
    return response, False


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
            if ref:
                result = gateway.status(ref)
            else:
                result = gateway.charge(
                    amount=amount,
                    currency=get_settings().currency,
                    method=method,
                    payment_token=token,
                    idempotency_key=payment_id,
                )
        except GatewayError as exc:
            log.warning("reconcile_error", payment_id=payment_id, code=exc.code)
            counts["pending"] += 1
            continue
        with uow:
            _household(uow, household_id, lock=True)
            p = uow.repo.payment(payment_id, lock=True)
            assert p is not None
            _apply_result(uow, p, result, utcnow())
            uow.session.flush()
            if p.status != "pending" and p.response is None:
                p.response = _response(uow, p)
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
            _household(uow, hid, lock=True)
            p = uow.session.scalars(
                select(orm.Payment)
                .where(orm.Payment.gateway_reference == reference)
                .with_for_update()
                .execution_options(populate_existing=True)
            ).first()
            assert p is not None
            if _apply_result(uow, p, result, utcnow()):
                outcome = "applied"
                uow.session.flush()
                if p.status != "pending" and p.response is None:
                    p.response = _response(uow, p)
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
        _household(uow, hid, lock=True)
        p = uow.repo.payment(payment_id, lock=True)
        assert p is not None
        left = p.amount - p.refunded
        amount = left if reverse or amount is None else amount
        try:
            pay_rules.check_refund(p.status, amount, p.refunded, p.amount)
            if reverse:
                pay_rules.transition(p.status, "reversed")
        except pay_rules.InvalidTransition as exc:
            raise Conflict(exc.code, str(exc)) from exc
        bucket = p.utility or alloc.GENERAL
        credit = uow.repo.credit(p.household_id, bucket)
        credit_left = p.credited - min(p.refunded, p.credited)
        from_credit = min(amount, credit_left, credit.amount)
        from_bills = amount - from_credit
        net: dict[str, Decimal] = defaultdict(lambda: ZERO)
        for a in p.allocations:
            net[a.bill_id] += a.amount
        if from_bills > sum(net.values(), ZERO):
            raise Conflict(
                "refund_exceeds_refundable",
                "part of this payment's credit was already used; refund at most "
                f"{from_credit + sum(net.values(), ZERO):f}",
            )
        if not p.gateway_reference:
            raise Conflict("no_gateway_reference", "the payment has no gateway reference")
        try:
            gateway.refund(p.gateway_reference, amount, f"{payment_id}-refund-{p.refunded}")
        except GatewayError as exc:
            raise Conflict(exc.code, exc.message) from exc
        credit.amount -= from_credit
        remaining = from_bills
        bills = {b: uow.session.get(orm.Bill, b) for b in net}
        for bill_id in sorted(net, key=lambda b: bills[b].period_start, reverse=True):  # type: ignore[union-attr]
            if remaining <= 0:
                break
            part = min(remaining, net[bill_id])
            if part <= 0:
                continue
            bill = bills[bill_id]
            assert bill is not None
            bill.amount_paid -= part
            _refresh_status(bill, now.date())
            p.allocations.append(
                orm.PaymentAllocation(bill_id=bill_id, amount=-part, created_at=now)
            )
            remaining -= part
        p.refunded += amount
        if reverse:
            p.status = "reversed"
        p.updated_at = now
        post(
            uow,
            ledger.reversal_entry(
                "reversal" if reverse else "refund",
                payment_id,
                p.household_id,
                from_bills,
                from_credit,
            ),
            now,
        )
        uow.session.flush()
        out = _payment_out(uow, p)
        uow.commit()
    log.info("refund", payment_id=payment_id, amount=str(amount), reverse=reverse, reason=reason)
    return out


def payment_household(uow: UnitOfWork, payment_id: str) -> str:
    """The household a payment belongs to (for access checks)."""
    with uow:
        hid = uow.session.scalar(
            select(orm.Payment.household_id).where(orm.Payment.payment_id == payment_id)
        )
        if hid is None:
            raise NotFound("unknown_payment", f"no payment {payment_id!r}")
        return hid


def get_payment(uow: UnitOfWork, payment_id: str) -> schemas.Payment:
    """One payment."""
    with uow:
        p = uow.repo.payment(payment_id)
        if p is None:
            raise NotFound("unknown_payment", f"no payment {payment_id!r}")
        return _payment_out(uow, p)


def list_payments(uow: UnitOfWork, household_id: str, *, limit: int = 5) -> list[schemas.Payment]:
    """The household's payments, newest first."""
    with uow:
        _household(uow, household_id)
        rows = uow.session.scalars(
            select(orm.Payment)
            .where(orm.Payment.household_id == household_id)
            .order_by(orm.Payment.created_at.desc())
            .limit(limit)
        ).all()
        return [_payment_out(uow, p) for p in rows]


def get_receipt(uow: UnitOfWork, payment_id: str) -> schemas.Receipt:
    """The receipt of a succeeded (or later refunded/reversed) payment."""
    with uow:
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
            paid_at=_aware(p.paid_at),
            status=p.status,  # type: ignore[arg-type]
            refunded=p.refunded,
            allocations=_allocations_out(uow, p),
        )


# ---------------------------------------------------------------------------------
# autopay
# ---------------------------------------------------------------------------------


def get_autopay(uow: UnitOfWork, household_id: str) -> dict[str, schemas.AutopaySetting]:
    """Autopay settings per utility (utilities never set are reported disabled)."""
    with uow:
        _household(uow, household_id)
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
    _check_utility(utility)
    if utility is None:
        raise Invalid("unknown_utility", "utility is required")
    if method is not None and method not in pay_rules.METHODS:
        raise Invalid("unknown_method", f"method must be one of {pay_rules.METHODS}")
    with uow:
        hh = _household(uow, household_id, lock=True)
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
        hh = _household(uow, household_id)
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


# ---------------------------------------------------------------------------------
# reminders and late fees
# ---------------------------------------------------------------------------------


def run_reminders(
    uow: UnitOfWork, *, today: date | None = None, settings: BillingSettings | None = None
) -> dict[str, int]:
    """Refresh bill statuses, charge late fees (if enabled) and queue due notices."""
    today = today or utcnow().date()
    settings = settings or get_billing_settings()
    policy = settings.late_fee_policy()
    currency = get_settings().currency
    counts = {"notices": 0, "late_fees": 0, "overdue": 0}
    with uow:
        rows = uow.session.execute(
            select(orm.Bill.bill_id, orm.Bill.household_id).where(
                orm.Bill.status != "paid", orm.Bill.due_date <= today + timedelta(days=3)
            )
        ).all()
    by_household: dict[str, list[str]] = defaultdict(list)
    for bid, hid in rows:
        by_household[hid].append(bid)
    now = utcnow()
    for hid, bids in by_household.items():
        with uow:
            _household(uow, hid, lock=True)
            for bid in bids:
                bill = uow.repo.bill(bid)
                assert bill is not None
                if bill.total <= bill.amount_paid:
                    continue
                fee_line = next((ln for ln in bill.lines if ln.kind == "late_fee"), None)
                existing_fee = fee_line.amount if fee_line else ZERO
                target = policy.fee(
                    bill.total - existing_fee - bill.amount_paid, bill.due_date, today
                )
                if target > existing_fee:
                    delta = target - existing_fee
                    if fee_line is None:
                        fee_line = orm.BillLine(
                            position=len(bill.lines),
                            kind="late_fee",
                            description="Late fee",
                            amount=ZERO,
                        )
                        bill.lines.append(fee_line)
                    fee_line.amount = target
                    fee_line.description = f"Late fee ({policy.description})"[:200]
                    bill.total += delta
                    post(
                        uow,
                        ledger.bill_entry(
                            f"{bid}/late-{today:%Y%m%d}", hid, bill.utility, ZERO, delta
                        ),
                        now,
                    )
                    counts["late_fees"] += 1
                before = bill.status
                _refresh_status(bill, today)
                counts["overdue"] += before != "overdue" and bill.status == "overdue"
                sent = set(
                    uow.session.scalars(
                        select(orm.Notice.kind).where(orm.Notice.bill_id == bid)
                    ).all()
                )
                kind = reminder_rules.notice_due(bill.due_date, today, sent)
                if kind is None:
                    continue
                due = bill.total - bill.amount_paid
                uow.session.add(
                    orm.Notice(
                        household_id=hid,
                        bill_id=bid,
                        kind=kind,
                        message=reminder_rules.notice_text(
                            kind, bill.utility, due, bill.due_date, currency
                        ),
                        amount_due=due,
                        due_date=bill.due_date,
                        status="pending",
                        created_at=now,
                    )
                )
                counts["notices"] += 1
            uow.commit()
    return counts


def _notice_out(n: orm.Notice, residents: list[str]) -> schemas.Notice:
    return schemas.Notice(
        notice_id=n.notice_id,
        household_id=n.household_id,
        resident_ids=residents,
        bill_id=n.bill_id,
        kind=n.kind,
        message=n.message,
        amount_due=n.amount_due,
        due_date=n.due_date,
        status=n.status,  # type: ignore[arg-type]
        created_at=_aware(n.created_at),
        delivered_at=_aware(n.delivered_at) if n.delivered_at else None,
        channel=n.channel,
    )


def pending_notices(
    uow: UnitOfWork, *, limit: int = 50, household_id: str | None = None
) -> list[schemas.Notice]:
    """Notices waiting for delivery, oldest first."""
    with uow:
        q = select(orm.Notice).where(orm.Notice.status == "pending")
        if household_id is not None:
            q = q.where(orm.Notice.household_id == household_id)
        rows = uow.session.scalars(q.order_by(orm.Notice.notice_id).limit(limit)).all()
        out = []
        for n in rows:
            residents = list(
                uow.session.scalars(
                    select(orm.Resident.resident_id).where(
                        orm.Resident.household_id == n.household_id
                    )
                )
            )
            out.append(_notice_out(n, residents))
        return out


def notice_household(uow: UnitOfWork, notice_id: int) -> str:
    """The household a notice belongs to (for access checks)."""
    with uow:
        n = uow.session.get(orm.Notice, notice_id)
        if n is None:
            raise NotFound("unknown_notice", f"no notice {notice_id}")
        return n.household_id


def mark_notice_delivered(
    uow: UnitOfWork, notice_id: int, channel: str
) -> tuple[schemas.Notice, bool]:
    """Mark a notice delivered exactly once.

    Returns:
        ``(notice, newly_delivered)``; a second call returns ``False`` and changes nothing.
    """
    with uow:
        n = uow.session.scalars(
            select(orm.Notice).where(orm.Notice.notice_id == notice_id).with_for_update()
        ).first()
        if n is None:
            raise NotFound("unknown_notice", f"no notice {notice_id}")
        fresh = n.status == "pending"
        if fresh:
            n.status = "delivered"
            n.delivered_at = utcnow()
            n.channel = channel
        out = _notice_out(n, [])
        uow.commit()
        return out, fresh


# ---------------------------------------------------------------------------------
# ledger and reports
# ---------------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------------
# tokens, residents and link codes
# ---------------------------------------------------------------------------------


def hash_token(token: str) -> str:
    """How tokens are stored: their SHA-256 hex digest."""
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class Principal:
    """The authenticated caller: its scope and, for residents, its household."""

    scope: str
    token_id: int
    household_id: str | None = None
    resident_id: str | None = None

    def can_see(self, household_id: str) -> bool:
        """Whether this caller may read or act for ``household_id``."""
        return self.scope in ("service", "staff") or self.household_id == household_id


def issue_token(
    uow: UnitOfWork,
    scope: str,
    *,
    name: str = "",
    resident_id: str | None = None,
    ttl: timedelta | None = None,
    token: str | None = None,
) -> schemas.TokenOut:
    """Create a bearer token (only its hash is stored). Resident tokens need a resident."""
    if scope not in ("service", "resident", "staff"):
        raise Invalid("invalid_scope", "scope must be service, resident or staff")
    token = token or f"bt_{scope[:3]}_{secrets.token_urlsafe(32)}"
    with uow:
        household_id = None
        if scope == "resident":
            if resident_id is None:
                raise Invalid("resident_required", "a resident token needs a resident id")
            r = uow.repo.resident(resident_id)
            if r is None:
                raise NotFound("unknown_resident", f"no resident {resident_id!r}")
            household_id = r.household_id
        expires = utcnow() + ttl if ttl else None
        existing = uow.session.scalars(
            select(orm.ApiToken).where(orm.ApiToken.token_hash == hash_token(token))
        ).first()
        if existing is None:
            uow.session.add(
                orm.ApiToken(
                    token_hash=hash_token(token),
                    scope=scope,
                    name=name,
                    household_id=household_id,
                    resident_id=resident_id,
                    created_at=utcnow(),
                    expires_at=expires,
                )
            )
        uow.commit()
    return schemas.TokenOut(
        token=token,
        scope=scope,  # type: ignore[arg-type]
        household_id=household_id,
        resident_id=resident_id,
        expires_at=expires,
    )


def authenticate(uow: UnitOfWork, token: str) -> Principal | None:
    """The principal of a bearer token, or ``None`` if unknown, expired or revoked."""
    with uow:
        row = uow.session.scalars(
            select(orm.ApiToken).where(orm.ApiToken.token_hash == hash_token(token))
        ).first()
        if row is None or row.revoked_at is not None:
            return None
        if row.expires_at is not None and _aware(row.expires_at) <= utcnow():
            return None
        return Principal(row.scope, row.token_id, row.household_id, row.resident_id)


def get_resident(uow: UnitOfWork, resident_id: str) -> schemas.Resident:
    """A resident with their household's unit and saved payment method."""
    with uow:
        r = uow.repo.resident(resident_id)
        if r is None:
            raise NotFound("unknown_resident", f"no resident {resident_id!r}")
        hh = uow.session.get(orm.Household, r.household_id)
        assert hh is not None
        return schemas.Resident(
            resident_id=r.resident_id,
            household_id=r.household_id,
            name=r.name,
            language=r.language,
            unit=hh.unit,
            saved_method=hh.saved_method,  # type: ignore[arg-type]
            saved_method_label=hh.saved_method_label,
        )


def _code_hash(code: str) -> str:
    key = get_settings().secret_key.encode()
    return hmac.new(key, f"link-code:{code}".encode(), hashlib.sha256).hexdigest()


def create_link_code(
    uow: UnitOfWork, resident_id: str, *, ttl: timedelta | None = None, code: str | None = None
) -> schemas.LinkCodeOut:
    """Create a one-time, expiring 6-digit code that binds a chat account to a resident."""
    ttl = ttl or timedelta(minutes=get_billing_settings().link_code_ttl_minutes)
    with uow:
        if uow.repo.resident(resident_id) is None:
            raise NotFound("unknown_resident", f"no resident {resident_id!r}")
        for _ in range(20):
            candidate = code or f"{secrets.randbelow(10**6):06d}"
            clash = uow.session.scalars(
                select(orm.LinkCode).where(orm.LinkCode.code_hash == _code_hash(candidate))
            ).first()
            if clash is None:
                break
            if code is not None or (clash.used_at is None and _aware(clash.expires_at) > utcnow()):
                if code is not None:
                    raise Conflict("link_code_exists", "that code is already in use")
                continue
            uow.session.delete(clash)  # a used or expired code may be recycled
            uow.session.flush()
            break
        else:  # pragma: no cover - a million codes in use at once
            raise Conflict("no_free_code", "no free link code; try again")
        expires = utcnow() + ttl
        uow.session.add(
            orm.LinkCode(
                code_hash=_code_hash(candidate),
                resident_id=resident_id,
                created_at=utcnow(),
                expires_at=expires,
            )
        )
        uow.commit()
    return schemas.LinkCodeOut(code=candidate, resident_id=resident_id, expires_at=expires)


def redeem_link_code(
    uow: UnitOfWork,
    code: str,
    channel: str,
    external_id: str,
    *,
    settings: BillingSettings | None = None,
) -> schemas.LinkResult:
    """Bind ``(channel, external_id)`` to the code's resident; the code then dies.

    Raises:
        TooManyAttempts: this chat account failed too often in the last 15 minutes.
        Invalid: unknown (``invalid_link_code``) or expired (``link_code_expired``) code.
        Conflict: the code was already used (``link_code_used``).
    """
    settings = settings or get_billing_settings()
    window = utcnow() - timedelta(minutes=15)
    if not channel or not external_id or len(channel) > 20 or len(external_id) > 80:
        raise Invalid("invalid_channel", "channel and external_id are required")
    with uow:
        failures = (
            uow.session.scalar(
                select(func.count())
                .select_from(orm.LinkAttempt)
                .where(
                    orm.LinkAttempt.channel == channel,
                    orm.LinkAttempt.external_id == external_id,
                    orm.LinkAttempt.attempted_at >= window,
                )
            )
            or 0
        )
        if failures >= settings.link_max_attempts:
            raise TooManyAttempts(
                "too_many_attempts", "too many wrong codes; try again in 15 minutes"
            )
        row = uow.session.scalars(
            select(orm.LinkCode)
            .where(orm.LinkCode.code_hash == _code_hash(code.strip()))
            .with_for_update()
        ).first()
        error: ServiceError | None = None
        if row is None:
            error = Invalid("invalid_link_code", "that link code is not valid")
        elif row.used_at is not None:
            error = Conflict("link_code_used", "that link code was already used")
        elif _aware(row.expires_at) <= utcnow():
            error = Invalid("link_code_expired", "that link code has expired; ask for a new one")
        if error is not None:
            uow.session.add(
                orm.LinkAttempt(channel=channel, external_id=external_id, attempted_at=utcnow())
            )
            uow.commit()
            raise error
        assert row is not None
        row.used_at = utcnow()
        row.used_channel = channel
        row.used_external_id = external_id
        link = uow.session.get(orm.ChannelLink, (channel, external_id))
        if link is None:
            uow.session.add(
                orm.ChannelLink(
                    channel=channel,
                    external_id=external_id,
                    resident_id=row.resident_id,
                    linked_at=utcnow(),
                )
            )
        else:
            link.resident_id = row.resident_id
            link.linked_at = utcnow()
        r = uow.repo.resident(row.resident_id)
        assert r is not None
        out = schemas.LinkResult(resident_id=r.resident_id, household_id=r.household_id)
        uow.commit()
        return out


def resolve_link(uow: UnitOfWork, channel: str, external_id: str) -> schemas.LinkResult:
    """The resident a chat account is linked to."""
    with uow:
        link = uow.session.get(orm.ChannelLink, (channel, external_id))
        if link is None:
            raise NotFound("not_linked", "this chat account is not linked to a resident")
        r = uow.repo.resident(link.resident_id)
        assert r is not None
        return schemas.LinkResult(resident_id=r.resident_id, household_id=r.household_id)


def check_household_access(principal: Principal, household_id: str) -> None:
    """Raise :class:`Forbidden` unless ``principal`` may see ``household_id``."""
    if not principal.can_see(household_id):
        raise Forbidden("forbidden", "this token cannot access that household")
