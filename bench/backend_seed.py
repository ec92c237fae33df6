"""Bulk seeder of a large billing database for the benchmarks (not the demo path).

``seed(url, households=100_000, months=24)`` creates the schema through the
billing migrations, then loads a community of ``households`` units with
``months`` months of history:

* buildings of 400 units, one resident per unit, three meters per unit;
* a meter reading on the first of every month, from the first history month up to
  the first of the month *after* the next one, so the next month can be billed
  (the bill-generation benchmark);
* one bill per household, utility and month, with its itemised lines priced by the
  domain's own tariff code (:func:`backend.domain.tariffs.price_usage`), so every
  total is exactly what the service would compute;
* payment state: everything older than two months is paid; of the last two
  months some bills are unpaid, partly paid or paid;
* the ledger as one opening entry per household (Dr receivable for what is owed,
  Dr gateway clearing for what was paid, Cr revenue per utility), as when a
  billing history is migrated from another system. The trial balance balances.

PostgreSQL is loaded with ``COPY``; SQLite with ``executemany`` through the ORM's
Core tables (so the exact-decimal column type scales amounts as the app does).
Rows are generated per chunk of households, with a tqdm bar on stderr.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import Engine, Table, func, select, text
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from backend.adapters import orm
from backend.adapters.bulk import write_with_cursor
from backend.bootstrap import ensure_database
from backend.domain import bills as billing
from backend.domain import ledger
from backend.domain.money import ZERO, total
from backend.domain.tariffs import TariffVersion, Tier, price_area, price_usage, tiers_to_json
from backend.service_layer.services import bill_id_for
from billtalk.db import make_engine

UNITS_PER_BUILDING = 400
METERED = (("electricity", "el", "kWh"), ("water", "wa", "m³"), ("gas", "ga", "m³"))
EFFECTIVE = date(2020, 1, 1)

TARIFFS = {
    "electricity": TariffVersion(
        "electricity",
        "tiered",
        "Residential electricity (tiered)",
        EFFECTIVE,
        "kWh",
        tiers=(
            Tier(Decimal(200), Decimal("0.52")),
            Tier(Decimal(400), Decimal("0.57")),
            Tier(None, Decimal("0.82")),
        ),
    ),
    "water": TariffVersion(
        "water", "flat", "Residential water", EFFECTIVE, "m³", unit_price=Decimal("3.45")
    ),
    "gas": TariffVersion(
        "gas",
        "flat",
        "Residential gas",
        EFFECTIVE,
        "m³",
        unit_price=Decimal("2.61"),
        fixed_monthly=Decimal("5.00"),
    ),
    "property_fee": TariffVersion(
        "property_fee", "area", "Property fee", EFFECTIVE, "m²", unit_price=Decimal("1.80")
    ),
}
# month-of-year shapes (Jan..Dec) and mean monthly use (tenths of a unit)
SHAPES = {
    "electricity": (1.15, 1.00, 0.85, 0.75, 0.85, 1.10, 1.55, 1.60, 1.10, 0.80, 0.85, 1.10),
    "water": (0.90, 0.85, 0.90, 0.95, 1.05, 1.15, 1.20, 1.20, 1.05, 0.95, 0.90, 0.90),
    "gas": (1.90, 1.70, 1.30, 0.90, 0.60, 0.45, 0.40, 0.40, 0.55, 0.85, 1.30, 1.75),
}
MEANS = {"electricity": (1200, 4200), "water": (60, 180), "gas": (150, 600)}


def month_starts(first: date, n: int) -> list[date]:
    """``n`` consecutive first-of-month dates from ``first``."""
    out = []
    for k in range(n):
        y, m = divmod(first.month - 1 + k, 12)
        out.append(date(first.year + y, m + 1, 1))
    return out


def unit_name(i: int) -> tuple[str, str, int]:
    """(building id, unit label, floor) of the ``i``-th household."""
    b, r = divmod(i, UNITS_PER_BUILDING)
    floor, u = divmod(r, 20)
    return f"B{b + 1:03d}", f"B{b + 1:03d}-{floor + 1:02d}{u + 1:02d}", floor + 1


def household_id(i: int) -> str:
    """The id of the ``i``-th seeded household."""
    return f"hh-{unit_name(i)[1]}"


@dataclass
class SeedPlan:
    """What :func:`seed` loads."""

    households: int
    months: int
    today: date
    seed: int = 7
    chunk: int = 500
    history: list[date] = field(default_factory=list)
    readings_at: list[date] = field(default_factory=list)

    def __post_init__(self) -> None:
        last_full = billing.previous_month(self.today.replace(day=1))[0]
        first = month_starts(last_full, 1)[0]
        y, m = divmod(first.month - 1 - (self.months - 1), 12)
        first = date(first.year + y, m + 1, 1)
        self.history = month_starts(first, self.months)
        # readings from the first history month to the start of the month after next
        self.readings_at = month_starts(first, self.months + 2)

    @property
    def next_period(self) -> date:
        """The first month without bills (what the generation benchmark bills)."""
        return self.readings_at[-2]


def _midnight(d: date) -> datetime:
    return datetime(d.year, d.month, d.day, tzinfo=UTC)


class Loader:
    """Writes rows to tables: COPY on PostgreSQL, executemany on SQLite.

    :meth:`load` writes one table in its own transaction (seeding: durability
    relaxed); :meth:`transaction` yields a cursor for several :meth:`write` calls
    that commit together, with normal durability (the bulk bill generator).
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.pg = engine.dialect.name == "postgresql"

    def load(self, table: Table, columns: Sequence[str], rows: list[tuple[Any, ...]]) -> None:
        """Insert ``rows`` (tuples in ``columns`` order) into ``table``, and commit."""
        if not rows:
            return
        with self.transaction(durable=False) as cur:
            self.write(cur, table, columns, rows)

    @contextmanager
    def transaction(self, *, durable: bool = True) -> Iterator[Any]:
        """A raw DB-API cursor inside one transaction, committed on success."""
        raw = self.engine.raw_connection()
        try:
            cur = raw.cursor()
            if self.pg:
                if not durable:
                    cur.execute("SET synchronous_commit = off")
                yield cur
                raw.commit()
            else:
                if not durable:
                    cur.execute("PRAGMA synchronous = OFF")  # bulk load only; re-run if it dies
                cur.execute("BEGIN IMMEDIATE")
                try:
                    yield cur
                except BaseException:
                    cur.execute("ROLLBACK")
                    raise
                cur.execute("COMMIT")
        finally:
            raw.close()

    def write(
        self, cur: Any, table: Table, columns: Sequence[str], rows: list[tuple[Any, ...]]
    ) -> None:
        """Insert ``rows`` with the cursor of :meth:`transaction` (no commit)."""
        write_with_cursor(cur, self.engine.dialect, table, columns, rows)


