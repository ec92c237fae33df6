"""Typed data shapes shared by the service layer, the HTTP API and :class:`BillingClient`.

Amounts are :class:`~decimal.Decimal` with two places; in JSON they are strings
(``"12.30"``), never numbers.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer

from billtalk import vocabulary

Utility = vocabulary.Utility
Method = vocabulary.PaymentMethod
PaymentStatus = Literal["pending", "succeeded", "failed", "reversed", "review", "declined"]
BillStatus = Literal["open", "partially_paid", "paid", "overdue"]

#: A money amount: Decimal in Python, a two-place string in JSON.
Money = Annotated[Decimal, PlainSerializer(lambda v: format(v, "f"), return_type=str)]
#: A quantity (usage, meter value): Decimal in Python, a string in JSON.
Quantity = Annotated[Decimal, PlainSerializer(lambda v: format(v, "f"), return_type=str)]


class Model(BaseModel):
    """Base of every shape: unknown fields are ignored so older clients keep working."""

    model_config = ConfigDict(extra="ignore")


class Resident(Model):
    """A resident and the household they belong to."""

    resident_id: str
    household_id: str
    name: str
    language: str
    unit: str
    saved_method: Method | None = None
    saved_method_label: str | None = None


class BillSummary(Model):
    """A bill without its lines."""

    bill_id: str
    household_id: str = ""
    utility: Utility
    period_start: date
    period_end: date
    due_date: date
    status: BillStatus
    total: Money
    amount_paid: Money
    amount_due: Money
    usage: Quantity | None = None
    unit: str | None = None


class BillLine(Model):
    """One itemised line; ``kind`` is tier, fixed, area, late_fee or credit."""

    kind: Literal["tier", "fixed", "area", "late_fee", "credit"]
    description: str
    quantity: Quantity | None = None
    unit_price: Quantity | None = None
    amount: Money
    tier_from: Quantity | None = None
    tier_to: Quantity | None = None


class BillDetail(BillSummary):
    """A bill with its lines and usage comparisons ("why is it so high?")."""

    lines: list[BillLine]
    tariff_name: str | None = None
    start_reading: Quantity | None = None
    end_reading: Quantity | None = None
    previous_usage: Quantity | None = None
    last_year_usage: Quantity | None = None


class Balance(Model):
    """What a household owes, in total and per utility, and its credits."""

    household_id: str
    currency: str
    total_due: Money
    by_utility: dict[str, Money]
    credits: dict[str, Money] = Field(default_factory=dict)
    open_bills: list[BillSummary] = Field(default_factory=list)


class AllocationOut(Model):
    """Part of a payment applied to one bill."""

    bill_id: str
    utility: Utility
    period_start: date
    period_end: date
    amount: Money


class Risk(Model):
    """The risk of a payment (:mod:`backend.domain.risk`): score, level, action, reasons."""

    score: int = Field(ge=0, le=100)
    level: Literal["normal", "elevated", "highest"]
    action: Literal["allow", "step_up", "review", "block"]
    reasons: list[str] = Field(default_factory=list)


class PaymentPreview(Model):
    """What a payment would do, before any money moves.

    ``step_up_required`` / ``step_up_reasons`` (``threshold``, ``daily_limit``,
    ``risk``) are the backend's step-up policy's answer for the caller: the
    dialogue asks for verification exactly when they say so. ``risk_flagged`` and
    ``risk_reasons`` repeat them for older clients.
    """

    household_id: str
    amount: Money
    utility: Utility | None = None
    allocations: list[AllocationOut]
    overpayment: Money
    amount_due: Money
    paid_today: Money
    risk_flagged: bool
    risk_reasons: list[str]
    step_up_required: bool = False
    step_up_reasons: list[str] = Field(default_factory=list)
    risk: Risk | None = None


class Payment(Model):
    """A payment and its current state."""

    payment_id: str
    household_id: str
    status: PaymentStatus
    amount: Money
    method: Method
    utility: Utility | None = None
    receipt_no: str | None = None
    failure_code: str | None = None
    gateway_reference: str | None = None
    credited: Money = Decimal("0.00")
    refunded: Money = Decimal("0.00")
    created_at: datetime
    paid_at: datetime | None = None
    allocations: list[AllocationOut] = Field(default_factory=list)
    risk: Risk | None = None


class Receipt(Model):
    """A receipt (e-invoice) of a succeeded payment."""

    receipt_no: str
    payment_id: str
    household_id: str
    unit: str
    building: str = ""
    amount: Money
    method: Method
    currency: str = "CNY"
    paid_at: datetime
    status: PaymentStatus = "succeeded"
    refunded: Money = Decimal("0.00")
    allocations: list[AllocationOut]


class ReadingResult(Model):
    """What happened to a submitted meter reading."""

    reading_id: int | None
    status: Literal["accepted", "duplicate", "flagged"]
    message: str
    suggested_value: Quantity | None = None


class Reading(Model):
    """A stored meter reading."""

    reading_id: int
    utility: Utility
    value: Quantity
    taken_at: datetime
    source: str
    status: str


class UsagePoint(Model):
    """Usage and the billed amount for one period."""

    period_start: date
    period_end: date
    usage: Quantity | None
    unit: str | None
    amount: Money


class UsageSeries(Model):
    """A household's usage of one utility over time."""

    household_id: str
    utility: Utility
    points: list[UsagePoint]


