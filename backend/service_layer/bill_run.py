"""The monthly bill run: every household's bills for a month, set-based.

:func:`~backend.service_layer.bill_generation.generate_household_bills` bills one
household per transaction with a dozen ORM round trips per utility. That is the
right tool for one household, a regenerated bill or a household holding credit,
and far too slow for a community of 100,000 (about 3 hours). The monthly run
here writes the same rows with a few set-based statements per chunk of
households:

1. lock the chunk's households (``SELECT … FOR UPDATE`` on PostgreSQL; SQLite's
   ``BEGIN IMMEDIATE`` already serialises writers), so a payment or a
   regeneration of the same household waits for the chunk instead of
   interleaving with it;
2. inside that transaction, hand to the per-household path every household that
   already has a bill for the month (regeneration), holds credit (credit is
   applied to the new bills), or has a meter without a reading at the period's
   start (installed mid-period);
3. read the other households' boundary readings, the last accepted reading at
   or before the period's start and end of every meter, with one statement
   (index ``ix_meter_readings_meter_taken`` answers each as a probe);
4. price them with the domain's own :func:`~backend.domain.tariffs.price_usage`
   and :func:`~backend.domain.tariffs.price_area` (memoised per usage value) and
   book each bill with :func:`~backend.domain.ledger.bill_entry`;
5. write bills, lines, journal entries (ids reserved from the database's own
   sequence) and journal lines with :func:`backend.adapters.bulk.write_rows`
   (``COPY`` on PostgreSQL, one ``executemany`` on SQLite), and commit.

A chunk that collides with a concurrent run (the unique ``(household, utility,
period)`` constraint) is rolled back whole and redone through the per-household
path, which is idempotent. ``tests/backend/test_bill_run.py`` checks that the
run writes exactly what the per-household path writes.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.exc import IntegrityError

from backend.adapters import orm
from backend.adapters.bulk import reserve_ids, write_rows
from backend.domain import bills as billing
from backend.domain import ledger
from backend.domain.money import ZERO, total
from backend.domain.tariffs import (
    METERED_UTILITIES,
    UTILITIES,
    Line,
    TariffVersion,
    price_area,
    price_usage,
    select_tariff,
)
from backend.gateway.base import PaymentGateway
from backend.service_layer.bill_generation import GenerationReport, generate_household_bills
from backend.service_layer.common import bill_id_for, log, midnight, tariff_version, utcnow
from backend.service_layer.errors import NotFound
from backend.service_layer.payments import run_autopay
from backend.service_layer.unit_of_work import UnitOfWork

#: Households written per transaction: large enough to amortise the round trips,
#: small enough that a payment never waits long for a locked household.
CHUNK = 1000

_HH = orm.Base.metadata.tables["households"]
_BILLS = orm.Base.metadata.tables["bills"]
_LINES = orm.Base.metadata.tables["bill_lines"]
_ENTRIES = orm.Base.metadata.tables["journal_entries"]
_JLINES = orm.Base.metadata.tables["journal_lines"]
_CREDITS = orm.Base.metadata.tables["household_credits"]
_METERS = orm.Base.metadata.tables["meters"]
_READINGS = orm.Base.metadata.tables["meter_readings"]
_AUTOPAY = orm.Base.metadata.tables["autopay_settings"]


@dataclass(frozen=True)
class _Boundary:
    """A meter's last accepted readings at the period's start and end (id, value)."""

    start: tuple[int, Decimal] | None
    end: tuple[int, Decimal] | None


_BILL_COLUMNS = (
    "bill_id", "household_id", "utility", "period_start", "period_end", "issued_on",
    "due_date", "tariff_id", "usage", "unit", "start_reading", "end_reading", "total",
    "amount_paid", "status", "version",
)  # fmt: skip
_LINE_COLUMNS = (
    "bill_id", "position", "kind", "description", "quantity", "unit_price", "amount",
    "tier_from", "tier_to",
)  # fmt: skip


@dataclass
class _Rows:
    """The rows one chunk inserts (in ``_BILL_COLUMNS`` / ``_LINE_COLUMNS`` order)."""

    bills: list[tuple[Any, ...]]
    lines: list[tuple[Any, ...]]
    entries: list[ledger.Entry]


class _Pricer:
    """Prices a utility for a quantity once; many households share a usage value."""

    def __init__(self, tariffs: dict[str, TariffVersion]) -> None:
        self.tariffs = tariffs
        self._cache: dict[tuple[str, Decimal], tuple[list[Line], Decimal]] = {}

    def __call__(self, utility: str, quantity: Decimal) -> tuple[list[Line], Decimal]:
        key = (utility, quantity)
        hit = self._cache.get(key)
        if hit is None:
            tariff = self.tariffs[utility]
            lines = (
                price_area(tariff, quantity)
                if utility == "property_fee"
                else price_usage(tariff, quantity)
            )
            hit = self._cache[key] = (lines, total([ln.amount for ln in lines]))
        return hit


def generate_bills(
    uow: UnitOfWork,
    period_start: date,
    *,
    today: date | None = None,
    household_ids: Iterable[str] | None = None,
    gateway: PaymentGateway | None = None,
    progress: Callable[[int], None] | None = None,
    chunk: int = CHUNK,
    workers: int = 1,
) -> GenerationReport:
    """Generate every household's bills for the month of ``period_start``.

    Idempotent: households already billed for the month go through
    :func:`generate_household_bills`, which leaves unchanged bills alone and
    regenerates changed ones. A crash loses at most the chunk in flight, which
    the next run redoes. With a ``gateway``, households with autopay get their
    new bills paid through :func:`~backend.service_layer.payments.create_payment`.

    Args:
        uow: The unit of work (one transaction per chunk is opened on it).
        period_start: Any day of the month to bill.
        today: The date bill statuses are computed against (default: today, UTC).
        household_ids: Limit the run to these households (default: all).
        gateway: The payment gateway for autopay (default: no autopay).
        progress: Called with the number of households done after each chunk.
        chunk: Households written per transaction.
        workers: Processes billing chunks in parallel (PostgreSQL only: SQLite has
            one writer at a time, so it always runs in this process). Autopay
            runs here, after each chunk a worker committed.
    """
    start = period_start.replace(day=1)
    today = today or utcnow().date()
    report = GenerationReport()
    with uow.reading():
        q = select(_HH.c.household_id).order_by(_HH.c.household_id)
        if household_ids is not None:
            wanted = set(household_ids)
            q = q.where(_HH.c.household_id.in_(wanted))
        ids = list(uow.session.scalars(q))
        versions = [tariff_version(t) for t in uow.repo.tariffs()]
    if household_ids is not None and len(ids) < len(wanted):
        unknown = sorted(wanted - set(ids))
        raise NotFound("unknown_household", f"no household {unknown[0]!r}")
    chunks = [ids[i : i + chunk] for i in range(0, len(ids), chunk)]
    if workers > 1 and uow.dialect == "postgresql" and len(chunks) > 1:
        results = _in_processes(uow, chunks, start, today, versions, workers)
    else:
        job = _ChunkJob(start, today, versions)
        results = ((part, job.run(uow, part)) for part in chunks)
    for part, (done, new_bills) in results:
        report.created += done.created
        report.regenerated += done.regenerated
        report.unchanged += done.unchanged
        report.skipped += done.skipped
        if gateway is not None:
            report.autopaid += _autopay(uow, gateway, new_bills)
        if progress is not None:
            progress(len(part))
    return report


class _ChunkJob:
    """Bills chunks of one month (in this process or in a worker)."""

    def __init__(self, start: date, today: date, versions: list[TariffVersion]) -> None:
        self.start, self.end = billing.month_period(start.year, start.month)
        self.today = today
        self.versions = versions
        self.tariffs = _tariffs_for(versions, self.start)
        self.pricer = _Pricer(self.tariffs)

    def run(
        self, uow: UnitOfWork, ids: Sequence[str]
    ) -> tuple[GenerationReport, dict[str, list[str]]]:
        done = GenerationReport()
        new_bills = _bill_chunk(
            uow,
            ids,
            self.start,
            self.end,
            self.today,
            self.tariffs,
            self.pricer,
            self.versions,
            done,
        )
        return done, new_bills


def _in_processes(
    uow: UnitOfWork,
    chunks: list[list[str]],
    start: date,
    today: date,
    versions: list[TariffVersion],
    workers: int,
) -> Iterator[tuple[list[str], tuple[GenerationReport, dict[str, list[str]]]]]:
    """Run the chunks in ``workers`` processes; yields each chunk's result as it finishes."""
    url = uow.engine.url.render_as_string(hide_password=False)
    context = multiprocessing.get_context("spawn")  # no forked database connections
    with ProcessPoolExecutor(
        workers,
        mp_context=context,
        initializer=_worker_init,
        initargs=(url, start, today, versions),
    ) as pool:
        futures = {pool.submit(_worker_run, part): part for part in chunks}
        for future in as_completed(futures):
            yield futures[future], future.result()


