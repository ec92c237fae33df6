"""Arrears reminders people read: one digest per resident, from the bills as they are now.

The backend queues one notice per bill and stage (due soon, due today, 7 and 30
days overdue). Sent one by one they pile up (19 notices for one resident) and
their fixed wording ages badly ("7 days overdue" about a bill 143 days late).
:func:`digest_replies` turns a household's pending reminders into **one**
message built from the household's balance at the time it is sent:

* every open bill that is overdue or due within three days, with the days
  overdue *computed* from today (``today - due_date``), oldest first;
* the total, and one button that pays all of it (one payment, oldest bills
  first, confirmed and stepped up like any payment);
* the late-fee statement of the policy in force (nothing about late fees when
  there are none).

:func:`in_quiet_hours` says whether a reminder must wait (the community's quiet
hours, in its time zone); the courier leaves such notices pending until then.
"""

from __future__ import annotations

import json
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from actions.base import utility_term
from actions.due_date import late_fee_reply
from actions.errors import BillingError
from bot.responses import ButtonSpec, Money, Reply

#: Bills due within this many days are listed with the overdue ones.
DUE_SOON_DAYS = 3


def community_now(now: datetime, zone_name: str) -> datetime:
    """``now`` in the community's time zone (UTC when the zone is unknown)."""
    try:
        zone = ZoneInfo(zone_name)
    except (KeyError, ValueError):
        zone = ZoneInfo("UTC")
    return now.astimezone(zone)


def in_quiet_hours(now: datetime, quiet_hours: str, zone_name: str) -> bool:
    """Whether ``now`` falls in the quiet hours ("21:00-08:00", community time).

    An empty or malformed setting means no quiet hours.
    """
    try:
        start_s, end_s = (part.strip() for part in quiet_hours.split("-", 1))
        start, end = time.fromisoformat(start_s), time.fromisoformat(end_s)
    except ValueError:
        return False
    local = community_now(now, zone_name).time().replace(tzinfo=None)
    if start == end:
        return False
    if start < end:
        return start <= local < end
    return local >= start or local < end


def _payload(session: str) -> str:
    return "/pay_all" + json.dumps({"s": session[:8]}, sort_keys=True)


async def digest_replies(
    client: Any, household_id: str, today: date, currency: str, session: str
) -> list[Reply] | None:
    """The one reminder for a household, or ``None`` when nothing is overdue or due soon.

    Args:
        client: A billing client allowed to read the household (service or scoped).
        household_id: The household.
        today: Today in the community's time zone.
        currency: The currency of every amount.
        session: The conversation's session id (stamped on the pay button).
    """
    balance = await client.get_balance(household_id)
    horizon = today + timedelta(days=DUE_SOON_DAYS)
    bills = sorted(
        (b for b in balance.open_bills if b.amount_due > 0 and b.due_date <= horizon),
        key=lambda b: (b.due_date, b.utility),
    )
    if not bills:
        return None
    lines = []
    for bill in bills:
        params = {
            "utility": utility_term(bill.utility),
            "amount": Money(Decimal(bill.amount_due), currency),
            "due_date": bill.due_date,
        }
        days = (today - bill.due_date).days
        if days > 0:
            lines.append(Reply("digest_line_overdue", {**params, "days": days}))
        elif days == 0:
            lines.append(Reply("digest_line_today", params))
        else:
            lines.append(Reply("digest_line_soon", params))
    total = sum((Decimal(b.amount_due) for b in bills), Decimal("0.00"))
    overdue = sum(1 for b in bills if b.due_date < today)
    everything = Decimal(balance.total_due)
    replies = [
        Reply(
            "reminder_digest" if overdue else "reminder_digest_soon",
            {"lines": lines, "total": Money(total, currency), "count": len(bills)},
            buttons=[
                ButtonSpec(
                    "button_pay_everything",
                    _payload(session),
                    {"amount": Money(everything, currency)},
                )
            ],
        )
    ]
    if overdue:
        try:
            policy = await client.late_fee_policy()
        except BillingError:
            policy = None
        if policy is not None and getattr(policy, "enabled", False):
            replies.append(late_fee_reply(_MoneyOnly(currency), policy))
    return replies


class _MoneyOnly:
    """The part of an action context :func:`late_fee_reply` uses (amounts)."""

    def __init__(self, currency: str) -> None:
        self.currency = currency

    def money(self, amount: Decimal) -> Money:
        return Money(Decimal(amount), self.currency)


__all__ = ["DUE_SOON_DAYS", "community_now", "digest_replies", "in_quiet_hours"]