BULK_TABLES = (
    "households",
    "residents",
    "meters",
    "meter_readings",
    "bills",
    "bill_lines",
    "journal_entries",
    "journal_lines",
)


def _pg_strip(engine: Engine) -> list[str]:
    """Drop constraints and indexes of the bulk tables; return the DDL that restores them.

    Loading into bare tables and building each index once at the end is several
    times faster than maintaining them (and checking foreign keys) row by row.
    """
    tables = ", ".join(f"'{t}'" for t in BULK_TABLES)
    with engine.begin() as conn:
        cons = conn.execute(
            text(
                "SELECT c.conrelid::regclass::text, c.conname, c.contype, "
                "pg_get_constraintdef(c.oid) FROM pg_constraint c "
                f"WHERE (c.conrelid::regclass::text IN ({tables}) AND c.contype IN ('p','u','f')) "
                f"OR (c.contype = 'f' AND c.confrelid::regclass::text IN ({tables}))"
            )
        ).all()
        idx = conn.execute(
            text(
                "SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname='public' "
                f"AND tablename IN ({tables}) AND indexname NOT IN "
                "(SELECT conname FROM pg_constraint)"
            )
        ).all()
        for table, name, _kind, _ in sorted(cons, key=lambda c: c[2] != "f"):  # FKs first
            conn.execute(text(f'ALTER TABLE "{table}" DROP CONSTRAINT "{name}"'))
        for _, name, _ in idx:
            conn.execute(text(f'DROP INDEX "{name}"'))
    order = {"p": 0, "u": 1, "f": 2}
    restore = [
        f'ALTER TABLE "{table}" ADD CONSTRAINT "{name}" {definition}'
        for table, name, kind, definition in sorted(cons, key=lambda c: order[c[2]])
    ]
    return restore + [definition for _, _, definition in idx]


