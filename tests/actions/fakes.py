"""A fake billing client for unit tests of the actions.

It implements the part of ``backend.client.BillingClient`` the actions use, on
in-memory data, returning the same ``backend.schemas`` models the real client
returns. Conversation tests use the real backend; this is for fast, focused
tests of one action's wording and branching.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from backend.client import BackendUnavailable, NotFound, ValidationFailed
from backend.schemas import (
    AllocationOut,
    AutopaySetting,
    Balance,
    BillDetail,
    BillLine,
    BillSummary,
    Forecast,
    LateFeePolicy,
    Payment,
    PaymentPreview,
    ReadingResult,
    Receipt,
    Resident,
    UsagePoint,
    UsageSeries,
)

D = Decimal


def bill(
    bill_id: str,
    utility: str,
    month: int,
    total: str,
    *,
    paid: str = "0.00",
    usage: str | None = None,
    unit: str | None = None,
) -> BillSummary:
    """A bill of 2026-``month``, due on the 16th of the next month."""
    start = date(2026, month, 1)
    end = date(2026, month, 30 if month in (4, 6, 9, 11) else 31)
    due = date(2026, month + 1, 16)
    total_d, paid_d = D(total), D(paid)
    return BillSummary(
        bill_id=bill_id,
        household_id="hh-1",
        utility=utility,  # type: ignore[arg-type]
        period_start=start,
        period_end=end,
        due_date=due,
        status="open" if paid_d < total_d else "paid",
        total=total_d,
        amount_paid=paid_d,
        amount_due=total_d - paid_d,
        usage=D(usage) if usage else None,
        unit=unit,
    )


class FakeBillingClient:
    """In-memory stand-in for a resident-scoped ``BillingClient``."""

    def __init__(self) -> None:
        self.token_expires_at: datetime | None = None  # a scoped token that never expires
        self.resident = Resident(
            resident_id="r-1",
            household_id="hh-1",
            name="Li Wei",
            language="en",
            unit="A-0101",
            saved_method="card",
        )
        self.bills = [
            bill("b-el-10", "electricity", 10, "153.02", usage="286", unit="kWh"),
            bill("b-wa-10", "water", 10, "39.77", usage="12", unit="m³"),
        ]
        self.lines = {
            "b-el-10": [
                BillLine(
                    kind="tier",
                    description="Tier 1",
                    quantity=D("200"),
                    unit_price=D("0.52"),
                    amount=D("104.00"),
                    tier_from=D("0"),
                    tier_to=D("200"),
                ),
                BillLine(
                    kind="tier",
                    description="Tier 2",
                    quantity=D("86"),
                    unit_price=D("0.57"),
                    amount=D("49.02"),
                    tier_from=D("200"),
                    tier_to=D("400"),
                ),
            ]
        }
        self.payments: list[Payment] = []
        self.keys: dict[str, Payment] = {}
        self.autopay: dict[str, AutopaySetting] = {}
        self.down = False
        self.outcome = "succeeded"
        self.failure_code: str | None = None
        self.calls: list[str] = []

    def _check(self, household_id: str) -> None:
        self.calls.append(household_id)
        if self.down:
            raise BackendUnavailable("unavailable", "billing API down", 503)
        if household_id != "hh-1":
            raise NotFound("unknown_household", "no such household", 404)

    async def resident_scope(self, resident_id: str) -> FakeBillingClient:
        return self

    async def aclose(self) -> None:
        return None

    async def get_resident(self, resident_id: str) -> Resident:
        return self.resident

    async def get_balance(self, household_id: str) -> Balance:
        self._check(household_id)
        open_bills = [b for b in self.bills if b.amount_due > 0]
        by_utility: dict[str, Decimal] = {}
        for b in open_bills:
            by_utility[b.utility] = by_utility.get(b.utility, D("0.00")) + b.amount_due
        return Balance(
            household_id=household_id,
            currency="CNY",
            total_due=sum(by_utility.values(), D("0.00")),
            by_utility=by_utility,
            open_bills=open_bills,
        )

    async def list_bills(self, household_id: str, **kwargs: Any) -> list[BillSummary]:
        self._check(household_id)
        utility = kwargs.get("utility")
        return [b for b in self.bills if utility in (None, b.utility)]

    async def get_bill(self, bill_id: str) -> BillDetail:
        summary = next(b for b in self.bills if b.bill_id == bill_id)
        return BillDetail(
            **summary.model_dump(),
            lines=self.lines.get(bill_id, []),
            previous_usage=D("250"),
            last_year_usage=D("270"),
        )

    async def get_bills(self, bill_ids: Sequence[str]) -> list[BillDetail]:
        return [await self.get_bill(bill_id) for bill_id in bill_ids]

    async def preview_payment(
        self,
        household_id: str,
        *,
        amount: Decimal,
        utility: str | None = None,
        method: str | None = None,
        **_: object,
    ) -> PaymentPreview:
        self._check(household_id)
        bills = [b for b in self.bills if b.amount_due > 0 and utility in (None, b.utility)]
        paid_today = sum((p.amount for p in self.payments if p.status != "failed"), D("0.00"))
        # The backend's default step-up policy: 200.00 and over, or past 500.00 a day.
        reasons = [
            r
            for r, hit in (
                ("threshold", amount >= D("200.00")),
                ("daily_limit", paid_today + amount > D("500.00")),
            )
            if hit
        ]
        return PaymentPreview(
            step_up_required=bool(reasons),
            step_up_reasons=reasons,
            household_id=household_id,
            amount=amount,
            utility=utility,  # type: ignore[arg-type]
            allocations=[
                AllocationOut(
                    bill_id=b.bill_id,
                    utility=b.utility,
                    period_start=b.period_start,
                    period_end=b.period_end,
                    amount=min(amount, b.amount_due),
                )
                for b in bills[:1]
            ],
            overpayment=D("0.00"),
            amount_due=sum((b.amount_due for b in bills), D("0.00")),
            paid_today=paid_today,
            risk_flagged=False,
            risk_reasons=[],
        )

    async def create_payment(
        self,
        household_id: str,
        *,
        amount: Decimal,
        method: str,
        utility: str | None = None,
        idempotency_key: str,
        **_: object,  # step_up_proof, channel: the real backend checks them
    ) -> Payment:
        self._check(household_id)
        if idempotency_key in self.keys:
            return self.keys[idempotency_key]
        if amount <= 0:
            raise ValidationFailed("invalid_amount", "amount must be positive", 422)
        payment = Payment(
            payment_id=f"pay-{len(self.payments) + 1}",
            household_id=household_id,
            status=self.outcome,  # type: ignore[arg-type]
            amount=amount,
            method=method,  # type: ignore[arg-type]
            utility=utility,  # type: ignore[arg-type]
            receipt_no=f"R-{len(self.payments) + 1}" if self.outcome == "succeeded" else None,
            failure_code=self.failure_code,
            created_at=datetime(2026, 11, 20, 10, 0, tzinfo=UTC),
        )
        self.payments.insert(0, payment)
        self.keys[idempotency_key] = payment
        return payment

    async def list_payments(self, household_id: str, limit: int = 5) -> list[Payment]:
        self._check(household_id)
        return self.payments[:limit]

    async def get_payment(self, payment_id: str) -> Payment:
        return next(p for p in self.payments if p.payment_id == payment_id)

    async def get_receipt(self, payment_id: str) -> Receipt:
        p = await self.get_payment(payment_id)
        return Receipt(
            receipt_no=p.receipt_no or "",
            payment_id=p.payment_id,
            household_id="hh-1",
            unit="A-0101",
            amount=p.amount,
            method=p.method,
            paid_at=p.created_at,
            allocations=[],
        )

    async def get_receipt_pdf(self, payment_id: str) -> bytes:
        return b"%PDF-1.4 fake"

    async def submit_reading(
        self, household_id: str, *, utility: str, value: Decimal, source: str = "resident"
    ) -> ReadingResult:
        self._check(household_id)
        if value < 1000:
            raise ValidationFailed("reading_backwards", "the meter went backwards", 422)
        if value > 100000:
            return ReadingResult(
                reading_id=None, status="flagged", message="implausible", suggested_value=value / 10
            )
        return ReadingResult(reading_id=1, status="accepted", message="ok")

    async def usage(
        self, household_id: str, *, utility: str, start: date, end: date
    ) -> UsageSeries:
        self._check(household_id)
        points = [
            UsagePoint(
                period_start=date(2026, m, 1),
                period_end=date(2026, m, 28),
                usage=D(u),
                unit="kWh",
                amount=D(a),
            )
            for m, u, a in ((8, "200", "104.00"), (9, "250", "131.00"), (10, "286", "153.02"))
        ]
        return UsageSeries(household_id=household_id, utility=utility, points=points)  # type: ignore[arg-type]

    async def forecast(self, household_id: str, *, utility: str) -> Forecast:
        return Forecast(
            household_id=household_id,
            utility=utility,
            period_start=date(2026, 12, 1),
            period_end=date(2026, 12, 31),
            usage=D("300"),
            unit="kWh",
            amount_estimate=D("161.00"),
            method="seasonal",
        )  # type: ignore[arg-type]

    async def get_autopay(self, household_id: str) -> dict[str, AutopaySetting]:
        self._check(household_id)
        return dict(self.autopay)

    async def set_autopay(
        self,
        household_id: str,
        *,
        utility: str,
        enabled: bool,
        method: str | None = None,
        max_amount: Any = None,
        step_up_proof: str | None = None,
    ) -> AutopaySetting:
        self._check(household_id)
        setting = AutopaySetting(utility=utility, enabled=enabled, method=method)  # type: ignore[arg-type]
        self.autopay[utility] = setting
        return setting

    async def late_fee_policy(self) -> LateFeePolicy:
        return LateFeePolicy(
            enabled=True, rate_per_day=D("0.0005"), grace_days=15, description="0.05% a day"
        )