_worker: tuple[UnitOfWork, _ChunkJob] | None = None


def _worker_init(url: str, start: date, today: date, versions: list[TariffVersion]) -> None:
    global _worker
    _worker = (UnitOfWork.from_url(url), _ChunkJob(start, today, versions))


def _worker_run(ids: list[str]) -> tuple[GenerationReport, dict[str, list[str]]]:
    assert _worker is not None, "initialised by the pool"
    uow, job = _worker
    return job.run(uow, ids)


def _tariffs_for(versions: list[TariffVersion], start: date) -> dict[str, TariffVersion]:
    """The tariff of each utility for a period; time-of-use needs per-period registers."""
    tariffs: dict[str, TariffVersion] = {}
    for utility in UTILITIES:
        try:
            tariff = select_tariff(versions, utility, start)
        except LookupError:
            continue
        if tariff.kind == "tou":
            log.warning("tou_needs_registers", utility=utility)
            continue
        tariffs[utility] = tariff
    return tariffs


def _bill_chunk(
    uow: UnitOfWork,
    ids: Sequence[str],
    start: date,
    end: date,
    today: date,
    tariffs: dict[str, TariffVersion],
    pricer: _Pricer,
    versions: list[TariffVersion],
    report: GenerationReport,
) -> dict[str, list[str]]:
    """Bill one chunk of households; returns the new bill ids per household."""
    slow: list[str] = []
    new_bills: dict[str, list[str]] = {}
    done = GenerationReport()  # merged only once the chunk is committed
    try:
        with uow:
            areas = _lock_households(uow, ids)
            busy = _needs_household_path(uow, list(areas), start)
            bounds = _boundaries(uow, [h for h in areas if h not in busy], start, end)
            rows = _Rows([], [], [])
            for hid, area in areas.items():
                meters = {u: bounds.get((hid, u)) for u in METERED_UTILITIES}
                if hid in busy or any(b is not None and b.start is None for b in meters.values()):
                    slow.append(hid)
                    continue
                new_bills[hid] = _price_household(
                    hid, area, meters, start, end, today, tariffs, pricer, rows, done
                )
            _insert(uow, rows)
            uow.commit()
        report.created += done.created
        report.skipped += done.skipped
    except IntegrityError:
        # A concurrent run billed some of these households first: redo the chunk
        # household by household (idempotent), counting nothing twice.
        log.warning("bill_run_chunk_conflict", first=ids[0], households=len(ids))
        slow, new_bills = list(ids), {}
    for hid in slow:
        new_bills[hid] = generate_household_bills(
            uow, hid, start, today=today, tariffs=versions, report=report
        )
    return new_bills


