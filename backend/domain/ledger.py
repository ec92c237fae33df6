"""Double-entry bookkeeping: every money movement is a balanced journal entry.

Accounts
--------
* ``receivable`` (asset, per household) - what households owe;
* ``revenue:<utility>`` (income) - billed electricity, water, gas, property fee;
* ``revenue:late_fee`` (income) - late fees;
* ``gateway_clearing`` (asset) - money captured by the payment gateway, not yet
  settled to the bank; ``cash`` for payments taken at the office;
* ``customer_credit`` (liability, per household) - overpayments held as credit.

Entries
-------
* bill issued: Dr receivable / Cr revenue:<utility> (one line per utility);
* bill regenerated: a compensating entry for the difference;
* payment succeeded: Dr gateway_clearing / Cr receivable (allocated part) and
  Cr customer_credit (overpayment);
* credit applied to a bill: Dr customer_credit / Cr receivable;
* reversal or refund: the exact opposite of the payment's part being returned.

Debits always equal credits (:func:`make_entry` refuses anything else), so the
trial balance always balances.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal

from backend.domain.money import ZERO

RECEIVABLE = "receivable"
GATEWAY_CLEARING = "gateway_clearing"
CASH = "cash"
CUSTOMER_CREDIT = "customer_credit"
LATE_FEE_REVENUE = "revenue:late_fee"


def revenue(utility: str) -> str:
    """The revenue account of a utility."""
    return f"revenue:{utility}"


class UnbalancedEntry(ValueError):
    """A journal entry whose debits and credits differ."""


@dataclass(frozen=True)
class Posting:
    """One side of a journal entry: ``amount`` debited (or credited) to ``account``."""

    account: str
    debit: Decimal = ZERO
    credit: Decimal = ZERO
    household_id: str | None = None


@dataclass(frozen=True)
class Entry:
    """A balanced journal entry."""

    kind: str
    reference: str
    postings: tuple[Posting, ...]
    household_id: str | None = None
    memo: str = ""

    @property
    def amount(self) -> Decimal:
        """The entry's total debits (= total credits)."""
        return sum((p.debit for p in self.postings), ZERO)


def make_entry(
    kind: str,
    reference: str,
    postings: Iterable[Posting],
    *,
    household_id: str | None = None,
    memo: str = "",
) -> Entry:
    """Build an entry, dropping zero postings and refusing unbalanced ones.

    Raises:
        UnbalancedEntry: when debits and credits differ, or a posting is negative
            or both a debit and a credit.
    """
    kept = []
    for p in postings:
        if p.debit < 0 or p.credit < 0 or (p.debit and p.credit):
            raise UnbalancedEntry(f"invalid posting {p}")
        if p.debit or p.credit:
            kept.append(p)
    debits = sum((p.debit for p in kept), ZERO)
    credits = sum((p.credit for p in kept), ZERO)
    if debits != credits:
        raise UnbalancedEntry(f"{kind} {reference}: debits {debits} != credits {credits}")
    return Entry(kind, reference, tuple(kept), household_id, memo)


def _credit(account: str, amount: Decimal, household_id: str | None = None) -> Posting:
    """Credit ``amount`` to ``account`` (a negative amount becomes a debit)."""
    if amount >= 0:
        return Posting(account, credit=amount, household_id=household_id)
    return Posting(account, debit=-amount, household_id=household_id)


def _debit(account: str, amount: Decimal, household_id: str | None = None) -> Posting:
    """Debit ``amount`` to ``account`` (a negative amount becomes a credit)."""
    if amount >= 0:
        return Posting(account, debit=amount, household_id=household_id)
    return Posting(account, credit=-amount, household_id=household_id)


def bill_entry(
    bill_id: str, household_id: str, utility: str, amount: Decimal, late_fee: Decimal = ZERO
) -> Entry:
    """A bill (or the positive or negative change of a regenerated bill).

    Dr receivable / Cr revenue:<utility> (and Cr revenue:late_fee for late fees);
    negative amounts swap the sides.
    """
    postings = [
        _debit(RECEIVABLE, amount + late_fee, household_id),
        _credit(revenue(utility), amount),
        _credit(LATE_FEE_REVENUE, late_fee),
    ]
    return make_entry("bill", bill_id, postings, household_id=household_id)


def payment_entry(
    payment_id: str,
    household_id: str,
    allocated: Decimal,
    overpayment: Decimal,
    *,
    cash: bool = False,
) -> Entry:
    """A succeeded payment: Dr clearing (or cash) / Cr receivable and customer credit."""
    return make_entry(
        "payment",
        payment_id,
        [
            Posting(CASH if cash else GATEWAY_CLEARING, debit=allocated + overpayment),
            Posting(RECEIVABLE, credit=allocated, household_id=household_id),
            Posting(CUSTOMER_CREDIT, credit=overpayment, household_id=household_id),
        ],
        household_id=household_id,
    )


def credit_applied_entry(reference: str, household_id: str, amount: Decimal) -> Entry:
    """Credit applied to a bill: Dr customer_credit / Cr receivable."""
    return make_entry(
        "credit_applied",
        reference,
        [
            Posting(CUSTOMER_CREDIT, debit=amount, household_id=household_id),
            Posting(RECEIVABLE, credit=amount, household_id=household_id),
        ],
        household_id=household_id,
    )


def reversal_entry(
    kind: str,
    payment_id: str,
    household_id: str,
    from_bills: Decimal,
    from_credit: Decimal,
    *,
    cash: bool = False,
) -> Entry:
    """A refund or reversal: the opposite of the returned part of a payment."""
    return make_entry(
        kind,
        payment_id,
        [
            Posting(RECEIVABLE, debit=from_bills, household_id=household_id),
            Posting(CUSTOMER_CREDIT, debit=from_credit, household_id=household_id),
            Posting(CASH if cash else GATEWAY_CLEARING, credit=from_bills + from_credit),
        ],
        household_id=household_id,
    )


@dataclass(frozen=True)
class TrialBalance:
    """Totals of every debit and credit; ``balanced`` when they are equal."""

    debits: Decimal
    credits: Decimal
    by_account: dict[str, tuple[Decimal, Decimal]]

    @property
    def balanced(self) -> bool:
        """Whether debits equal credits."""
        return self.debits == self.credits


def trial_balance(rows: Sequence[tuple[str, Decimal, Decimal]]) -> TrialBalance:
    """Build a trial balance from ``(account, debits, credits)`` totals."""
    by_account = {a: (d, c) for a, d, c in rows}
    return TrialBalance(
        sum((d for _, d, _ in rows), ZERO), sum((c for _, _, c in rows), ZERO), by_account
    )
