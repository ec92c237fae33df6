"""Usage: consumption for a period, the trend, and next period's forecast."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from actions.base import ActionContext, ActionResult, utility_term
from actions.replies import Reply


def _period(ctx: ActionContext) -> tuple[date, date]:
    period = ctx.entities.get("period")
    if isinstance(period, dict) and period.get("start") and period.get("end"):
        try:
            return date.fromisoformat(str(period["start"])), date.fromisoformat(str(period["end"]))
        except ValueError:
            pass
    start = (ctx.today.replace(day=1) - timedelta(days=1)).replace(day=1)
    for _ in range(2):
        start = (start - timedelta(days=1)).replace(day=1)
    return start, ctx.today


def trend_key(first: Decimal, last: Decimal) -> tuple[str, Decimal]:
    """``trend_up``/``trend_down``/``trend_flat`` and the change in percent."""
    if first <= 0:
        return "trend_flat", Decimal(0)
    change = ((last - first) / first * 100).quantize(Decimal(1))
    if change >= 5:
        return "trend_up", change
    if change <= -5:
        return "trend_down", -change
    return "trend_flat", abs(change)


async def usage(ctx: ActionContext) -> ActionResult:
    """Usage of a utility over a period (the last three months by default)."""
    utility = ctx.utility(carry=True) or "electricity"
    start, end = _period(ctx)
    series = await ctx.client.usage(ctx.household_id, utility=utility, start=start, end=end)
    points = [p for p in series.points if p.usage is not None]
    slots = {"context_utility": utility, "last_intent": "usage"}
    replies: list[Reply] = []
    if not points:
        replies.append(
            Reply("usage_none", {"utility": utility_term(utility), "start": start, "end": end})
        )
    else:
        unit = points[-1].unit or ""
        total = sum((p.usage for p in points), Decimal(0))
        lines = [
            Reply(
                "usage_line",
                {
                    "start": p.period_start,
                    "end": p.period_end,
                    "usage": p.usage,
                    "unit": p.unit or unit,
                    "amount": ctx.money(p.amount),
                },
            )
            for p in points
        ]
        replies.append(
            Reply(
                "usage_summary",
                {
                    "utility": utility_term(utility),
                    "start": points[0].period_start,
                    "end": points[-1].period_end,
                    "total": total,
                    "unit": unit,
                    "lines": lines,
                },
            )
        )
        if len(points) >= 2:
            key, change = trend_key(points[0].usage, points[-1].usage)
            replies.append(Reply(key, {"percent": change}))
    forecast = await ctx.client.forecast(ctx.household_id, utility=utility)
    if forecast is not None:
        replies.append(
            Reply(
                "usage_forecast",
                {
                    "usage": forecast.usage,
                    "unit": forecast.unit or "",
                    "amount": ctx.money(forecast.amount_estimate),
                    "start": forecast.period_start,
                },
            )
        )
    return ActionResult(replies, slots)
