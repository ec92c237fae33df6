"""Balance: the total and per-utility amounts due, with due dates; overdue bills called out."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from actions.base import ActionContext, ActionResult, utility_term
from actions.errors import BillingError
from actions.replies import Reply


def _bill_line(ctx: ActionContext, bill: object) -> Reply:
    overdue = bill.due_date < ctx.today  # type: ignore[attr-defined]
    return Reply(
        "balance_bill_overdue" if overdue else "balance_bill_line",
        {
            "utility": utility_term(bill.utility),  # type: ignore[attr-defined]
            "amount": ctx.money(bill.amount_due),  # type: ignore[attr-defined]
            "due_date": bill.due_date,  # type: ignore[attr-defined]
        },
    )


async def overdue_note(ctx: ActionContext, overdue: list[Any]) -> Reply:
    """What is overdue, and what paying late costs under the late-fee policy in force.

    "Avoids more late fees" is said only when late fees are on; every policy
    statement comes from the backend's policy, never from a fixed sentence.
    """
    params = {
        "count": len(overdue),
        "amount": ctx.money(sum((b.amount_due for b in overdue), Decimal("0.00"))),
    }
    try:
        policy = await ctx.client.late_fee_policy()
    except BillingError:
        policy = None
    if policy is not None and getattr(policy, "enabled", False):
        return Reply("balance_overdue_note", params)
    return Reply("balance_overdue_no_fee", params)


async def check_balance(ctx: ActionContext) -> ActionResult:
    """Tell the resident what is due, for one utility if they named one."""
    balance = await ctx.client.get_balance(ctx.household_id)
    utility = ctx.utility()
    open_bills = [b for b in balance.open_bills if b.amount_due > 0]
    open_bills.sort(key=lambda b: (b.due_date, b.utility))
    if utility is not None:
        due = Decimal(balance.by_utility.get(utility, Decimal("0.00")))
        bills = [b for b in open_bills if b.utility == utility]
        if due <= 0:
            reply = Reply("balance_utility_nothing", {"utility": utility_term(utility)})
        else:
            reply = Reply(
                "balance_utility",
                {
                    "utility": utility_term(utility),
                    "amount": ctx.money(due),
                    "bills": [_bill_line(ctx, b) for b in bills],
                },
            )
        return ActionResult([reply], {"context_utility": utility, "last_intent": "check_balance"})
    if balance.total_due <= 0:
        replies = [Reply("balance_nothing_due")]
    else:
        overdue = [b for b in open_bills if b.due_date < ctx.today]
        replies = [
            Reply(
                "balance_total",
                {
                    "total": ctx.money(balance.total_due),
                    "bills": [_bill_line(ctx, b) for b in open_bills],
                },
            )
        ]
        if overdue:
            replies.append(await overdue_note(ctx, overdue))
    credits = {u: c for u, c in (balance.credits or {}).items() if c > 0}
    for utility_name, credit in sorted(credits.items()):
        replies.append(
            Reply(
                "balance_credit",
                {"utility": utility_term(utility_name), "amount": ctx.money(credit)},
            )
        )
    return ActionResult(replies, {"last_intent": "check_balance"})
