"""The set-based monthly bill run writes what the per-household path writes (both databases)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import delete, select

from backend.adapters import orm
from backend.service_layer import services
from backend.service_layer.errors import NotFound
from backend.service_layer.unit_of_work import UnitOfWork
from tests.backend.conftest import TODAY, Community, build_community
from tests.backend.test_concurrency import _fresh_uow, _run_threads

FEB = date(2026, 2, 1)
MAR = date(2026, 3, 1)
D = Decimal


def _snapshot(uow: UnitOfWork, period: date) -> dict[str, list[tuple[Any, ...]]]:
    """The month's bills, lines and journal postings, without generated ids or timestamps."""
    suffix = f"-{period:%Y%m}"
    with uow.reading():
        s = uow.session
        bills = sorted(
            tuple(r)
            for r in s.execute(select(orm.Bill.__table__).where(orm.Bill.period_start == period))
        )
        lines = sorted(
            tuple(r)[1:]  # without line_id
            for r in s.execute(
                select(orm.BillLine.__table__).where(orm.BillLine.bill_id.like(f"%{suffix}"))
            )
        )
        journal = sorted(
            tuple(r)
            for r in s.execute(
                select(
                    orm.JournalEntry.kind,
                    orm.JournalEntry.reference,
                    orm.JournalEntry.household_id,
                    orm.JournalLine.account,
                    orm.JournalLine.household_id,
                    orm.JournalLine.debit,
                    orm.JournalLine.credit,
                )
                .join(orm.JournalLine, orm.JournalLine.entry_id == orm.JournalEntry.entry_id)
                .where(orm.JournalEntry.reference.like(f"%{suffix}%"))
            )
        )
    return {"bills": bills, "lines": lines, "journal": journal}


def _forget_month(uow: UnitOfWork, period: date) -> None:
    """Delete a month's bills and their journal entries (to bill it again another way)."""
    suffix = f"-{period:%Y%m}"
    with uow:
        s = uow.session
        entries = select(orm.JournalEntry.entry_id).where(
            orm.JournalEntry.reference.like(f"%{suffix}%")
        )
        s.execute(delete(orm.JournalLine).where(orm.JournalLine.entry_id.in_(entries)))
        s.execute(delete(orm.JournalEntry).where(orm.JournalEntry.reference.like(f"%{suffix}%")))
        s.execute(delete(orm.BillLine).where(orm.BillLine.bill_id.like(f"%{suffix}")))
        s.execute(delete(orm.Bill).where(orm.Bill.period_start == period))
        uow.commit()


def _add_readings(uow: UnitOfWork, household_id: str, when: date, **values: str) -> None:
    with uow:
        for utility, value in values.items():
            uow.session.add(
                orm.MeterReading(
                    meter_id=f"m-{household_id}-{utility}",
                    value=D(value),
                    taken_at=datetime(when.year, when.month, when.day, tzinfo=UTC),
                    source="smart_meter",
                    status="accepted",
                    created_at=datetime(when.year, when.month, when.day, tzinfo=UTC),
                )
            )
        uow.commit()


def test_the_run_writes_exactly_what_the_household_path_writes(community: Community) -> None:
    uow = community.uow
    expected = _snapshot(uow, FEB)  # the fixture billed February household by household
    assert len(expected["bills"]) == 8
    _forget_month(uow, FEB)

    report = services.generate_bills(uow, FEB, today=TODAY, chunk=1)
    assert (report.created, report.regenerated, report.unchanged) == (8, 0, 0)
    assert _snapshot(uow, FEB) == expected
    assert services.trial_balance(uow).balanced
    assert services.ledger_check(uow)["consistent"]


def test_worker_processes_write_the_same(community: Community) -> None:
    """``workers=2`` bills chunks in two processes on PostgreSQL (SQLite: in-process)."""
    uow = community.uow
    expected = _snapshot(uow, FEB)
    _forget_month(uow, FEB)
    done: list[int] = []
    report = services.generate_bills(
        uow, FEB, today=TODAY, chunk=1, workers=2, progress=done.append
    )
    assert (report.created, report.unchanged) == (8, 0) and done == [1, 1]
    assert _snapshot(uow, FEB) == expected
    again = services.generate_bills(uow, FEB, today=TODAY, chunk=1, workers=2)
    assert (again.created, again.unchanged) == (0, 8)
    assert services.trial_balance(uow).balanced


def test_a_second_run_changes_nothing(community: Community) -> None:
    report = services.generate_bills(community.uow, FEB, today=TODAY)
    assert (report.created, report.regenerated, report.unchanged) == (0, 0, 8)


