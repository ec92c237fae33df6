"""Due dates: when each open bill is due, and what happens if it is paid late."""

from __future__ import annotations

from decimal import Decimal
from typing import Protocol

from actions.base import ActionContext, ActionResult, utility_term
from actions.replies import Money, Reply


class FormatsMoney(Protocol):
    """Anything that makes amounts for replies (an :class:`ActionContext`, the reminder digest)."""

    def money(self, amount: Decimal) -> Money: ...


def late_fee_reply(ctx: FormatsMoney, policy: object) -> Reply:
    """The late-fee policy in force, worded from its values (never a fixed sentence)."""
    if not getattr(policy, "enabled", False):
        return Reply("late_fee_none")
    rate = getattr(policy, "rate_per_day", None)
    fixed = getattr(policy, "fixed", None)
    grace = getattr(policy, "grace_days", 0)
    if rate is not None:
        percent = (Decimal(rate) * 100).normalize()
        return Reply("late_fee_rate", {"percent": percent, "grace_days": grace})
    if fixed is not None:
        return Reply("late_fee_fixed", {"amount": ctx.money(fixed), "grace_days": grace})
    return Reply("late_fee_none")


async def due_date(ctx: ActionContext) -> ActionResult:
    """List open bills with due dates (for one utility if named), then the late-fee policy."""
    balance = await ctx.client.get_balance(ctx.household_id)
    utility = ctx.utility()
    bills = [b for b in balance.open_bills if b.amount_due > 0]
    if utility is not None:
        bills = [b for b in bills if b.utility == utility]
    bills.sort(key=lambda b: (b.due_date, b.utility))
    slots = {"last_intent": "due_date"}
    if utility is not None:
        slots["context_utility"] = utility
    if not bills:
        key = "due_nothing_utility" if utility else "due_nothing"
        params = {"utility": utility_term(utility)} if utility else {}
        return ActionResult([Reply(key, params)], slots)
    lines = [
        Reply(
            "due_line_overdue" if b.due_date < ctx.today else "due_line",
            {
                "utility": utility_term(b.utility),
                "amount": ctx.money(b.amount_due),
                "due_date": b.due_date,
                "days": (ctx.today - b.due_date).days,
            },
        )
        for b in bills
    ]
    policy = await ctx.client.late_fee_policy()
    return ActionResult([Reply("due_list", {"bills": lines}), late_fee_reply(ctx, policy)], slots)
