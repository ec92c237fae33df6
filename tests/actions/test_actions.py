"""Unit tests of the actions against the fake billing client."""

from __future__ import annotations

from decimal import Decimal

import pytest

from actions.check_balance import check_balance
from actions.due_date import due_date
from actions.explain_bill import explain_bill
from actions.human_handoff import human_handoff
from actions.manage_autopay import manage_autopay, wanted_state
from actions.pay_bill import execute_payment
from actions.payment_history import payment_history
from actions.report_problem import report_problem
from actions.request_receipt import request_receipt
from actions.small_talk import help_, out_of_scope
from actions.submit_meter_reading import submit_meter_reading
from actions.usage import trend_key, usage
from backend.schemas import BillLine


async def test_balance_lists_each_bill_and_calls_out_overdue(make_ctx, render) -> None:
    text = render(await check_balance(make_ctx()))
    assert "¥192.79 in total" in text
    assert "electricity: ¥153.02, was due 16 Nov 2026 (OVERDUE)" in text
    assert "2 bill(s) totalling ¥192.79 are overdue" in text


async def test_balance_for_one_utility_in_chinese(make_ctx, render) -> None:
    result = await check_balance(make_ctx("zh", utility="water"))
    text = render(result, "zh")
    assert "水费待缴39.77元" in text
    assert result.slots["context_utility"] == "water"


async def test_due_dates_include_the_late_fee_policy(make_ctx, render) -> None:
    text = render(await due_date(make_ctx()))
    assert "4 days overdue" in text
    assert "0.05% of the unpaid amount per day" in text and "15 days" in text


async def test_explain_bill_comes_from_the_bill_lines(make_ctx, render) -> None:
    text = render(await explain_bill(make_ctx(utility="electricity")))
    assert "first 200 kWh at ¥0.52/kWh = ¥104.00" in text
    assert "next 86 kWh at ¥0.57/kWh = ¥49.02" in text
    assert (
        "You used 286 kWh, 36 kWh (14%) more than the period before (250 kWh) and "
        "16 kWh (6%) more than the same period last year (270 kWh)." in text
    )


async def test_explain_says_what_changed_tier_tariff_period(client, make_ctx, render) -> None:
    from tests.actions.fakes import bill

    # September: 30 days, all in the first tier, at an older price of 0.50/kWh.
    client.bills.append(
        bill("b-el-09", "electricity", 9, "100.00", paid="100.00", usage="200", unit="kWh")
    )
    client.lines["b-el-09"] = [
        BillLine(
            kind="tier",
            description="Tier 1",
            quantity=Decimal("200"),
            unit_price=Decimal("0.50"),
            amount=Decimal("100.00"),
            tier_from=Decimal("0"),
            tier_to=Decimal("200"),
        ),
    ]
    text = render(await explain_bill(make_ctx(utility="electricity")))
    assert "That's ¥53.02 more than the last bill (¥100.00)." in text
    assert "- you used 36 kWh (14%) more than last period" in text
    assert "- part of your usage went above 200 kWh, into the higher price of ¥0.57/kWh" in text
    assert "- the price changed from ¥0.50/kWh to ¥0.52/kWh" in text
    assert "- this bill covers 31 days, against 30 days last time" in text
    zh = render(await explain_bill(make_ctx("zh", utility="electricity")), "zh")
    assert "比上期账单（100.00元）多53.02元" in zh and "0.57元/kWh" in zh


async def test_explain_a_bill_that_is_not_high_says_so_kindly(client, make_ctx, render) -> None:
    from tests.actions.fakes import bill

    client.bills.append(
        bill("b-el-09", "electricity", 9, "180.00", paid="180.00", usage="300", unit="kWh")
    )
    text = render(await explain_bill(make_ctx(utility="electricity")))
    assert "Good news: this bill isn't higher than the last one" in text
    assert "¥26.98 less than the last bill (¥180.00)" in text
    assert "What changed" not in text


async def test_a_flat_tariff_is_not_shown_as_tiers(client, make_ctx, render) -> None:
    client.lines["b-wa-10"] = [
        BillLine(
            kind="tier",
            description="Water",
            quantity=Decimal("12"),
            unit_price=Decimal("3.3142"),
            amount=Decimal("39.77"),
            tier_from=Decimal("0"),
            tier_to=None,
        ),
    ]
    text = render(await explain_bill(make_ctx(utility="water")))
    assert "- 12 m³ at ¥3.3142/m³ = ¥39.77" in text
    assert "first" not in text


async def test_overdue_note_follows_the_late_fee_policy(client, make_ctx, render) -> None:
    text = render(await check_balance(make_ctx()))
    assert "paying them soon avoids more late fees" in text  # the fake's policy: fees on
    policy = await client.late_fee_policy()
    off = policy.model_copy(update={"enabled": False})

    async def no_fees() -> object:
        return off

    client.late_fee_policy = no_fees
    text = render(await check_balance(make_ctx()))
    assert "late fee" in text and "avoids more late fees" not in text
    assert "There is no late fee" in text


