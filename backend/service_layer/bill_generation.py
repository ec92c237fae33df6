"""Generating (and regenerating) bills from readings and tariffs."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal

from backend.adapters import orm
from backend.domain import allocation as alloc
from backend.domain import bills as billing
from backend.domain import ledger
from backend.domain.money import ZERO, total
from backend.domain.tariffs import (
    UTILITIES,
    Line,
    TariffVersion,
    price_area,
    price_usage,
    select_tariff,
)
from backend.service_layer.common import (
    aware,
    bill_id_for,
    get_household,
    log,
    midnight,
    post,
    refresh_status,
    tariff_version,
    utcnow,
)
from backend.service_layer.unit_of_work import UnitOfWork


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
    start_at = midnight(start)
    end_at = midnight(end + timedelta(days=1))
    first = uow.repo.reading_at_or_before(meter.meter_id, start_at)
    if first is None:  # a meter installed during the period: bill from its first reading
        first = uow.repo.reading_after(meter.meter_id, start_at)
        if first is None or aware(first.taken_at) >= end_at:
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
        hh = get_household(uow, household_id, lock=True)
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
                refresh_status(bill, today)
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
            refresh_status(bill, today)
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
