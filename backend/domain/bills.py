"""Bill status and the bill period calendar."""

from __future__ import annotations

import calendar
from datetime import date, timedelta
from decimal import Decimal

BILL_STATUSES = ("open", "partially_paid", "paid", "overdue")
#: Bills are issued on the first day after the period and due this many days later.
DUE_AFTER_DAYS = 15


def bill_status(total: Decimal, amount_paid: Decimal, due_date: date, today: date) -> str:
    """The status of a bill.

    ``paid`` when nothing is left; ``overdue`` when something is left after the due
    date; ``partially_paid`` when some but not all is paid; otherwise ``open``.
    """
    if amount_paid >= total:
        return "paid"
    if today > due_date:
        return "overdue"
    if amount_paid > 0:
        return "partially_paid"
    return "open"


def month_period(year: int, month: int) -> tuple[date, date]:
    """The first and last day of a calendar month (a billing period)."""
    last = calendar.monthrange(year, month)[1]
    return date(year, month, 1), date(year, month, last)


def parse_period(text: str) -> tuple[date, date]:
    """Parse ``YYYY-MM`` into the month's first and last day."""
    try:
        year_s, month_s = text.split("-")
        return month_period(int(year_s), int(month_s))
    except (ValueError, TypeError) as exc:
        raise ValueError(f"period must be YYYY-MM, got {text!r}") from exc


def due_date_for(period_end: date) -> date:
    """Issued the day after the period ends; due :data:`DUE_AFTER_DAYS` later."""
    return period_end + timedelta(days=1 + DUE_AFTER_DAYS)


def previous_month(start: date) -> tuple[date, date]:
    """The month before the one starting on ``start``."""
    prev_end = start - timedelta(days=1)
    return month_period(prev_end.year, prev_end.month)
