"""A set-based monthly bill run: the proposal for the ≤ 60 s / 100k households target.

``services.generate_bills`` bills one household per transaction with ~15 ORM
round trips per utility (readings, bill lookup, insert, flush, journal, credit
rows). That is right for one household or a regenerated bill, and far too slow
for a whole community. This module does the same work in a handful of set-based
statements:

1. two queries fetch every meter's boundary readings (last accepted reading at or
   before the period start and end: ``DISTINCT ON`` on PostgreSQL, a window
   function on SQLite);
2. households that already have a bill for the period, hold a credit, or whose
   meter has no reading before the period (installed mid-period) are left to the
   service's per-household path, which handles regeneration, credits and partial
   periods; everyone else is priced in Python by the domain's own
   :func:`~backend.domain.tariffs.price_usage` / ``price_area`` (memoised: many
   households share a usage value) and booked with the domain's
   :func:`~backend.domain.ledger.bill_entry`;
3. bills, lines and journal entries are written with ``COPY`` (PostgreSQL) or
   ``executemany`` (SQLite), one transaction per chunk of households. The unique
   ``(household, utility, period)`` constraint makes a concurrent run fail the
   chunk instead of double-billing; the chunk then goes through the slow path.

``bench/backend.py generate-fast`` times it; ``tests/backend/test_bench_smoke.py``
checks that it writes exactly what the service writes.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func, select
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from backend.adapters import orm
from backend.domain import bills as billing
from backend.domain import ledger
from backend.domain.money import total
from backend.domain.tariffs import (
    METERED_UTILITIES,
    UTILITIES,
    price_area,
    price_usage,
    select_tariff,
)
from backend.service_layer import services
from backend.service_layer.unit_of_work import UnitOfWork

try:
    from backend_seed import Loader
except ImportError:  # imported as bench.backend_generate_fast
    from bench.backend_seed import Loader


@dataclass
class BulkReport:
    """What :func:`generate_month_bulk` did."""

    bulk_households: int = 0
    slow_households: int = 0
    bills: int = 0
    lines: int = 0
    skipped: int = 0
    seconds: float = 0.0


def _midnight(d: date) -> datetime:
    return datetime(d.year, d.month, d.day, tzinfo=UTC)


def _boundary(engine: Engine, when: datetime) -> dict[str, tuple[int, Decimal]]:
    """meter_id -> (reading_id, value) of the last accepted reading at or before ``when``."""
    r = orm.MeterReading.__table__
    cond = (r.c.status == "accepted") & (r.c.taken_at <= when)
    if engine.dialect.name == "postgresql":
        q = (
            select(r.c.meter_id, r.c.reading_id, r.c.value)
            .where(cond)
            .distinct(r.c.meter_id)
            .order_by(r.c.meter_id, r.c.taken_at.desc())
        )
    else:
        ranked = (
            select(
                r.c.meter_id, r.c.reading_id, r.c.value,
                func.row_number()
                .over(partition_by=r.c.meter_id, order_by=r.c.taken_at.desc())
                .label("rn"),
            )
            .where(cond)
            .subquery()
        )
        q = select(ranked.c.meter_id, ranked.c.reading_id, ranked.c.value).where(
            ranked.c.rn == 1
        )
    with engine.connect() as conn:
        return {m: (rid, v) for m, rid, v in conn.execute(q)}


def generate_month_bulk(
    engine: Engine,
    period_start: date,
    *,
    today: date,
    household_ids: Sequence[str] | None = None,
    chunk: int = 5000,
    progress: bool = True,
) -> BulkReport:
    """Generate the bills of the month of ``period_start`` for many households at once.

    Writes exactly what :func:`backend.service_layer.services.generate_bills` would
    (same ids, lines, totals, statuses and journal entries); households the bulk
    path does not handle are delegated to it.

    Args:
        engine: The billing database.
        period_start: Any day of the month to bill.
        today: The date bill statuses are computed against.
        household_ids: Limit the run to these households (default: all).
        chunk: Households written per transaction.
        progress: Show a tqdm bar on stderr.
    """
    started = time.perf_counter()
    report = BulkReport()
    start, end = billing.month_period(period_start.year, period_start.month)
    start_at, end_at = _midnight(start), _midnight(end + timedelta(days=1))
    issued_on, due = end + timedelta(days=1), billing.due_date_for(end)
    uow = UnitOfWork(engine)
    with uow:
        versions = [services.tariff_version(t) for t in uow.repo.tariffs()]
    tariffs = {}
    for utility in UTILITIES:
        try:
            tariffs[utility] = select_tariff(versions, utility, start)
        except LookupError:
            continue

    hh = orm.Household.__table__
    bills = orm.Bill.__table__
    credits = orm.HouseholdCredit.__table__
    meters = orm.Meter.__table__
    with engine.connect() as conn:
        q = select(hh.c.household_id, hh.c.area_m2).order_by(hh.c.household_id)
        households = list(conn.execute(q).all())
        already = set(conn.execute(
            select(bills.c.household_id).where(bills.c.period_start == start).distinct()
        ).scalars())
        with_credit = set(conn.execute(
            select(credits.c.household_id).where(credits.c.amount > 0).distinct()
        ).scalars())
        meter_of = {(h, u): m for m, h, u in conn.execute(
            select(meters.c.meter_id, meters.c.household_id, meters.c.utility))}
    if household_ids is not None:
        wanted = set(household_ids)
        households = [h for h in households if h[0] in wanted]
    first = _boundary(engine, start_at)
    last = _boundary(engine, end_at)

    slow: list[str] = []
    batch: list[tuple[str, Decimal]] = []
    loader = Loader(engine)
    with engine.connect() as conn:
        next_entry = (conn.execute(select(func.max(orm.JournalEntry.entry_id))).scalar() or 0) + 1
    now = datetime.now(UTC)
    cache: dict[tuple[str, Any], tuple[list[Any], Decimal]] = {}

    def priced(utility: str, quantity: Decimal, area: bool) -> tuple[list[Any], Decimal]:
        key = (utility, quantity)
        hit = cache.get(key)
        if hit is None:
            t = tariffs[utility]
            lines = price_area(t, quantity) if area else price_usage(t, quantity)
            hit = cache[key] = (lines, total([ln.amount for ln in lines]))
        return hit

    def flush(rows: list[tuple[str, Decimal]]) -> None:
        nonlocal next_entry
        bill_rows: list[tuple[Any, ...]] = []
        line_rows: list[tuple[Any, ...]] = []
        entry_rows: list[tuple[Any, ...]] = []
        jline_rows: list[tuple[Any, ...]] = []
        for hid, area in rows:
            for utility in UTILITIES:
                if utility not in tariffs:
                    report.skipped += 1
                    continue
                tariff = tariffs[utility]
                if utility == "property_fee":
                    lines, charges = priced(utility, area, True)
                    usage = start_v = end_v = None
                else:
                    meter = meter_of.get((hid, utility))
                    a = first.get(meter) if meter else None
                    b = last.get(meter) if meter else None
                    if a is None or b is None or a[0] == b[0]:
                        report.skipped += 1
                        continue
                    usage, start_v, end_v = b[1] - a[1], a[1], b[1]
                    lines, charges = priced(utility, usage, False)
                bid = services.bill_id_for(hid, utility, start)
                bill_rows.append((
                    bid, hid, utility, start, end, issued_on, due, tariff.tariff_id, usage,
                    tariff.unit, start_v, end_v, charges, Decimal("0.00"),
                    billing.bill_status(charges, Decimal("0.00"), due, today), 1,
                ))
                for pos, ln in enumerate(lines):
                    line_rows.append((bid, pos, ln.kind, ln.description, ln.quantity,
                                      ln.unit_price, ln.amount, ln.tier_from, ln.tier_to))
                entry = ledger.bill_entry(bid, hid, utility, charges)
                if entry.postings:
                    entry_rows.append((next_entry, entry.kind, entry.reference,
                                       entry.household_id, entry.memo, now))
                    for p in entry.postings:
                        jline_rows.append((next_entry, p.account, p.household_id, p.debit,
                                           p.credit))
                    next_entry += 1
        with loader.transaction() as cur:
            loader.write(cur, bills, ("bill_id", "household_id", "utility", "period_start",
                                      "period_end", "issued_on", "due_date", "tariff_id",
                                      "usage", "unit", "start_reading", "end_reading", "total",
                                      "amount_paid", "status", "version"), bill_rows)
            loader.write(cur, orm.BillLine.__table__,
                         ("bill_id", "position", "kind", "description", "quantity",
                          "unit_price", "amount", "tier_from", "tier_to"), line_rows)
            loader.write(cur, orm.JournalEntry.__table__,
                         ("entry_id", "kind", "reference", "household_id", "memo",
                          "posted_at"), entry_rows)
            loader.write(cur, orm.JournalLine.__table__,
                         ("entry_id", "account", "household_id", "debit", "credit"),
                         jline_rows)
        report.bills += len(bill_rows)
        report.lines += len(line_rows)
        report.bulk_households += len(rows)

    bar = tqdm(total=len(households), desc=f"bulk bills {start:%Y-%m}", unit="hh",
               file=sys.stderr, disable=not progress, mininterval=2)
    for hid, area in households:
        metered_ok = all(
            (m := meter_of.get((hid, u))) is None or m in first for u in METERED_UTILITIES
        )
        if hid in already or hid in with_credit or not metered_ok:
            slow.append(hid)
            continue
        batch.append((hid, area))
        if len(batch) >= chunk:
            flush(batch)
            bar.update(len(batch))
            batch = []
    if batch:
        flush(batch)
        bar.update(len(batch))
    if slow:
        services.generate_bills(uow, start, today=today, household_ids=slow,
                                progress=bar.update)
        report.slow_households = len(slow)
    bar.close()
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            conn.exec_driver_sql(
                "SELECT setval(pg_get_serial_sequence('journal_entries', 'entry_id'), "
                "(SELECT max(entry_id) FROM journal_entries))"
            )
    report.seconds = time.perf_counter() - started
    return report