def _lock_households(uow: UnitOfWork, ids: Sequence[str]) -> dict[str, Decimal]:
    """Lock the chunk's households in id order; returns their floor areas."""
    q: Select[Any] = (
        select(_HH.c.household_id, _HH.c.area_m2)
        .where(_HH.c.household_id.in_(ids))
        .order_by(_HH.c.household_id)
    )
    if uow.dialect == "postgresql":
        q = q.with_for_update()
    return {hid: area for hid, area in uow.session.execute(q)}


def _needs_household_path(uow: UnitOfWork, ids: list[str], start: date) -> set[str]:
    """Households already billed for the period or holding credit."""
    billed = select(_BILLS.c.household_id).where(
        _BILLS.c.household_id.in_(ids), _BILLS.c.period_start == start
    )
    credit = select(_CREDITS.c.household_id).where(
        _CREDITS.c.household_id.in_(ids), _CREDITS.c.amount > 0
    )
    return set(uow.session.scalars(billed.union(credit)))


def _boundaries(
    uow: UnitOfWork, ids: list[str], start: date, end: date
) -> dict[tuple[str, str], _Boundary]:
    """(household, utility) -> the meter's readings at the period's start and end."""
    if not ids:
        return {}

    def last_at(when: datetime, column: Any) -> Any:
        return (
            select(column)
            .where(
                _READINGS.c.meter_id == _METERS.c.meter_id,
                _READINGS.c.taken_at <= when,
                _READINGS.c.status == "accepted",
            )
            .order_by(_READINGS.c.taken_at.desc())
            .limit(1)
            .scalar_subquery()
        )

    start_at, end_at = midnight(start), midnight(end + timedelta(days=1))
    q = select(
        _METERS.c.household_id,
        _METERS.c.utility,
        last_at(start_at, _READINGS.c.reading_id),
        last_at(start_at, _READINGS.c.value),
        last_at(end_at, _READINGS.c.reading_id),
        last_at(end_at, _READINGS.c.value),
    ).where(_METERS.c.household_id.in_(ids))
    out = {}
    for hid, utility, a_id, a_value, b_id, b_value in uow.session.execute(q):
        out[(hid, utility)] = _Boundary(
            None if a_id is None else (a_id, _quantity(a_value)),
            None if b_id is None else (b_id, _quantity(b_value)),
        )
    return out


