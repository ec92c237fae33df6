"""Real concurrent connections (threads) against SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select

from backend.adapters import orm
from backend.gateway import SandboxGateway
from backend.service_layer import services
from backend.service_layer.unit_of_work import UnitOfWork
from billtalk.db import make_engine
from tests.backend.conftest import TODAY, Community

D = Decimal


class CountingGateway(SandboxGateway):
    """The sandbox, counting distinct charges (by gateway idempotency key)."""

    def __init__(self) -> None:
        super().__init__(b"k" * 32)
        self.keys: list[str] = []
        self._lock = threading.Lock()

    def charge(self, **kwargs: Any):  # type: ignore[no-untyped-def]
        with self._lock:
            self.keys.append(kwargs["idempotency_key"])
        return super().charge(**kwargs)


def _run_threads(n: int, target: Callable[[int], Any]) -> list[Any]:
    barrier = threading.Barrier(n)
    results: list[Any] = [None] * n

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = target(i)
        except Exception as exc:  # collected and asserted on below
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    return results


def _fresh_uow(url: str) -> UnitOfWork:
    """Each thread gets its own engine and connection: real concurrency, not a shared session."""
    return UnitOfWork(make_engine(url))


def test_same_payment_confirmed_concurrently_charges_once(community: Community) -> None:
    gateway = CountingGateway()

    def confirm(_: int) -> dict[str, Any]:
        uow = _fresh_uow(community.url)
        try:
            resp, _ = services.create_payment(
                uow,
                gateway,
                community.h1,
                D("100.00"),
                "card",
                "tap-tap-tap",
                utility="electricity",
            )
            return resp
        finally:
            uow.engine.dispose()

    results = _run_threads(6, confirm)
    assert not [r for r in results if isinstance(r, Exception)], results
    assert len({r["payment_id"] for r in results}) == 1
    assert all(r["status"] == "succeeded" for r in results)
    assert len({r["receipt_no"] for r in results}) == 1
    assert len(set(gateway.keys)) == 1  # one gateway charge key (the gateway is idempotent on it)
    with community.uow as uow:
        assert uow.session.scalar(select(func.count()).select_from(orm.Payment)) == 1
        assert (
            uow.session.scalar(
                select(func.count())
                .select_from(orm.JournalEntry)
                .where(orm.JournalEntry.kind == "payment")
            )
            == 1
        )
    bal = services.balance(community.uow, community.h1, today=TODAY)
    assert bal.by_utility["electricity"] == D("677.00")


def test_concurrent_different_payments_never_over_allocate(community: Community) -> None:
    gateway = CountingGateway()

    def pay(i: int) -> dict[str, Any]:
        uow = _fresh_uow(community.url)
        try:
            resp, _ = services.create_payment(
                uow, gateway, community.h1, D("50.00"), "card", f"k-{i}", utility="water"
            )
            return resp
        finally:
            uow.engine.dispose()

    results = _run_threads(5, pay)  # 250.00 against 115.50 of water bills
    assert not [r for r in results if isinstance(r, Exception)], results
    assert all(r["status"] == "succeeded" for r in results)
    with community.uow as uow:
        bills = uow.session.scalars(
            select(orm.Bill).where(
                orm.Bill.household_id == community.h1, orm.Bill.utility == "water"
            )
        ).all()
        assert all(b.amount_paid == b.total for b in bills)
        credit = uow.session.get(orm.HouseholdCredit, (community.h1, "water"))
        assert credit is not None and credit.amount == D("134.50")
        numbers = sorted(int(r["receipt_no"].split("-")[1]) for r in results)
        assert numbers == list(range(numbers[0], numbers[0] + 5))  # gap-free under concurrency
    assert services.ledger_check(community.uow)["consistent"]
    assert services.trial_balance(community.uow).balanced


def test_paying_while_a_bill_is_regenerated(community: Community) -> None:
    """A payment and a regeneration of the same bill, at once, leave both consistent."""
    gateway = CountingGateway()
    feb = date(2026, 2, 1)
    with community.uow as uow:
        r = uow.session.scalars(
            select(orm.MeterReading)
            .where(orm.MeterReading.meter_id == f"m-{community.h1}-electricity")
            .order_by(orm.MeterReading.taken_at.desc())
        ).first()
        assert r is not None
        r.value += 100  # Feb electricity: 550 kWh instead of 450 -> 341.00 instead of 259.00
        uow.commit()

    def work(i: int) -> Any:
        uow = _fresh_uow(community.url)
        try:
            if i % 2 == 0:
                return services.generate_household_bills(uow, community.h1, feb, today=TODAY)
            return services.create_payment(
                uow, gateway, community.h1, D("777.00"), "card", f"reg-{i}", utility="electricity"
            )[0]
        finally:
            uow.engine.dispose()

    results = _run_threads(4, work)
    assert not [r for r in results if isinstance(r, Exception)], results
    bill = services.get_bill(community.uow, services.bill_id_for(community.h1, "electricity", feb))
    assert bill.total == D("341.00")
    assert bill.total == sum((ln.amount for ln in bill.lines), D(0))
    bal = services.balance(community.uow, community.h1, today=TODAY)
    # 3 × electricity = 259 + 259 + 341 = 859; two payments of 777 = 1554 -> 695 credit
    assert "electricity" not in bal.by_utility
    assert bal.credits == {"electricity": D("695.00")}
    assert services.ledger_check(community.uow)["consistent"]
    assert services.trial_balance(community.uow).balanced


def test_reads_do_not_queue_behind_a_writer(community: Community) -> None:
    """Read-only use cases start a deferred transaction on SQLite (``BEGIN``, not
    ``BEGIN IMMEDIATE``), so a balance is answered while another connection holds
    the write lock; a second writer still waits for it."""
    engine = make_engine(community.url)
    uow = UnitOfWork(engine)
    writer = engine.connect()
    writer.begin()
    writer.execute(select(func.count()).select_from(orm.Household)).scalar()  # holds the lock
    second: threading.Thread | None = None
    try:
        done: list[Any] = []

        def read() -> None:
            try:
                done.append(services.balance(uow, community.h1, today=TODAY))
            except BaseException as exc:  # reported by the assertion below
                done.append(exc)

        reader = threading.Thread(target=read)
        reader.start()
        reader.join(timeout=20)
        assert done and not isinstance(done[0], BaseException), done
        assert done[0].total_due > 0
        if uow.dialect == "sqlite":
            wrote: list[Any] = []
            second = threading.Thread(
                target=lambda: wrote.append(
                    services.set_autopay(UnitOfWork(engine), community.h1, "water", False)
                )
            )
            second.start()
            second.join(timeout=1.5)
            assert second.is_alive() and not wrote  # waits for the write lock
    finally:
        writer.rollback()
        writer.close()
        if second is not None:
            second.join(timeout=20)
            assert not second.is_alive()
        engine.dispose()