def _pg_restore(engine: Engine, ddl: list[str], progress: bool) -> None:
    with engine.begin() as conn:
        conn.execute(text("SET maintenance_work_mem = '512MB'"))
        for statement in tqdm(ddl, desc="rebuild indexes", file=sys.stderr, disable=not progress):
            conn.execute(text(statement))


def _usage_matrix(
    rng: np.random.Generator, n: int, months: Sequence[date], utility: str
) -> np.ndarray:
    """Monthly usage in tenths of a unit, shape (n, len(months)), int64."""
    low, high = MEANS[utility]
    mean = rng.uniform(low, high, size=(n, 1))
    drift = rng.normal(0.0, 0.06, size=(n, 1))
    amplitude = rng.uniform(0.7, 1.3, size=(n, 1))
    shape = np.array([SHAPES[utility][d.month - 1] for d in months])[None, :]
    k = np.arange(len(months))[None, :]
    season = 1.0 + amplitude * (shape - 1.0)
    level = mean * (1.0 + drift) ** (k / 12.0)
    noise = np.exp(rng.normal(0.0, 0.08, size=(n, len(months))))
    away = np.where(
        rng.random((n, len(months))) < 0.03, rng.uniform(0.2, 0.6, (n, len(months))), 1.0
    )
    return np.maximum(np.rint(level * season * noise * away), 0).astype(np.int64)


def _tenths(v: int) -> Decimal:
    return Decimal(int(v)).scaleb(-1)


_PRICE_CACHE: dict[tuple[str, int], tuple[list[Any], Decimal]] = {}


def priced(utility: str, key: int, quantity: Decimal) -> tuple[list[Any], Decimal]:
    """Bill lines and total for ``quantity`` (cached: many households share a value)."""
    hit = _PRICE_CACHE.get((utility, key))
    if hit is None:
        tariff = TARIFFS[utility]
        lines = (
            price_area(tariff, quantity)
            if utility == "property_fee"
            else price_usage(tariff, quantity)
        )
        hit = (lines, total([ln.amount for ln in lines]))
        _PRICE_CACHE[(utility, key)] = hit
    return hit


