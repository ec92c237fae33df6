"""Service-layer use cases against real SQLite and PostgreSQL databases."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import event, func, select

from backend.adapters import orm
from backend.gateway import SandboxGateway
from backend.service_layer import services
from backend.service_layer.errors import Conflict, Invalid, NotFound, TooManyAttempts
from backend.service_layer.unit_of_work import UnitOfWork
from backend.settings import BillingSettings
from tests.backend.conftest import TODAY, Community

D = Decimal
FEB = date(2026, 2, 1)


def _ledger_ok(uow: UnitOfWork) -> None:
    tb = services.trial_balance(uow)
    assert tb.balanced and tb.debits == tb.credits
    check = services.ledger_check(uow)
    assert check["consistent"], check["mismatches"]


def test_bills_are_itemised_and_generation_is_idempotent(community: Community) -> None:
    uow = community.uow
    bal = services.balance(uow, community.h1, today=TODAY)
    # 3 months × (259.00 + 38.50 + 64.60 + 221.00)
    assert bal.by_utility == {
        "electricity": D("777.00"),
        "water": D("115.50"),
        "gas": D("193.80"),
        "property_fee": D("663.00"),
    }
    assert bal.total_due == D("1749.30")
    bill = services.get_bill(uow, services.bill_id_for(community.h1, "electricity", FEB))
    assert [(ln.kind, ln.amount) for ln in bill.lines] == [
        ("tier", D("104.00")),
        ("tier", D("114.00")),
        ("tier", D("41.00")),
    ]
    assert bill.usage == D("450.000") and bill.previous_usage == D("450.000")
    assert bill.due_date == date(2026, 3, 16) and bill.status == "overdue"
    with uow:
        n_bills = uow.session.scalar(select(func.count()).select_from(orm.Bill))
        n_entries = uow.session.scalar(select(func.count()).select_from(orm.JournalEntry))
    again = services.generate_household_bills(uow, community.h1, FEB, today=TODAY)
    assert again == []
    with uow:
        assert uow.session.scalar(select(func.count()).select_from(orm.Bill)) == n_bills
        assert uow.session.scalar(select(func.count()).select_from(orm.JournalEntry)) == n_entries
    _ledger_ok(uow)


def test_regeneration_books_the_difference_and_keeps_payments(
    community: Community, gateway: SandboxGateway
) -> None:
    uow = community.uow
    bid = services.bill_id_for(community.h1, "water", FEB)
    services.create_payment(
        uow, gateway, community.h1, D("115.50"), "card", "k-water", utility="water"
    )
    # a corrected end-of-February reading: 5 m³ less water
    with uow:
        r = uow.session.scalars(
            select(orm.MeterReading)
            .where(orm.MeterReading.meter_id == f"m-{community.h1}-water")
            .order_by(orm.MeterReading.taken_at.desc())
        ).first()
        assert r is not None
        r.value -= 5
        uow.commit()
    assert services.generate_household_bills(uow, community.h1, FEB, today=TODAY) == [bid]
    bill = services.get_bill(uow, bid)
    assert bill.total == D("19.25") and bill.amount_paid == D("19.25") and bill.status == "paid"
    bal = services.balance(uow, community.h1, today=TODAY)
    assert bal.credits == {"water": D("19.25")}  # paid beyond the new total -> credit
    _ledger_ok(uow)


def test_payment_allocates_issues_receipt_and_balances(
    community: Community, gateway: SandboxGateway
) -> None:
    uow = community.uow
    resp, replayed = services.create_payment(
        uow, gateway, community.h1, D("300.00"), "card", "k1", utility="electricity"
    )
    assert not replayed and resp["status"] == "succeeded"
    assert resp["receipt_no"].startswith(f"R{datetime.now(UTC).year}-")
    assert [(a["period_start"], a["amount"]) for a in resp["allocations"]] == [
        ("2025-12-01", "259.00"),
        ("2026-01-01", "41.00"),
    ]
    bal = services.balance(uow, community.h1, today=TODAY)
    assert bal.by_utility["electricity"] == D("477.00")
    receipt = services.get_receipt(uow, resp["payment_id"])
    assert receipt.amount == D("300.00") and receipt.unit == "A-0101"
    _ledger_ok(uow)


def test_a_payment_takes_few_statements_and_the_receipt_counter_last(
    community: Community, gateway: SandboxGateway
) -> None:
    """The payment path's statement budget (round trips are most of its cost), and
    the lock order: the year's receipt counter is bumped after every other write,
    followed only by the payment's own row (its receipt number)."""
    uow = community.uow
    # the year's first receipt creates the counter row (two statements more, once)
    services.create_payment(uow, gateway, community.h1, D("1.00"), "card", "k-first")
    statements: list[str] = []

    def count(_conn: object, _cur: object, stmt: str, *_args: object) -> None:
        statements.append(" ".join(stmt.split()[:3]).upper())

    event.listen(uow.engine, "before_cursor_execute", count)
    try:
        resp, _ = services.create_payment(
            uow, gateway, community.h1, D("100.00"), "card", "k-budget", utility="electricity"
        )
    finally:
        event.remove(uow.engine, "before_cursor_execute", count)
    assert resp["status"] == "succeeded" and len(resp["allocations"]) == 1
    work = [s for s in statements if not s.startswith(("BEGIN", "COMMIT", "ROLLBACK"))]
    # 22 before the payment path was tuned; 14 on PostgreSQL, 15 on SQLite (one
    # INSERT per journal line there). Trust and safety adds 6: the risk features
    # (the household's payments; recent failed step-ups and link codes in one
    # statement) and two audit entries (last entry + insert; on PostgreSQL one
    # advisory lock each).
    budget = 15 + 6 + (2 if uow.dialect == "postgresql" else 0)
    assert len(work) <= budget, "\n".join(work)
    counter = max(i for i, s in enumerate(work) if "RECEIPT_COUNTERS" in s)
    assert work[counter].startswith("UPDATE RECEIPT_COUNTERS")
    # after the counter: the payment's own row, then the audit entry (its lock is
    # always the last one a transaction takes)
    after = [s.split()[1] for s in work[counter + 1 :] if "PG_ADVISORY" not in s]
    assert after == ["PAYMENTS", "AUDIT_LOG.SEQ,", "INTO"], after
    _ledger_ok(uow)


