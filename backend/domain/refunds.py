"""Where a refund's money comes from.

A refund of part or all of a succeeded payment is taken back in this order:

1. the payment's unused **credit** first (an overpayment not yet applied to any
   bill): at most what is left of the credit this payment created, and at most
   what the household's credit bucket still holds;
2. then its **bill allocations**, newest bill period first, which reopens those
   bills (the oldest debts stay paid the longest).

If the bills this payment paid cannot cover the rest (its credit was already
used on other bills), the refund is refused: only what is traceable to this
payment comes back.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from backend.domain.payments import InvalidTransition

ZERO = Decimal("0.00")


class RefundExceedsRefundable(InvalidTransition):
    """The bills this payment paid cannot cover what its credit does not."""

    code = "refund_exceeds_refundable"


@dataclass(frozen=True)
class RefundPlan:
    """How a refund is taken back.

    Attributes:
        from_credit: Taken from the household's credit bucket.
        from_bills: Taken back from bills, as ``(bill_id, amount)``, newest period first.
    """

    from_credit: Decimal
    from_bills: tuple[tuple[str, Decimal], ...]

    @property
    def bills_total(self) -> Decimal:
        """The part taken back from bills."""
        return sum((part for _, part in self.from_bills), ZERO)


def plan_refund(
    amount: Decimal,
    *,
    credit_left: Decimal,
    credit_available: Decimal,
    paid_bills: dict[str, tuple[date, Decimal]],
) -> RefundPlan:
    """Split a refund of ``amount`` between credit and bills (see the module docstring).

    Args:
        amount: What to refund.
        credit_left: What is left of the credit this payment created.
        credit_available: What the household's credit bucket holds now.
        paid_bills: For each bill this payment paid: its period start and the net
            amount this payment still covers on it.

    Raises:
        RefundExceedsRefundable: the bills cannot cover what the credit does not.
    """
    from_credit = min(amount, credit_left, credit_available)
    remaining = amount - from_credit
    refundable = sum((net for _, net in paid_bills.values()), ZERO)
    if remaining > refundable:
        raise RefundExceedsRefundable(
            "part of this payment's credit was already used; refund at most "
            f"{from_credit + refundable:f}"
        )
    parts: list[tuple[str, Decimal]] = []
    for bill_id in sorted(paid_bills, key=lambda b: paid_bills[b][0], reverse=True):
        if remaining <= 0:
            break
        part = min(remaining, paid_bills[bill_id][1])
        if part > 0:
            parts.append((bill_id, part))
            remaining -= part
    return RefundPlan(from_credit, tuple(parts))
