"""Pure domain rules: money, tariffs, readings, allocation, ledger, payments, reminders."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from backend.domain import allocation as alloc
from backend.domain import ledger
from backend.domain import payments as pay
from backend.domain.bills import bill_status, due_date_for, month_period, parse_period
from backend.domain.money import InvalidAmount, fmt, parse_amount, quantize, round_line
from backend.domain.readings import PriorReading, ReadingBackwards, validate_reading
from backend.domain.reminders import LateFeePolicy, notice_due
from backend.domain.tariffs import TariffVersion, Tier, price_area, price_usage, select_tariff

D = Decimal

# --- money ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("12", "12.00"), ("12.3", "12.30"), ("12.34", "12.34"), (D("0.01"), "0.01"), (7, "7.00")],
)
def test_parse_amount_accepts_plain_decimals(raw: object, expected: str) -> None:
    assert fmt(parse_amount(raw)) == expected


@pytest.mark.parametrize(
    "raw",
    [
        12.34,
        True,
        "-1.00",
        "0",
        "0.00",
        "NaN",
        "Infinity",
        "1e3",
        "1E3",
        "12.345",
        " 12",
        "1,000",
        "+5",
        "",
        "abc",
        D("NaN"),
        D("-1"),
        "99999999999.00",
        None,
        [],
        "١٢",
    ],
)
def test_parse_amount_rejects_bad_input(raw: object) -> None:
    with pytest.raises(InvalidAmount):
        parse_amount(raw)


@given(st.floats(allow_nan=True, allow_infinity=True))
def test_no_float_is_ever_accepted(value: float) -> None:
    with pytest.raises(InvalidAmount):
        parse_amount(value)


@pytest.mark.parametrize(
    ("exact", "rounded"),
    [
        ("0.125", "0.13"),
        ("0.124", "0.12"),
        ("2.675", "2.68"),
        ("1.005", "1.01"),
        ("0.0049", "0.00"),
    ],
)
def test_round_line_is_half_up(exact: str, rounded: str) -> None:
    assert round_line(D(exact)) == D(rounded)


def test_quantize_refuses_a_hidden_second_rounding() -> None:
    with pytest.raises(ValueError):
        quantize(D("1.005"))
    with pytest.raises(TypeError):
        round_line(0.5)  # type: ignore[arg-type]


# --- tariffs -------------------------------------------------------------------------

TIERED = TariffVersion(
    utility="electricity",
    kind="tiered",
    name="t",
    effective_from=date(2000, 1, 1),
    unit="kWh",
    tiers=(Tier(D(200), D("0.52")), Tier(D(400), D("0.57")), Tier(None, D("0.82"))),
)


@pytest.mark.parametrize(
    ("usage", "amounts"),
    [
        ("0", ["0.00"]),
        ("150", ["78.00"]),
        ("200", ["104.00"]),
        ("450", ["104.00", "114.00", "41.00"]),
        ("200.5", ["104.00", "0.29"]),  # 0.5 × 0.57 = 0.285 -> 0.29, rounded once per line
    ],
)
def test_tiered_blocks(usage: str, amounts: list[str]) -> None:
    lines = price_usage(TIERED, D(usage))
    assert [str(ln.amount) for ln in lines] == amounts
    assert all(ln.kind == "tier" for ln in lines)
    assert sum(ln.quantity or 0 for ln in lines) == D(usage)


def test_each_line_rounds_once_not_the_total() -> None:
    flat = TariffVersion(
        utility="water",
        kind="flat",
        name="w",
        effective_from=date(2000, 1, 1),
        unit="m³",
        unit_price=D("0.005"),
        fixed_monthly=D("0.005"),
    )
    lines = price_usage(flat, D(1))
    # 1 × 0.005 -> 0.01 and the fixed 0.005 -> 0.01: 0.02, not round(0.010) = 0.01
    assert [ln.amount for ln in lines] == [D("0.01"), D("0.01")]


def test_flat_tou_area_and_fixed() -> None:
    gas = TariffVersion(
        utility="gas",
        kind="flat",
        name="g",
        effective_from=date(2000, 1, 1),
        unit="m³",
        unit_price=D("2.98"),
        fixed_monthly=D("5.00"),
    )
    assert [ln.amount for ln in price_usage(gas, D(20))] == [D("59.60"), D("5.00")]
    tou = TariffVersion(
        utility="electricity",
        kind="tou",
        name="tou",
        effective_from=date(2000, 1, 1),
        unit="kWh",
        tou_prices={"peak": D("0.62"), "valley": D("0.31")},
    )
    lines = price_usage(tou, D(300), tou_split={"peak": D(100), "valley": D(200)})
    assert [ln.amount for ln in lines] == [D("62.00"), D("62.00")]
    with pytest.raises(ValueError):
        price_usage(tou, D(300), tou_split={"peak": D(100)})
    fee = TariffVersion(
        utility="property_fee",
        kind="area",
        name="p",
        effective_from=date(2000, 1, 1),
        unit="m²",
        unit_price=D("2.50"),
    )
    assert price_area(fee, D("88.40"))[0].amount == D("221.00")


def test_tariff_versions_by_effective_date() -> None:
    old = TariffVersion(
        utility="water",
        kind="flat",
        name="old",
        effective_from=date(2020, 1, 1),
        unit="m³",
        unit_price=D("3.85"),
    )
    new = TariffVersion(
        utility="water",
        kind="flat",
        name="new",
        effective_from=date(2026, 1, 1),
        unit="m³",
        unit_price=D("4.10"),
    )
    assert select_tariff([new, old], "water", date(2025, 12, 1)).name == "old"
    assert select_tariff([new, old], "water", date(2026, 1, 1)).name == "new"
    with pytest.raises(LookupError):
        select_tariff([new, old], "water", date(2019, 1, 1))
    with pytest.raises(ValueError):
        TariffVersion(
            utility="x",
            kind="tiered",
            name="bad",
            effective_from=date(2000, 1, 1),
            unit="kWh",
            tiers=(Tier(D(200), D(1)),),
        )


# --- readings ------------------------------------------------------------------------

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def test_reading_never_goes_backwards() -> None:
    with pytest.raises(ReadingBackwards):
        validate_reading(D(99), T0 + timedelta(days=30), PriorReading(D(100), T0), None, [])
    with pytest.raises(ReadingBackwards):
        validate_reading(
            D(300),
            T0 + timedelta(days=10),
            PriorReading(D(100), T0),
            PriorReading(D(200), T0 + timedelta(days=30)),
            [],
        )


def test_duplicate_reading_is_idempotent() -> None:
    v = validate_reading(D(100), T0, PriorReading(D(100), T0), None, [])
    assert v.status == "duplicate"
    v = validate_reading(D(100), T0 + timedelta(days=1), PriorReading(D(100), T0), None, [])
    assert v.status == "duplicate"


def test_implausible_jump_is_flagged() -> None:
    history = [D(300), D(320), D(280), D(310)]
    ok = validate_reading(
        D(1400), T0 + timedelta(days=30), PriorReading(D(1000), T0), None, history
    )
    assert ok.status == "accepted"
    flagged = validate_reading(
        D(3000), T0 + timedelta(days=30), PriorReading(D(1000), T0), None, history
    )
    assert flagged.status == "flagged"
    assert flagged.suggested_value is not None and flagged.suggested_value < D(3000)
    # no history yet: nothing to compare with
    assert (
        validate_reading(
            D(9000), T0 + timedelta(days=30), PriorReading(D(1000), T0), None, []
        ).status
        == "accepted"
    )


# --- bills ---------------------------------------------------------------------------


def test_bill_status_and_calendar() -> None:
    due = date(2026, 3, 16)
    assert bill_status(D(100), D(0), due, date(2026, 3, 1)) == "open"
    assert bill_status(D(100), D(40), due, date(2026, 3, 1)) == "partially_paid"
    assert bill_status(D(100), D(40), due, date(2026, 3, 17)) == "overdue"
    assert bill_status(D(100), D(100), due, date(2027, 1, 1)) == "paid"
    assert month_period(2024, 2) == (date(2024, 2, 1), date(2024, 2, 29))
    assert due_date_for(date(2026, 2, 28)) == date(2026, 3, 16)
    assert parse_period("2026-02") == (date(2026, 2, 1), date(2026, 2, 28))
    with pytest.raises(ValueError):
        parse_period("2026-13")


# --- allocation ----------------------------------------------------------------------


def _bill(bid: str, utility: str, month: int, due: str) -> alloc.OpenBill:
    return alloc.OpenBill(bid, utility, date(2026, month, 1), date(2026, month, 28), D(due))


BILLS = [
    _bill("w2", "water", 2, "30.00"),
    _bill("e1", "electricity", 1, "100.00"),
    _bill("e2", "electricity", 2, "120.00"),
    _bill("w1", "water", 1, "25.00"),
]


def test_allocation_pays_the_chosen_utility_oldest_first() -> None:
    plan = alloc.allocate(D("150.00"), BILLS, "electricity")
    assert [(a.bill_id, a.amount) for a in plan.allocations] == [("e1", D(100)), ("e2", D(50))]
    assert plan.overpayment == 0


def test_allocation_without_utility_is_oldest_overall() -> None:
    plan = alloc.allocate(D("130.00"), BILLS, None)
    assert [a.bill_id for a in plan.allocations] == ["e1", "w1", "e2"]
    assert [a.amount for a in plan.allocations] == [D(100), D(25), D(5)]


def test_overpayment_becomes_credit_up_to_the_limit() -> None:
    plan = alloc.allocate(D("80.00"), BILLS, "water")
    assert plan.overpayment == D("25.00") and plan.credit_bucket == "water"
    with pytest.raises(alloc.OverpaymentLimit):
        alloc.allocate(D("2056.00"), BILLS, "water")
    with pytest.raises(alloc.OverpaymentLimit):
        alloc.allocate(D("100.00"), [], "gas", existing_credit=D("1950.00"))
    assert alloc.allocate(D("50.00"), [], "gas", existing_credit=D("1950.00")).overpayment == D(50)


@given(
    amount=st.decimals(min_value="0.01", max_value="5000", places=2),
    dues=st.lists(st.decimals(min_value="0.01", max_value="900", places=2), max_size=6),
    credit=st.decimals(min_value="0", max_value="2100", places=2),
    utility=st.sampled_from([None, "electricity", "water"]),
)
def test_the_credit_limit_alone_agrees_with_allocate(
    amount: Decimal, dues: list[Decimal], credit: Decimal, utility: str | None
) -> None:
    """``check_credit_limit`` (one SUM in the database) refuses exactly what ``allocate`` does."""
    utilities = ["electricity", "water", "gas"]
    bills = [_bill(f"b{i}", utilities[i % 3], 1 + i % 12, f"{d}") for i, d in enumerate(dues)]
    eligible_due = sum((b.amount_due for b in bills if utility in (None, b.utility)), D(0))
    try:
        plan = alloc.allocate(amount, bills, utility, credit)
    except alloc.OverpaymentLimit as exc:
        with pytest.raises(alloc.OverpaymentLimit) as alone:
            alloc.check_credit_limit(amount, eligible_due, utility, credit)
        assert str(alone.value) == str(exc)
    else:
        assert alloc.check_credit_limit(amount, eligible_due, utility, credit) == plan.overpayment


# --- ledger --------------------------------------------------------------------------


def test_entries_must_balance() -> None:
    with pytest.raises(ledger.UnbalancedEntry):
        ledger.make_entry(
            "x", "r", [ledger.Posting("a", debit=D(1)), ledger.Posting("b", credit=D(2))]
        )
    e = ledger.bill_entry("b1", "h", "water", D("38.50"))
    assert e.amount == D("38.50")
    neg = ledger.bill_entry("b1/v2", "h", "water", D("-3.00"))
    assert {(p.account, p.debit, p.credit) for p in neg.postings} == {
        ("receivable", 0, D(3)),
        ("revenue:water", D(3), 0),
    }
    p = ledger.payment_entry("p", "h", D("90.00"), D("10.00"))
    assert p.amount == D("100.00")
    r = ledger.reversal_entry("refund", "p", "h", D("90.00"), D("10.00"))
    assert r.amount == D("100.00")
    tb = ledger.trial_balance([("a", D(5), D(0)), ("b", D(0), D(5))])
    assert tb.balanced


# --- payments ------------------------------------------------------------------------


def test_payment_state_machine() -> None:
    assert pay.transition("pending", "succeeded") == "succeeded"
    assert pay.transition("pending", "failed") == "failed"
    assert pay.transition("succeeded", "reversed") == "reversed"
    for bad in [
        ("failed", "succeeded"),
        ("reversed", "succeeded"),
        ("succeeded", "pending"),
        ("pending", "reversed"),
        ("failed", "reversed"),
    ]:
        with pytest.raises(pay.InvalidTransition):
            pay.transition(*bad)
    pay.check_refund("succeeded", D(5), D(0), D(10))
    with pytest.raises(pay.InvalidTransition):
        pay.check_refund("succeeded", D(6), D(5), D(10))
    with pytest.raises(pay.InvalidTransition):
        pay.check_refund("failed", D(1), D(0), D(10))


# --- reminders -----------------------------------------------------------------------


def test_reminder_schedule() -> None:
    due = date(2026, 3, 16)
    assert notice_due(due, date(2026, 3, 12), set()) is None
    assert notice_due(due, date(2026, 3, 13), set()) == "due_soon"
    assert notice_due(due, date(2026, 3, 13), {"due_soon"}) is None
    assert notice_due(due, date(2026, 3, 16), {"due_soon"}) == "due_today"
    assert notice_due(due, date(2026, 3, 23), {"due_soon", "due_today"}) == "overdue_7"
    assert notice_due(due, date(2026, 4, 15), {"overdue_7"}) == "overdue_30"
    # a late run sends only the latest notice, never an earlier one afterwards
    assert notice_due(due, date(2026, 4, 20), set()) == "overdue_30"
    assert notice_due(due, date(2026, 4, 20), {"overdue_30"}) is None


def test_late_fee_policy() -> None:
    off = LateFeePolicy()
    assert off.fee(D(100), date(2026, 1, 1), date(2026, 6, 1)) == 0
    on = LateFeePolicy(enabled=True, rate_per_day=D("0.001"), grace_days=7, cap_ratio=D("0.05"))
    assert on.fee(D(100), date(2026, 1, 1), date(2026, 1, 8)) == 0
    assert on.fee(D(100), date(2026, 1, 1), date(2026, 1, 18)) == D("1.00")
    assert on.fee(D(100), date(2026, 1, 1), date(2026, 12, 1)) == D("5.00")
    assert "No late fees" in off.description
