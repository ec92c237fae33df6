"""Payment receipts: the data a receipt shows, and its PDF rendering.

The billing services build a :class:`ReceiptData` from a payment (with its
allocations and receipt number) and hand it to
:func:`backend.receipts.pdf.render_receipt_pdf`; ``billtalk receipts render ID
--pdf FILE`` and ``GET /api/v1/payments/{id}/receipt.pdf`` both go through it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal

from backend.receipts.pdf import render_receipt_pdf

__all__ = ["ReceiptAllocation", "ReceiptData", "render_receipt_pdf"]


def _exact(value: object, name: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, Decimal):
        raise TypeError(f"{name} must be a Decimal, not {type(value).__name__}")
    if not value.is_finite():
        raise ValueError(f"{name} must be finite")
    return value


@dataclass(frozen=True, slots=True)
class ReceiptAllocation:
    """One bill (or credit) a payment went to.

    Attributes:
        utility: ``electricity``, ``water``, ``gas``, ``property_fee``.
        period_start: First day of the billed period (``None`` for a credit).
        period_end: Last day of the billed period (``None`` for a credit).
        amount: The part of the payment applied to it.
        description: Optional text shown instead of the period, e.g. "Credit".
    """

    utility: str
    period_start: date | None
    period_end: date | None
    amount: Decimal
    description: str = ""

    def __post_init__(self) -> None:
        _exact(self.amount, "allocation amount")


@dataclass(frozen=True, slots=True)
class ReceiptData:
    """Everything a payment receipt shows.

    Amounts are ``Decimal``; a ``float`` raises :class:`TypeError`. Text may be
    in Chinese or English (the PDF embeds no font: it uses the reader's built-in
    CJK font ``STSong-Light``).

    Attributes:
        receipt_no: The gap-free receipt number, e.g. ``"R2026-000123"``.
        issued_at: When the payment succeeded (or the receipt was issued).
        community: Community name, e.g. "Lakeside Gardens 湖畔花园".
        unit: Building and unit, e.g. "Building 1, Unit 1203".
        household_id: The household's id.
        payer: The resident who paid.
        amount: The amount paid.
        currency: ISO 4217 code (``"CNY"``).
        method: ``card``, ``bank_transfer``, ``wallet``, ``alipay``, ``wechat_pay``.
        gateway_reference: The payment gateway's reference.
        allocations: Where the money went.
        status: ``succeeded``, ``pending``, ``failed`` or ``reversed``; anything
            but ``succeeded`` is stamped across the page.
        payment_id: The payment's id.
        notes: Free text printed at the bottom (e.g. "Overpayment kept as credit").
    """

    receipt_no: str
    issued_at: datetime
    community: str
    unit: str
    household_id: str
    payer: str
    amount: Decimal
    currency: str
    method: str
    gateway_reference: str
    allocations: list[ReceiptAllocation] = field(default_factory=list)
    status: str = "succeeded"
    payment_id: str = ""
    notes: str = ""

    def __post_init__(self) -> None:
        _exact(self.amount, "amount")
        if not self.receipt_no:
            raise ValueError("receipt_no is required")

    @property
    def allocated(self) -> Decimal:
        """The sum of the allocations."""
        return sum((a.amount for a in self.allocations), Decimal("0.00"))
