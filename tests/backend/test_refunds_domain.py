"""backend/domain/refunds.py: where a refund's money comes from."""

from __future__ import annotations

from datetime import date
from decimal import Decimal as D

import pytest

from backend.domain.refunds import RefundExceedsRefundable, plan_refund

BILLS = {"b-sep": (date(2026, 9, 1), D("40.00")), "b-oct": (date(2026, 10, 1), D("60.00"))}


def test_credit_first_then_the_newest_bill() -> None:
    plan = plan_refund(
        D("70.00"), credit_left=D("20.00"), credit_available=D("50.00"), paid_bills=BILLS
    )
    assert plan.from_credit == D("20.00")
    assert plan.from_bills == (("b-oct", D("50.00")),)
    assert plan.bills_total == D("50.00")


def test_older_bills_reopen_only_after_newer_ones() -> None:
    plan = plan_refund(
        D("100.00"), credit_left=D("0.00"), credit_available=D("0.00"), paid_bills=BILLS
    )
    assert plan.from_bills == (("b-oct", D("60.00")), ("b-sep", D("40.00")))


def test_credit_already_spent_elsewhere_is_not_refundable() -> None:
    # 20.00 of credit was created, but the bucket holds only 5.00 now
    with pytest.raises(RefundExceedsRefundable, match=r"at most 105\.00"):
        plan_refund(
            D("120.00"), credit_left=D("20.00"), credit_available=D("5.00"), paid_bills=BILLS
        )
