"""The arrears-reminder schedule and the late-fee policy.

Notices (each sent at most once per bill):

* ``due_soon`` - 3 days before the due date;
* ``due_today`` - on the due date;
* ``overdue_7`` - 7 days overdue;
* ``overdue_30`` - 30 days overdue (final notice).

A notice is only due while the bill still has something to pay. When a run is
late (e.g. the job did not run for a week), only the most recent notice that
is due is sent, so nobody gets four notices at once.

The late-fee policy is off by default; when enabled, a bill overdue longer
than ``grace_days`` accrues ``rate_per_day`` × amount due per day beyond the
grace period, capped at ``cap_ratio`` of the amount due, or a ``fixed`` fee.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

from backend.domain.money import ZERO, round_line

#: (kind, days relative to the due date), in schedule order.
SCHEDULE: tuple[tuple[str, int], ...] = (
    ("due_soon", -3),
    ("due_today", 0),
    ("overdue_7", 7),
    ("overdue_30", 30),
)


def notice_due(due_date: date, today: date, already_sent: set[str]) -> str | None:
    """The notice kind to send today for a bill with an amount due, or ``None``."""
    latest: str | None = None
    for kind, offset in SCHEDULE:
        if today >= due_date + timedelta(days=offset):
            latest = kind
    if latest is None or latest in already_sent:
        return None
    # Never go back to an earlier notice once a later one was sent.
    order = [k for k, _ in SCHEDULE]
    if any(order.index(s) > order.index(latest) for s in already_sent if s in order):
        return None
    return latest


def notice_text(kind: str, utility: str, amount_due: Decimal, due_date: date, currency: str) -> str:
    """The channel-agnostic text of a notice."""
    what = utility.replace("_", " ")
    amount = f"{currency} {amount_due:f}"
    if kind == "due_soon":
        return f"Reminder: your {what} bill of {amount} is due on {due_date.isoformat()}."
    if kind == "due_today":
        return f"Your {what} bill of {amount} is due today ({due_date.isoformat()})."
    if kind == "overdue_7":
        return f"Your {what} bill of {amount} is 7 days overdue (due {due_date.isoformat()})."
    return (
        f"FINAL NOTICE: your {what} bill of {amount} is 30 days overdue "
        f"(due {due_date.isoformat()}). Please pay now or contact the management office."
    )


#: Notice kinds for a payment that was left pending and settled later.
PAYMENT_SUCCEEDED = "payment_succeeded"
PAYMENT_FAILED = "payment_failed"


def payment_notice_text(
    kind: str, utility: str | None, amount: Decimal, currency: str, receipt_no: str | None
) -> str:
    """The channel-agnostic text of a settled pending payment's notice."""
    what = f"{utility.replace('_', ' ')} " if utility else ""
    money = f"{currency} {amount:f}"
    if kind == PAYMENT_SUCCEEDED:
        return f"Your pending {what}payment of {money} has completed (receipt {receipt_no})."
    return f"Your pending {what}payment of {money} did not go through. Nothing was charged."


@dataclass(frozen=True)
class LateFeePolicy:
    """How late fees are charged (off unless ``enabled``)."""

    enabled: bool = False
    rate_per_day: Decimal = Decimal("0.0005")
    fixed: Decimal | None = None
    grace_days: int = 7
    cap_ratio: Decimal = Decimal("0.10")

    @property
    def description(self) -> str:
        """A sentence a resident can read."""
        if not self.enabled:
            return "No late fees are charged."
        if self.fixed is not None:
            return f"A late fee of {self.fixed:f} applies after {self.grace_days} days overdue."
        pct = (self.rate_per_day * 100).normalize()
        return (
            f"After {self.grace_days} days overdue, a late fee of {pct:f}% of the amount due "
            f"per day applies, capped at {(self.cap_ratio * 100).normalize():f}%."
        )

    def fee(self, amount_due: Decimal, due_date: date, today: date) -> Decimal:
        """The total late fee a bill should carry today (rounded once)."""
        if not self.enabled or amount_due <= 0:
            return ZERO
        days = (today - due_date).days - self.grace_days
        if days <= 0:
            return ZERO
        if self.fixed is not None:
            return round_line(self.fixed)
        return round_line(min(amount_due * self.rate_per_day * days, amount_due * self.cap_ratio))