def seed(
    url: str,
    *,
    households: int = 100_000,
    months: int = 24,
    today: date | None = None,
    seed_value: int = 7,
    chunk: int = 500,
    progress: bool = True,
) -> SeedPlan:
    """Create the schema at ``url`` and bulk-load the benchmark community.

    Args:
        url: SQLAlchemy URL of an EMPTY database (the schema is migrated here).
        households: How many units.
        months: Months of billed history (ending with last month).
        today: The benchmark's "today" (default: the real date).
        seed_value: Random seed (the same arguments give the same data).
        chunk: Households generated and written per batch.
        progress: Show a tqdm bar on stderr.

    Returns:
        The :class:`SeedPlan` (periods, next month to bill).
    """
    plan = SeedPlan(households, months, today or datetime.now(UTC).date(), seed_value, chunk)
    ensure_database(url)
    engine = make_engine(url)
    loader = Loader(engine)
    now = datetime.now(UTC)
    with engine.begin() as conn:
        if conn.execute(select(func.count()).select_from(orm.Household.__table__)).scalar():
            raise RuntimeError(f"{url} already has households; seed an empty database")
        conn.execute(
            orm.Tariff.__table__.insert(),
            [
                {
                    "utility": t.utility,
                    "kind": t.kind,
                    "name": t.name,
                    "effective_from": t.effective_from,
                    "unit": t.unit,
                    "unit_price": t.unit_price,
                    "fixed_monthly": t.fixed_monthly,
                    "tiers": tiers_to_json(t.tiers) if t.tiers else None,
                    "tou": None,
                }
                for t in TARIFFS.values()
            ],
        )
        tariff_ids = dict(conn.execute(select(orm.Tariff.utility, orm.Tariff.tariff_id)).all())
        next_entry = (conn.execute(select(func.max(orm.JournalEntry.entry_id))).scalar() or 0) + 1
    restore = _pg_strip(engine) if loader.pg else []
    buildings = math.ceil(households / UNITS_PER_BUILDING)
    loader.load(
        orm.Building.__table__,
        ("building_id", "name", "address"),
        [
            (f"B{b + 1:03d}", f"Building {b + 1}", f"{b + 1} Lakeside Road")
            for b in range(buildings)
        ],
    )

    rng = np.random.default_rng(seed_value)
    bar = tqdm(
        total=households, desc="seed households", unit="hh", file=sys.stderr, disable=not progress
    )
    last_two = set(plan.history[-2:])
    for start in range(0, households, chunk):
        n = min(chunk, households - start)
        ids = list(range(start, start + n))
        hh_rows, res_rows, meter_rows, reading_rows = [], [], [], []
        bill_rows: list[tuple[Any, ...]] = []
        line_rows: list[tuple[Any, ...]] = []
        entry_rows: list[tuple[Any, ...]] = []
        jline_rows: list[tuple[Any, ...]] = []
        areas = rng.integers(5500, 14500, size=n)  # hundredths of m²
        usage = {u: _usage_matrix(rng, n, plan.readings_at[:-1], u) for u, _, _ in METERED}
        starts = {u: rng.integers(10_000, 500_000, size=n) for u, _, _ in METERED}
        pay_draw = rng.random((n, 2))
        for j, i in enumerate(ids):
            building, unit, floor = unit_name(i)
            hid = f"hh-{unit}"
            area = Decimal(int(areas[j])).scaleb(-2)
            hh_rows.append((hid, building, unit, floor, area, None, None, None, now))
            res_rows.append(
                (f"r-{unit}-1", hid, f"Resident {unit}", "zh" if i % 3 else "en", None, True)
            )
            revenue: dict[str, Decimal] = {}
            owed = ZERO
            paid_total = ZERO
            meter_values: dict[str, list[int]] = {}
            for utility, code, unit_label in METERED:
                meter_id = f"m-{unit}-{code}"
                meter_rows.append(
                    (
                        meter_id,
                        hid,
                        utility,
                        unit_label,
                        f"SN{i:07d}{code}",
                        _midnight(plan.readings_at[0]),
                    )
                )
                cumulative = int(starts[utility][j])
                values = [cumulative]
                for v in usage[utility][j]:
                    cumulative += int(v)
                    values.append(cumulative)
                meter_values[utility] = values
                for d, v in zip(plan.readings_at, values, strict=True):
                    reading_rows.append(
                        (
                            meter_id,
                            _tenths(v),
                            _midnight(d),
                            "smart_meter",
                            "accepted",
                            "",
                            _midnight(d),
                        )
                    )
            for k, period in enumerate(plan.history):
                p_start, p_end = billing.month_period(period.year, period.month)
                for utility in ("electricity", "water", "gas", "property_fee"):
                    tariff = TARIFFS[utility]
                    if utility == "property_fee":
                        lines, bill_total = priced(utility, int(areas[j]), area)
                        used = start_val = end_val = None
                    else:
                        raw_use = int(usage[utility][j][k])
                        used = _tenths(raw_use)
                        start_val = _tenths(meter_values[utility][k])
                        end_val = _tenths(meter_values[utility][k + 1])
                        lines, bill_total = priced(utility, raw_use, used)
                    if period in last_two:
                        draw = pay_draw[j][plan.history[-2:].index(period)]
                        recent = period == plan.history[-1]
                        if draw < (0.25 if recent else 0.05):
                            amount_paid = ZERO
                        elif recent and draw < 0.40:
                            amount_paid = (bill_total / 2).quantize(Decimal("0.01"))
                        else:
                            amount_paid = bill_total
                    else:
                        amount_paid = bill_total
                    due = billing.due_date_for(p_end)
                    bid = bill_id_for(hid, utility, p_start)
                    bill_rows.append(
                        (
                            bid,
                            hid,
                            utility,
                            p_start,
                            p_end,
                            p_end + timedelta(days=1),
                            due,
                            tariff_ids[utility],
                            used,
                            tariff.unit,
                            start_val,
                            end_val,
                            bill_total,
                            amount_paid,
                            billing.bill_status(bill_total, amount_paid, due, plan.today),
                            1,
                        )
                    )
                    for pos, ln in enumerate(lines):
                        line_rows.append(
                            (
                                bid,
                                pos,
                                ln.kind,
                                ln.description,
                                ln.quantity,
                                ln.unit_price,
                                ln.amount,
                                ln.tier_from,
                                ln.tier_to,
                            )
                        )
                    revenue[utility] = revenue.get(utility, ZERO) + bill_total
                    owed += bill_total - amount_paid
                    paid_total += amount_paid
            entry_id = next_entry + i
            entry_rows.append(
                (entry_id, "opening", f"opening/{hid}", hid, "Migrated billing history", now)
            )
            postings = [
                ledger.Posting(ledger.RECEIVABLE, debit=owed, household_id=hid),
                ledger.Posting(ledger.GATEWAY_CLEARING, debit=paid_total),
                *[ledger.Posting(ledger.revenue(u), credit=a) for u, a in revenue.items()],
            ]
            entry = ledger.make_entry("opening", f"opening/{hid}", postings, household_id=hid)
            for p in entry.postings:
                jline_rows.append((entry_id, p.account, p.household_id, p.debit, p.credit))
        loader.load(
            orm.Household.__table__,
            (
                "household_id",
                "building_id",
                "unit",
                "floor",
                "area_m2",
                "saved_method",
                "saved_method_label",
                "saved_method_token",
                "created_at",
            ),
            hh_rows,
        )
        loader.load(
            orm.Resident.__table__,
            ("resident_id", "household_id", "name", "language", "phone", "is_primary"),
            res_rows,
        )
        loader.load(
            orm.Meter.__table__,
            ("meter_id", "household_id", "utility", "unit", "serial", "installed_at"),
            meter_rows,
        )
        loader.load(
            orm.MeterReading.__table__,
            ("meter_id", "value", "taken_at", "source", "status", "note", "created_at"),
            reading_rows,
        )
        loader.load(
            orm.Bill.__table__,
            (
                "bill_id",
                "household_id",
                "utility",
                "period_start",
                "period_end",
                "issued_on",
                "due_date",
                "tariff_id",
                "usage",
                "unit",
                "start_reading",
                "end_reading",
                "total",
                "amount_paid",
                "status",
                "version",
            ),
            bill_rows,
        )
        loader.load(
            orm.BillLine.__table__,
            (
                "bill_id",
                "position",
                "kind",
                "description",
                "quantity",
                "unit_price",
                "amount",
                "tier_from",
                "tier_to",
            ),
            line_rows,
        )
        loader.load(
            orm.JournalEntry.__table__,
            ("entry_id", "kind", "reference", "household_id", "memo", "posted_at"),
            entry_rows,
        )
        loader.load(
            orm.JournalLine.__table__,
            ("entry_id", "account", "household_id", "debit", "credit"),
            jline_rows,
        )
        bar.update(n)
    bar.close()
    if loader.pg:
        _pg_restore(engine, restore, progress)
    with engine.begin() as conn:
        if loader.pg:
            conn.execute(
                text(
                    "SELECT setval(pg_get_serial_sequence('journal_entries', 'entry_id'), "
                    "(SELECT max(entry_id) FROM journal_entries))"
                )
            )
            conn.execute(text("ANALYZE"))
        else:
            conn.execute(text("ANALYZE"))
    engine.dispose()
    return plan


def iter_household_ids(n: int) -> Iterator[str]:
    """The ids of the first ``n`` seeded households."""
    for i in range(n):
        yield household_id(i)