def test_a_household_holding_credit_gets_it_applied(
    community: Community,
) -> None:
    uow = community.uow
    _forget_month(uow, FEB)
    with uow:
        uow.session.add(
            orm.HouseholdCredit(household_id=community.h1, utility="water", amount=D("10.00"))
        )
        uow.commit()
    report = services.generate_bills(uow, FEB, today=TODAY)
    assert report.created == 8
    water = services.get_bill(uow, services.bill_id_for(community.h1, "water", FEB))
    assert (water.total, water.amount_paid, water.status) == (D("38.50"), D("10.00"), "overdue")
    with uow.reading():
        credit = uow.session.get(orm.HouseholdCredit, (community.h1, "water"))
        assert credit is not None and credit.amount == D("0.00")
    assert services.trial_balance(uow).balanced


def test_meters_without_a_reading_in_the_period_are_skipped(community: Community) -> None:
    uow = community.uow
    # March: only H1's electricity has a reading on April 1st.
    _add_readings(uow, community.h1, date(2026, 4, 1), electricity="3050")
    report = services.generate_bills(uow, MAR, today=TODAY)
    created = _snapshot(uow, MAR)["bills"]
    assert {(b[1], b[2]) for b in created} == {
        (community.h1, "electricity"),
        (community.h1, "property_fee"),
        (community.h2, "property_fee"),
    }
    assert report.created == 3 and report.skipped == 5
    elec = services.get_bill(uow, services.bill_id_for(community.h1, "electricity", MAR))
    # 700 kWh: 200 × 0.52 + 200 × 0.57 + 300 × 0.82 = 104 + 114 + 246
    assert elec.usage == D("700") and elec.total == D("464.00")
    assert [ln.amount for ln in elec.lines] == [D("104.00"), D("114.00"), D("246.00")]


def test_a_meter_installed_mid_period_is_billed_from_its_first_reading(
    community: Community,
) -> None:
    uow = community.uow
    with uow:
        s = uow.session
        s.execute(
            delete(orm.MeterReading).where(orm.MeterReading.meter_id == f"m-{community.h2}-gas")
        )
        s.add(
            orm.MeterReading(
                meter_id=f"m-{community.h2}-gas",
                value=D("40"),
                taken_at=datetime(2026, 3, 10, tzinfo=UTC),
                source="meter_reader",
                status="accepted",
                created_at=datetime(2026, 3, 10, tzinfo=UTC),
            )
        )
        uow.commit()
    _add_readings(uow, community.h2, date(2026, 4, 1), gas="50")
    services.generate_bills(uow, MAR, today=TODAY)
    gas = services.get_bill(uow, services.bill_id_for(community.h2, "gas", MAR))
    assert gas.usage == D("10") and gas.total == D("34.80")  # 10 × 2.98 + 5.00 fixed


def test_a_chunk_that_collides_is_redone_household_by_household(
    community: Community, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If bills appear that the chunk did not expect (a writer outside the locking
    rule), the unique constraint stops the chunk, which is rolled back whole and
    redone through the idempotent per-household path."""
    from backend.service_layer import bill_run

    expected = _snapshot(community.uow, FEB)
    monkeypatch.setattr(bill_run, "_needs_household_path", lambda uow, ids, start: set())
    report = services.generate_bills(community.uow, FEB, today=TODAY)
    assert (report.created, report.unchanged) == (0, 8)
    assert _snapshot(community.uow, FEB) == expected
    assert services.trial_balance(community.uow).balanced


def test_floats_never_reach_a_money_column(community: Community) -> None:
    from backend.adapters.bulk import write_rows

    with community.uow as uow, pytest.raises(TypeError, match="never float"):
        write_rows(
            uow.session,
            orm.Base.metadata.tables["household_credits"],
            ("household_id", "utility", "amount"),
            [(community.h1, "gas", D("1.00")), (community.h2, "gas", 1.0)],
        )


def test_unknown_households_are_refused(community: Community) -> None:
    with pytest.raises(NotFound):
        services.generate_bills(community.uow, FEB, today=TODAY, household_ids=["hh-nope"])


def test_concurrent_runs_bill_each_household_once(db_url: str, uow: UnitOfWork) -> None:
    build_community(uow, months=(date(2026, 1, 1),))
    _add_readings(uow, "hh-A0101", MAR, electricity="1900", water="120", gas="90")
    _add_readings(uow, "hh-B0101", MAR, electricity="1800", water="115", gas="80")

    def run(i: int) -> Any:
        worker = _fresh_uow(db_url)
        try:
            return services.generate_bills(worker, FEB, today=TODAY, chunk=1)
        finally:
            worker.engine.dispose()

    reports = _run_threads(3, run)
    assert not [r for r in reports if isinstance(r, Exception)], reports
    assert sum(r.created for r in reports) == 8
    assert len(_snapshot(uow, FEB)["bills"]) == 8
    with uow.reading():
        entries = uow.session.scalars(
            select(orm.JournalEntry.reference).where(orm.JournalEntry.reference.like("%-202602"))
        ).all()
    assert len(entries) == len(set(entries)) == 8  # one bill entry per bill, never two
    assert services.trial_balance(uow).balanced
