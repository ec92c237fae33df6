"""Explain a bill from its lines: usage against last period and last year, tier breakdown.

Every number comes from the bill the backend issued (its lines, quantities, unit
prices and amounts); nothing is recomputed here, so the explanation can never
disagree with the bill.
"""

from __future__ import annotations

from datetime import date

from actions.base import ActionContext, ActionResult, utility_term
from actions.replies import Reply


def _period_start(ctx: ActionContext) -> date | None:
    period = ctx.entities.get("period")
    if isinstance(period, dict) and period.get("start"):
        try:
            return date.fromisoformat(str(period["start"]))
        except ValueError:
            return None
    return None


def line_reply(ctx: ActionContext, line: object, unit: str | None, first: bool) -> Reply:
    """One bill line as a sentence."""
    kind = line.kind  # type: ignore[attr-defined]
    amount = ctx.money(line.amount)  # type: ignore[attr-defined]
    if kind == "tier" and line.quantity is not None and line.unit_price is not None:  # type: ignore[attr-defined]
        return Reply(
            "explain_tier_first" if first else "explain_tier_next",
            {
                "quantity": line.quantity,  # type: ignore[attr-defined]
                "unit": unit or "",
                "unit_price": line.unit_price,  # type: ignore[attr-defined]
                "amount": amount,
            },
        )
    if kind == "late_fee":
        return Reply("explain_late_fee", {"amount": amount})
    if kind == "credit":
        return Reply("explain_credit", {"amount": amount})
    if kind == "area" and line.quantity is not None and line.unit_price is not None:  # type: ignore[attr-defined]
        return Reply(
            "explain_area",
            {"quantity": line.quantity, "unit_price": line.unit_price, "amount": amount},  # type: ignore[attr-defined]
        )
    return Reply("explain_fixed", {"description": line.description, "amount": amount})  # type: ignore[attr-defined]


async def explain_bill(ctx: ActionContext) -> ActionResult:
    """Explain the latest bill of the utility (or the one for the named period)."""
    utility = ctx.utility(carry=True)
    bills = await ctx.client.list_bills(ctx.household_id, utility=utility, limit=12)
    if not bills:
        return ActionResult(
            [Reply("explain_no_bill", {"utility": utility_term(utility or "electricity")})]
        )
    wanted = _period_start(ctx)
    # Newest period first; without a utility, the biggest bill of that period.
    ordered = sorted(bills, key=lambda b: (b.period_start, b.total), reverse=True)
    chosen = ordered[0]
    if wanted is not None:
        for bill in ordered:
            if bill.period_start <= wanted <= bill.period_end:
                chosen = bill
                break
    detail = await ctx.client.get_bill(chosen.bill_id)
    unit = detail.unit
    replies = [
        Reply(
            "explain_header",
            {
                "utility": utility_term(detail.utility),
                "start": detail.period_start,
                "end": detail.period_end,
                "total": ctx.money(detail.total),
            },
        )
    ]
    if detail.usage is not None:
        params = {"usage": detail.usage, "unit": unit or ""}
        if detail.previous_usage is not None and detail.last_year_usage is not None:
            replies.append(
                Reply(
                    "explain_usage_compare",
                    {
                        **params,
                        "previous": detail.previous_usage,
                        "last_year": detail.last_year_usage,
                    },
                )
            )
        elif detail.previous_usage is not None:
            replies.append(
                Reply("explain_usage_previous", {**params, "previous": detail.previous_usage})
            )
        else:
            replies.append(Reply("explain_usage", params))
    tier_seen = False
    lines = []
    for line in detail.lines:
        lines.append(line_reply(ctx, line, unit, first=line.kind == "tier" and not tier_seen))
        tier_seen = tier_seen or line.kind == "tier"
    replies.append(Reply("explain_lines", {"lines": lines}))
    return ActionResult(
        replies,
        {"context_utility": detail.utility, "last_intent": "explain_bill"},
    )