async def test_usage_has_trend_and_forecast(make_ctx, render) -> None:
    text = render(await usage(make_ctx(utility="electricity")))
    assert "736 kWh in total" in text
    assert "up 43%" in text
    assert "about 300 kWh, roughly ¥161.00" in text


def test_trend_thresholds() -> None:
    assert trend_key(Decimal(100), Decimal(103))[0] == "trend_flat"
    assert trend_key(Decimal(100), Decimal(80)) == ("trend_down", Decimal(20))
    assert trend_key(Decimal(0), Decimal(80))[0] == "trend_flat"


async def test_payment_outcomes_are_explained_without_codes(client, make_ctx, render) -> None:
    pending = {"amount": "39.77", "utility": "water", "method": "card"}
    ok = await execute_payment(make_ctx(), pending, "k1")
    assert "Paid: ¥39.77 for water by card. Receipt number R-1." in render(ok)
    client.outcome, client.failure_code = "failed", "card_declined"
    declined = render(await execute_payment(make_ctx(), pending, "k2"))
    assert "declined" in declined and "card_declined" not in declined
    client.outcome, client.failure_code = "pending", "timeout"
    pending_text = render(await execute_payment(make_ctx(), pending, "k3"))
    assert "I'll tell you when it completes" in pending_text and "timeout" not in pending_text
    client.down = True
    down = render(await execute_payment(make_ctx(), pending, "k4"))
    assert "couldn't reach the billing system" in down


async def test_the_same_idempotency_key_pays_once(client, make_ctx) -> None:
    pending = {"amount": "10.00", "utility": "water", "method": "card"}
    first = await execute_payment(make_ctx(), pending, "same")
    second = await execute_payment(make_ctx(), pending, "same")
    assert first.payment_ids == second.payment_ids
    assert len(client.payments) == 1


async def test_history_and_receipt(client, make_ctx, render) -> None:
    assert "no payments" in render(await payment_history(make_ctx()))
    await execute_payment(
        make_ctx(), {"amount": "10.00", "utility": "water", "method": "card"}, "k"
    )
    assert "¥10.00 for water by card, succeeded (receipt R-1)" in render(
        await payment_history(make_ctx())
    )
    with_pdf = await request_receipt(make_ctx())
    assert with_pdf.replies[0].attachments[0].data.startswith(b"%PDF")
    ctx = make_ctx()
    ctx.supports_files = False
    text_only = await request_receipt(ctx)
    assert not text_only.replies[0].attachments
    assert "Receipt R-1" in render(text_only)


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("12345", "recorded 12,345"),
        ("500", "don't go backwards"),
        ("250000", "Did you mean 25,000"),
    ],
)
async def test_meter_readings(make_ctx, render, value, fragment) -> None:
    result = await submit_meter_reading(make_ctx(utility="electricity", meter_reading=value))
    assert fragment in render(result)


async def test_meter_reading_asks_for_the_missing_parts(make_ctx, render) -> None:
    assert "Which meter" in render(await submit_meter_reading(make_ctx()))
    result = await submit_meter_reading(make_ctx(meter_reading="12345"))
    assert len(result.replies[0].buttons) == 3


async def test_autopay_on_off_and_status(client, make_ctx, render) -> None:
    on = await manage_autopay(make_ctx(text="turn on autopay for water", utility="water"))
    assert "Autopay is on for water" in render(on)
    assert client.autopay["water"].enabled
    off = await manage_autopay(make_ctx(text="stop autopay for water", utility="water"))
    assert "Autopay is off for water" in render(off)
    status = await manage_autopay(make_ctx(text="autopay"))
    assert "water: off" in render(status) and status.replies[0].buttons


def test_autopay_wording(make_ctx) -> None:
    assert wanted_state(make_ctx(text="关闭水费自动缴费")) is False
    assert wanted_state(make_ctx(text="开通自动缴费")) is True
    assert wanted_state(make_ctx(text="autopay please?")) is None


async def test_report_and_handoff_flag_the_conversation(make_ctx) -> None:
    assert (await report_problem(make_ctx())).flag == "problem_report"
    handoff = await human_handoff(make_ctx())
    assert handoff.handoff and handoff.flag == "handoff"


async def test_help_and_out_of_scope_offer_buttons(make_ctx, render) -> None:
    assert "take a payment" in render(await help_(make_ctx()))
    result = await out_of_scope(make_ctx())
    assert "not something I can help with" in render(result)
    assert result.replies[0].buttons


async def test_actions_only_ask_about_the_residents_household(client, make_ctx) -> None:
    await check_balance(make_ctx(utility="water"))
    await due_date(make_ctx())
    await usage(make_ctx())
    assert set(client.calls) == {"hh-1"}