def test_idempotency_replay_and_conflict(community: Community, gateway: SandboxGateway) -> None:
    uow = community.uow
    first, _ = services.create_payment(uow, gateway, community.h1, D("10.00"), "card", "same")
    again, replayed = services.create_payment(
        uow, gateway, community.h1, D("10.00"), "card", "same"
    )
    assert replayed and again == first
    with pytest.raises(Conflict) as err:
        services.create_payment(uow, gateway, community.h1, D("11.00"), "card", "same")
    assert err.value.code == "idempotency_key_reused"
    with pytest.raises(Conflict):
        services.create_payment(uow, gateway, community.h2, D("10.00"), "card", "same")
    with uow:
        assert uow.session.scalar(select(func.count()).select_from(orm.Payment)) == 1
    assert services.balance(uow, community.h1, today=TODAY).total_due == D("1739.30")


def test_declined_payment_moves_nothing(community: Community, gateway: SandboxGateway) -> None:
    uow = community.uow
    before = services.trial_balance(uow)
    resp, _ = services.create_payment(
        uow, gateway, community.h1, D("50.00"), "card", "d1", payment_token="tok_insufficient"
    )
    assert resp["status"] == "failed" and resp["failure_code"] == "insufficient_funds"
    assert resp["receipt_no"] is None
    assert services.trial_balance(uow).debits == before.debits
    assert services.balance(uow, community.h1, today=TODAY).total_due == D("1749.30")


def test_timeout_stays_pending_until_reconciled(
    community: Community, gateway: SandboxGateway
) -> None:
    uow = community.uow
    resp, _ = services.create_payment(
        uow, gateway, community.h1, D("50.00"), "card", "t1", payment_token="tok_timeout"
    )
    assert resp["status"] == "pending" and resp["receipt_no"] is None
    assert services.balance(uow, community.h1, today=TODAY).total_due == D("1749.30")
    counts = services.reconcile_pending(uow, gateway)
    assert counts == {"checked": 1, "succeeded": 1, "failed": 0, "pending": 0}
    p = services.get_payment(uow, resp["payment_id"])
    assert p.status == "succeeded" and p.receipt_no
    assert services.balance(uow, community.h1, today=TODAY).total_due == D("1699.30")
    assert services.reconcile_pending(uow, gateway)["checked"] == 0
    _ledger_ok(uow)