def _quantity(value: Any) -> Decimal:
    # A scalar subquery loses the column's type on some dialects; the stored
    # value is an exact decimal either way, never a float.
    return value if isinstance(value, Decimal) else Decimal(str(value))


def _price_household(
    hid: str,
    area: Decimal,
    meters: dict[str, _Boundary | None],
    start: date,
    end: date,
    today: date,
    tariffs: dict[str, TariffVersion],
    pricer: _Pricer,
    rows: _Rows,
    report: GenerationReport,
) -> list[str]:
    """Add one household's bills to ``rows``; returns their ids."""
    created = []
    due = billing.due_date_for(end)
    for utility in UTILITIES:
        tariff = tariffs.get(utility)
        usage = start_v = end_v = None
        if tariff is None:
            report.skipped += 1
            continue
        if utility == "property_fee":
            lines, charges = pricer(utility, area)
        else:
            b = meters.get(utility)
            if b is None or b.start is None or b.end is None or b.start[0] == b.end[0]:
                report.skipped += 1  # no meter, or no reading during the period yet
                continue
            start_v, end_v = b.start[1], b.end[1]
            usage = end_v - start_v
            lines, charges = pricer(utility, usage)
        bid = bill_id_for(hid, utility, start)
        status = billing.bill_status(charges, ZERO, due, today)
        rows.bills.append(
            (bid, hid, utility, start, end, end + timedelta(days=1), due, tariff.tariff_id,
             usage, tariff.unit, start_v, end_v, charges, ZERO, status, 1)
        )  # fmt: skip
        rows.lines.extend(_line_row(bid, i, ln) for i, ln in enumerate(lines))
        rows.entries.append(ledger.bill_entry(bid, hid, utility, charges))
        created.append(bid)
    report.created += len(created)
    return created


def _line_row(bill_id: str, position: int, line: Line) -> tuple[Any, ...]:
    return (
        bill_id, position, line.kind, line.description, line.quantity, line.unit_price,
        line.amount, line.tier_from, line.tier_to,
    )  # fmt: skip


def _insert(uow: UnitOfWork, rows: _Rows) -> None:
    """Write a chunk's bills, lines and journal entries (``COPY`` / one ``executemany`` each)."""
    if not rows.bills:
        return
    session = uow.session
    write_rows(session, _BILLS, _BILL_COLUMNS, rows.bills)
    write_rows(session, _LINES, _LINE_COLUMNS, rows.lines)
    entries = [e for e in rows.entries if e.postings]
    ids = reserve_ids(session, _ENTRIES, len(entries))
    now = utcnow()
    write_rows(
        session,
        _ENTRIES,
        ("entry_id", "kind", "reference", "household_id", "memo", "posted_at"),
        [
            (entry_id, e.kind, e.reference, e.household_id, e.memo, now)
            for entry_id, e in zip(ids, entries, strict=True)
        ],
    )
    write_rows(
        session,
        _JLINES,
        ("entry_id", "account", "household_id", "debit", "credit"),
        [
            (entry_id, p.account, p.household_id, p.debit, p.credit)
            for entry_id, e in zip(ids, entries, strict=True)
            for p in e.postings
        ],
    )


def _autopay(uow: UnitOfWork, gateway: PaymentGateway, new_bills: dict[str, list[str]]) -> int:
    """Pay the chunk's new bills of households with autopay on."""
    candidates = [hid for hid, bills in new_bills.items() if bills]
    if not candidates:
        return 0
    with uow.reading():
        enabled = set(
            uow.session.scalars(
                select(_AUTOPAY.c.household_id).where(
                    _AUTOPAY.c.household_id.in_(candidates), _AUTOPAY.c.enabled.is_(True)
                )
            )
        )
    return sum(run_autopay(uow, gateway, hid, new_bills[hid]) for hid in sorted(enabled))
