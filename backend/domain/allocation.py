"""Allocating a payment to bills, and the overpayment (credit) limit.

* With a utility: that utility's open bills, oldest period first.
* Without (``utility=None``): every open bill, oldest period first (ties broken
  by the utility order electricity, water, gas, property_fee).
* Whatever is left after every open bill is paid becomes a **credit** on that
  utility (or ``general`` when no utility was chosen), applied automatically to
  the next bills.

The overpayment limit
---------------------
A household's credit on one utility (including this overpayment) may not
exceed :data:`CREDIT_LIMIT` (CNY 2,000.00). A payment that would take it higher
is refused before any money moves (error ``overpayment_limit``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from backend.domain.money import ZERO

#: The most credit a household may hold on one utility.
CREDIT_LIMIT = Decimal("2000.00")
GENERAL = "general"
_UTILITY_ORDER = {"electricity": 0, "water": 1, "gas": 2, "property_fee": 3}


class OverpaymentLimit(ValueError):
    """The payment would leave more credit than :data:`CREDIT_LIMIT`."""

    code = "overpayment_limit"


@dataclass(frozen=True)
class OpenBill:
    """What allocation needs to know about an unpaid bill."""

    bill_id: str
    utility: str
    period_start: date
    period_end: date
    amount_due: Decimal


@dataclass(frozen=True)
class Allocation:
    """Part of a payment applied to one bill."""

    bill_id: str
    utility: str
    period_start: date
    period_end: date
    amount: Decimal


@dataclass(frozen=True)
class AllocationPlan:
    """Where a payment goes: bills, then the credit (overpayment) bucket."""

    allocations: tuple[Allocation, ...]
    overpayment: Decimal
    credit_bucket: str


def order_bills(bills: Sequence[OpenBill]) -> list[OpenBill]:
    """Oldest period first, then by utility."""
    return sorted(
        bills, key=lambda b: (b.period_start, _UTILITY_ORDER.get(b.utility, 9), b.bill_id)
    )


def allocate(
    amount: Decimal,
    open_bills: Sequence[OpenBill],
    utility: str | None,
    existing_credit: Decimal = ZERO,
    *,
    credit_limit: Decimal = CREDIT_LIMIT,
) -> AllocationPlan:
    """Plan how ``amount`` pays ``open_bills``.

    Args:
        amount: the payment amount (positive).
        open_bills: the household's bills with something left to pay.
        utility: the chosen utility, or ``None`` for oldest-first across utilities.
        existing_credit: credit already held in the bucket the overpayment would go to.
        credit_limit: the overpayment limit.

    Raises:
        OverpaymentLimit: if the leftover would push the credit above the limit.
    """
    eligible = [b for b in open_bills if utility is None or b.utility == utility]
    remaining = amount
    out: list[Allocation] = []
    for bill in order_bills(eligible):
        if remaining <= 0:
            break
        if bill.amount_due <= 0:
            continue
        part = min(remaining, bill.amount_due)
        out.append(Allocation(bill.bill_id, bill.utility, bill.period_start, bill.period_end, part))
        remaining -= part
    bucket = utility or GENERAL
    _check_limit(amount, remaining, bucket, existing_credit, credit_limit)
    return AllocationPlan(tuple(out), remaining, bucket)


def check_credit_limit(
    amount: Decimal,
    amount_due: Decimal,
    utility: str | None,
    existing_credit: Decimal = ZERO,
    *,
    credit_limit: Decimal = CREDIT_LIMIT,
) -> Decimal:
    """The overpayment limit alone, from the total due (what :func:`allocate` checks).

    Args:
        amount: the payment amount (positive).
        amount_due: the sum of the eligible open bills' amounts due.
        utility: the chosen utility, or ``None``.
        existing_credit: credit already held in the overpayment's bucket.

    Returns:
        The overpayment (what would become credit).

    Raises:
        OverpaymentLimit: as :func:`allocate` would.
    """
    remaining = max(amount - max(amount_due, ZERO), ZERO)
    _check_limit(amount, remaining, utility or GENERAL, existing_credit, credit_limit)
    return remaining


def _check_limit(
    amount: Decimal,
    remaining: Decimal,
    bucket: str,
    existing_credit: Decimal,
    credit_limit: Decimal,
) -> None:
    if remaining > 0 and existing_credit + remaining > credit_limit:
        raise OverpaymentLimit(
            f"this payment would leave {existing_credit + remaining:f} of credit on {bucket}; "
            f"the limit is {credit_limit:f}. Pay at most "
            f"{amount - remaining + max(credit_limit - existing_credit, ZERO):f}."
        )