def test_crash_between_record_and_charge_is_recovered(
    community: Community, gateway: SandboxGateway
) -> None:
    """A pending payment with no gateway reference (process killed) is charged once on reconcile."""
    uow = community.uow

    class Killed(Exception):
        pass

    class DyingGateway(SandboxGateway):
        def charge(self, **kwargs):  # type: ignore[no-untyped-def]
            raise Killed

    with pytest.raises(Killed):
        services.create_payment(
            uow, DyingGateway(b"x" * 32), community.h1, D("20.00"), "card", "c1"
        )
    with uow:
        p = uow.session.scalars(select(orm.Payment)).one()
        assert p.status == "pending" and p.gateway_reference is None
    assert services.reconcile_pending(uow, gateway)["succeeded"] == 1
    # the client retries with the same key: it gets the settled payment, no second charge
    again, replayed = services.create_payment(uow, gateway, community.h1, D("20.00"), "card", "c1")
    assert replayed and again["status"] == "succeeded"
    assert services.balance(uow, community.h1, today=TODAY).total_due == D("1729.30")
    _ledger_ok(uow)


def test_overpayment_credit_and_limit(community: Community, gateway: SandboxGateway) -> None:
    uow = community.uow
    resp, _ = services.create_payment(
        uow, gateway, community.h1, D("215.50"), "card", "o1", utility="water"
    )
    assert resp["credited"] == "100.00"
    bal = services.balance(uow, community.h1, today=TODAY)
    assert "water" not in bal.by_utility and bal.credits == {"water": D("100.00")}
    with pytest.raises(Invalid) as err:
        services.create_payment(
            uow, gateway, community.h1, D("1900.01"), "card", "o2", utility="water"
        )
    assert err.value.code == "overpayment_limit"
    with pytest.raises(Invalid):
        services.preview_payment(uow, community.h1, D("1900.01"), utility="water")
    _ledger_ok(uow)


def test_credit_is_applied_to_the_next_bill(
    db_url: str, uow: UnitOfWork, gateway: SandboxGateway
) -> None:
    from tests.backend.conftest import build_community

    build_community(uow, months=(date(2026, 1, 1),))
    services.create_payment(uow, gateway, "hh-A0101", D("50.00"), "card", "pre", utility="water")
    # January water (38.50) was paid and 11.50 is credit; February's bill uses it
    with uow:
        for utility, value in (("electricity", "2000"), ("water", "125"), ("gas", "90")):
            uow.session.add(
                orm.MeterReading(
                    meter_id=f"m-hh-A0101-{utility}",
                    value=D(value),
                    taken_at=datetime(2026, 3, 1, tzinfo=UTC),
                    source="smart_meter",
                    status="accepted",
                    created_at=datetime(2026, 3, 1, tzinfo=UTC),
                )
            )
        uow.commit()
    services.generate_household_bills(uow, "hh-A0101", FEB, today=TODAY)
    bill = services.get_bill(uow, services.bill_id_for("hh-A0101", "water", FEB))
    assert bill.total == D("57.75") and bill.amount_paid == D("11.50")
    assert services.balance(uow, "hh-A0101", today=TODAY).credits == {}
    _ledger_ok(uow)


def test_refund_and_reversal(community: Community, gateway: SandboxGateway) -> None:
    uow = community.uow
    resp, _ = services.create_payment(
        uow, gateway, community.h1, D("300.00"), "card", "r1", utility="electricity"
    )
    pid = resp["payment_id"]
    p = services.refund_payment(uow, gateway, pid, D("41.00"))
    assert p.refunded == D("41.00") and p.status == "succeeded"
    assert services.balance(uow, community.h1, today=TODAY).by_utility["electricity"] == D("518.00")
    with pytest.raises(Conflict):
        services.refund_payment(uow, gateway, pid, D("260.00"))
    p = services.refund_payment(uow, gateway, pid, reverse=True, reason="chargeback")
    assert p.status == "reversed" and p.refunded == D("300.00")
    assert services.balance(uow, community.h1, today=TODAY).by_utility["electricity"] == D("777.00")
    with pytest.raises(Conflict):
        services.refund_payment(uow, gateway, pid, reverse=True)
    with pytest.raises(NotFound):
        services.refund_payment(uow, gateway, "pay_nope", D("1.00"))
    _ledger_ok(uow)