class Forecast(Model):
    """Next period's expected usage and cost."""

    household_id: str
    utility: Utility
    period_start: date
    period_end: date
    usage: Quantity
    unit: str | None
    amount_estimate: Money
    method: str
    details: dict[str, Any] = Field(default_factory=dict)


class AutopaySetting(Model):
    """Autopay for one utility."""

    utility: Utility
    enabled: bool
    method: Method | None = None
    max_amount: Money = Decimal("2000.00")


class LateFeePolicy(Model):
    """The late-fee policy in force."""

    enabled: bool
    rate_per_day: Quantity | None = None
    fixed: Money | None = None
    grace_days: int
    cap_ratio: Quantity | None = None
    description: str


class LinkResult(Model):
    """A chat account bound to a resident."""

    resident_id: str
    household_id: str


class LinkCodeOut(Model):
    """A freshly created link code (shown once)."""

    code: str
    resident_id: str
    expires_at: datetime


class Notice(Model):
    """A notice in the outbox: an arrears reminder (``bill_id``) or a pending
    payment's outcome (``payment_id``; kinds ``payment_succeeded``, ``payment_failed``)."""

    notice_id: int
    household_id: str
    resident_ids: list[str] = Field(default_factory=list)
    bill_id: str | None = None
    payment_id: str | None = None
    kind: str
    message: str
    amount_due: Money
    due_date: date | None = None
    status: Literal["pending", "delivered"]
    created_at: datetime
    delivered_at: datetime | None = None
    channel: str | None = None


class TrialBalance(Model):
    """The ledger's trial balance."""

    balanced: bool
    debits: Money
    credits: Money
    accounts: dict[str, dict[str, Money]] = Field(default_factory=dict)


class TokenOut(Model):
    """A newly minted bearer token (shown once)."""

    token: str
    scope: Literal["service", "resident", "staff"]
    household_id: str | None = None
    resident_id: str | None = None
    expires_at: datetime | None = None


class StepUpOutcome(Model):
    """The answer to a recorded step-up verification.

    ``proof`` (when it passed for a payment) is the single-use token to send with
    that exact payment before ``expires_at``; ``locked_until`` is set while the
    resident is locked out (nothing passes then).
    """

    passed: bool
    failures: int
    locked_until: datetime | None = None
    proof: str | None = None
    expires_at: datetime | None = None


class AuditVerification(Model):
    """The result of checking the audit chain."""

    ok: bool
    entries: int
    head: str | None = None
    first_bad: dict[str, Any] | None = None