def test_receipt_numbers_are_gap_free(community: Community, gateway: SandboxGateway) -> None:
    uow = community.uow
    numbers = []
    for k, token in enumerate(["tok_visa", "tok_decline", "tok_visa", "tok_timeout", "tok_visa"]):
        resp, _ = services.create_payment(
            uow, gateway, community.h1, D("1.00"), "card", f"g{k}", payment_token=token
        )
        if resp["receipt_no"]:
            numbers.append(int(resp["receipt_no"].split("-")[1]))
    assert numbers == [1, 2, 3]
    services.reconcile_pending(uow, gateway)
    with uow:
        last = uow.session.scalars(
            select(orm.Payment.receipt_no).where(orm.Payment.idempotency_key == "g3")
        ).one()
    assert last is not None and last.endswith("-000004")


def test_readings_validation(community: Community) -> None:
    uow = community.uow
    now = datetime.now(UTC)
    ok = services.record_reading(uow, community.h1, "electricity", D("2800"), taken_at=now)
    assert ok.status == "accepted" and ok.reading_id
    dup = services.record_reading(uow, community.h1, "electricity", D("2800"), taken_at=now)
    assert dup.status == "duplicate" and dup.reading_id == ok.reading_id
    with pytest.raises(Invalid) as err:
        services.record_reading(uow, community.h1, "electricity", D("2000"))
    assert err.value.code == "reading_backwards"
    flagged = services.record_reading(
        uow, community.h1, "electricity", D("90000"), taken_at=now + timedelta(seconds=1)
    )
    assert flagged.status == "flagged" and flagged.suggested_value is not None
    with pytest.raises(NotFound):
        services.record_reading(uow, "hh-nope", "electricity", D("1"))
    with uow:  # a unit without a gas meter
        uow.session.add(
            orm.Household(
                household_id="hh-A0102",
                building_id="A",
                unit="A-0102",
                area_m2=D("50.00"),
                created_at=now,
            )
        )
        uow.commit()
    with pytest.raises(NotFound) as missing:
        services.record_reading(uow, "hh-A0102", "gas", D("1"))
    assert missing.value.code == "unknown_meter"
    with pytest.raises(Invalid):
        services.record_reading(uow, community.h1, "property_fee", D("1"))
    with pytest.raises(Invalid):
        services.record_reading(
            uow, community.h1, "gas", D("200"), taken_at=now + timedelta(days=2)
        )
    staff_view = services.flagged_readings(uow)
    assert [r["reading_id"] for r in staff_view] == [flagged.reading_id]
    assert services.review_reading(uow, flagged.reading_id or 0, approve=False).status == "rejected"


def test_reminders_outbox_and_late_fees(community: Community) -> None:
    uow = community.uow
    counts = services.run_reminders(uow, today=date(2026, 3, 13))
    assert counts["notices"] == 24  # 4 utilities × 2 households × 3 months
    notices = services.pending_notices(uow, limit=100)
    by_kind = {
        k: sum(n.kind == k for n in notices) for k in ("due_soon", "overdue_7", "overdue_30")
    }
    # Feb bills due 03-16: due soon; Jan (due 02-16): 25 days late; Dec (due 01-16): final notice
    assert by_kind == {"due_soon": 8, "overdue_7": 8, "overdue_30": 8}
    assert services.run_reminders(uow, today=date(2026, 3, 13))["notices"] == 0
    n, fresh = services.mark_notice_delivered(uow, notices[0].notice_id, "telegram")
    assert fresh and n.status == "delivered"
    _, fresh = services.mark_notice_delivered(uow, notices[0].notice_id, "telegram")
    assert not fresh
    policy_on = BillingSettings(
        late_fee_enabled=True, late_fee_rate_per_day=D("0.001"), late_fee_grace_days=7
    )
    counts = services.run_reminders(uow, today=date(2026, 4, 15), settings=policy_on)
    assert counts["late_fees"] == 24
    bill = services.get_bill(uow, services.bill_id_for(community.h1, "electricity", FEB))
    fee = [ln for ln in bill.lines if ln.kind == "late_fee"]
    assert len(fee) == 1 and fee[0].amount == D("5.96")  # 259 × 0.001 × (30 - 7 days)
    assert {n.kind for n in services.pending_notices(uow, limit=100)} >= {"overdue_30"}
    _ledger_ok(uow)


def test_link_codes_are_one_time_expiring_and_attempt_limited(community: Community) -> None:
    uow = community.uow
    code = services.create_link_code(uow, community.r1).code
    res = services.redeem_link_code(uow, code, "telegram", "111")
    assert res.household_id == community.h1
    assert services.resolve_link(uow, "telegram", "111").resident_id == community.r1
    with pytest.raises(Conflict):
        services.redeem_link_code(uow, code, "telegram", "222")
    old = services.create_link_code(uow, community.r2, ttl=timedelta(seconds=-1)).code
    with pytest.raises(Invalid) as err:
        services.redeem_link_code(uow, old, "telegram", "333")
    assert err.value.code == "link_code_expired"
    for _ in range(4):
        with pytest.raises(Invalid):
            services.redeem_link_code(uow, "000000x", "telegram", "333")
    good = services.create_link_code(uow, community.r2).code
    with pytest.raises(TooManyAttempts):
        services.redeem_link_code(uow, good, "telegram", "333")


def test_autopay_pays_new_bills(db_url: str, uow: UnitOfWork, gateway: SandboxGateway) -> None:
    from tests.backend.conftest import build_community

    build_community(uow, months=(date(2026, 1, 1),))
    services.set_autopay(uow, "hh-A0101", "electricity", True)
    report = services.generate_bills(uow, date(2026, 1, 1), today=TODAY, gateway=gateway)
    assert report.unchanged == 8 and report.autopaid == 0  # no new bill, nothing paid
    with uow:
        for utility, value in (("electricity", "1900"), ("water", "120"), ("gas", "90")):
            uow.session.add(
                orm.MeterReading(
                    meter_id=f"m-hh-A0101-{utility}",
                    value=D(value),
                    taken_at=datetime(2026, 3, 1, tzinfo=UTC),
                    source="smart_meter",
                    status="accepted",
                    created_at=datetime(2026, 3, 1, tzinfo=UTC),
                )
            )
        uow.commit()
    report = services.generate_bills(uow, FEB, today=TODAY, gateway=gateway)
    assert report.autopaid == 1
    # the autopayment (259.00, the new bill's amount) goes oldest-first: January is paid
    jan = services.get_bill(uow, services.bill_id_for("hh-A0101", "electricity", date(2026, 1, 1)))
    assert jan.status == "paid"
    bal = services.balance(uow, "hh-A0101", today=TODAY)
    assert bal.by_utility["electricity"] == D("259.00")
    pays = services.list_payments(uow, "hh-A0101")
    assert [(p.amount, p.utility, p.status) for p in pays] == [
        (D("259.00"), "electricity", "succeeded")
    ]
    # H2 has no March reading yet: no February bill
    assert services.balance(uow, "hh-B0101", today=TODAY).by_utility["electricity"] == D("259.00")
    _ledger_ok(uow)


def test_reports(community: Community, gateway: SandboxGateway) -> None:
    uow = community.uow
    services.create_payment(uow, gateway, community.h2, D("100.00"), "card", "rep")
    rows = services.report_usage_revenue(uow)
    feb_el_a = next(
        r
        for r in rows
        if r["month"] == "2026-02" and r["building_id"] == "A" and r["utility"] == "electricity"
    )
    assert feb_el_a["revenue"] == "259.00" and feb_el_a["usage"] == "450.000"
    arrears = services.report_arrears(uow, today=TODAY)
    assert {h["household_id"] for h in arrears["households"]} == {community.h1, community.h2}
    assert arrears["totals"]["61-90"] != "0.00"  # December bills are 64+ days past due
    forecasts = services.report_forecasts(uow)
    assert forecasts and all(D(f["amount_estimate"]) > 0 for f in forecasts)
