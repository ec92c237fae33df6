"""Explain a bill from its lines: usage against last period and last year, tier breakdown.

Every number comes from the bill the backend issued (its lines, quantities, unit
prices and amounts); nothing is recomputed here, so the explanation can never
disagree with the bill.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

from actions.base import ActionContext, ActionResult, utility_term
from actions.replies import Reply

#: Changes smaller than this share are "about the same".
_SAME = Decimal("0.02")


def _period_start(ctx: ActionContext) -> date | None:
    period = ctx.entities.get("period")
    if isinstance(period, dict) and period.get("start"):
        try:
            return date.fromisoformat(str(period["start"]))
        except ValueError:
            return None
    return None


def price(value: Decimal, unit: str | None) -> Reply:
    """A unit price with its unit ("¥0.52/kWh", "0.52元/kWh")."""
    amount = Decimal(value).normalize()
    if amount.as_tuple().exponent > -2:  # type: ignore[operator]
        amount = amount.quantize(Decimal("0.01"))  # at least cents: ¥0.50, not ¥0.5
    return Reply("unit_price", {"price": f"{amount:f}", "unit": unit or ""})


def _is_flat(lines: list[Any]) -> bool:
    """A flat tariff: one priced line for all the usage (not "the first N units")."""
    tiers = [line for line in lines if line.kind == "tier"]
    return len(tiers) == 1 and tiers[0].tier_to is None


def line_reply(
    ctx: ActionContext, line: object, unit: str | None, first: bool, flat: bool = False
) -> Reply:
    """One bill line as a sentence, prices with their unit."""
    kind = line.kind  # type: ignore[attr-defined]
    amount = ctx.money(line.amount)  # type: ignore[attr-defined]
    if kind == "tier" and line.quantity is not None and line.unit_price is not None:  # type: ignore[attr-defined]
        key = "explain_flat" if flat else "explain_tier_first" if first else "explain_tier_next"
        return Reply(
            key,
            {
                "quantity": line.quantity,  # type: ignore[attr-defined]
                "unit": unit or "",
                "unit_price": price(line.unit_price, unit),  # type: ignore[attr-defined]
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
            {
                "quantity": line.quantity,  # type: ignore[attr-defined]
                "unit_price": price(line.unit_price, "m²"),  # type: ignore[attr-defined]
                "amount": amount,
            },
        )
    return Reply("explain_fixed", {"description": line.description, "amount": amount})  # type: ignore[attr-defined]


def _change(now: Decimal, before: Decimal, unit: str) -> Reply:
    """How ``now`` compares with ``before``: up or down by how much (and %), or the same."""
    now, before = Decimal(now), Decimal(before)
    delta = now - before
    if before > 0 and abs(delta) / before < _SAME:
        return Reply("change_same", {"unit": unit})
    percent = (abs(delta) * 100 / before).quantize(Decimal("1")) if before > 0 else None
    key = "change_up" if delta > 0 else "change_down"
    if percent is None:
        key += "_nopct"
    return Reply(key, {"delta": abs(delta), "unit": unit, "percent": percent or 0})


def _days(bill: Any) -> int:
    return int((bill.period_end - bill.period_start).days) + 1


def _prices(bill: Any) -> list[Decimal]:
    return [
        Decimal(line.unit_price)
        for line in bill.lines
        if line.kind in ("tier", "area") and line.unit_price is not None
    ]


def _reasons(
    ctx: ActionContext, detail: Any, previous: Any | None, unit: str, before: Any
) -> list[Reply]:
    """What changed and why: usage, a tier crossed, a tariff change, a longer period, fees."""
    out: list[Reply] = []
    usage = detail.usage
    if usage is not None and before is not None and Decimal(usage) > Decimal(before):
        out.append(Reply("reason_usage_up", {"change": _change(usage, before, unit)}))
    tiers = [line for line in detail.lines if line.kind == "tier"]
    if previous is not None and len(tiers) > 1:
        before_tiers = [line for line in previous.lines if line.kind == "tier"]
        if len(tiers) > len(before_tiers):
            upper = tiers[len(before_tiers)] if before_tiers else tiers[1]
            out.append(
                Reply(
                    "reason_tier_crossed",
                    {
                        "limit": upper.tier_from or Decimal(0),
                        "unit": unit,
                        "price": price(upper.unit_price, unit),
                    },
                )
            )
    if previous is not None:
        now_prices, old_prices = _prices(detail), _prices(previous)
        if now_prices and old_prices and now_prices[0] != old_prices[0]:
            out.append(
                Reply(
                    "reason_tariff_changed",
                    {"old": price(old_prices[0], unit), "new": price(now_prices[0], unit)},
                )
            )
        if _days(detail) > _days(previous) and detail.usage is not None:
            out.append(
                Reply("reason_longer_period", {"days": _days(detail), "before": _days(previous)})
            )
    for line in detail.lines:
        if line.kind == "fixed":
            out.append(Reply("reason_fixed", {"amount": ctx.money(line.amount)}))
        elif line.kind == "late_fee":
            out.append(Reply("reason_late_fee", {"amount": ctx.money(line.amount)}))
    return out


async def explain_bill(ctx: ActionContext) -> ActionResult:
    """Explain the latest bill of the utility (or the one for the named period).

    Says whether it is higher than the last one and by how much, what changed
    and why (usage against the last period and the same period last year, a
    tier crossed, a tariff change, a longer period, fixed charges and fees), and
    kindly says so when the bill is not high at all.
    """
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
    # The bill it is compared with: the newest of the same utility that ended before it
    # began (the summaries say so already: both details in one read).
    earlier = [
        b for b in ordered if b.utility == chosen.utility and b.period_end < chosen.period_start
    ]
    wanted_ids = [chosen.bill_id] + ([earlier[0].bill_id] if earlier else [])
    details = await ctx.client.get_bills(wanted_ids)
    detail = details[0]
    previous = details[1] if earlier else None
    unit = detail.unit or ""
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
    went_up = False
    if previous is not None:
        delta = Decimal(detail.total) - Decimal(previous.total)
        went_up = delta > 0
        key = "explain_total_up" if delta > 0 else "explain_not_high" if delta else "explain_same"
        replies.append(
            Reply(key, {"delta": ctx.money(abs(delta)), "previous": ctx.money(previous.total)})
        )
    if detail.usage is not None:
        before = detail.previous_usage
        if before is None and previous is not None:
            before = previous.usage
        params: dict[str, Any] = {"usage": detail.usage, "unit": unit}
        key = "explain_used"
        if before is not None:
            key = "explain_used_last"
            params.update(last=before, vs_last=_change(detail.usage, before, unit))
            if detail.last_year_usage is not None:
                key = "explain_used_last_year"
                params.update(
                    year=detail.last_year_usage,
                    vs_year=_change(detail.usage, detail.last_year_usage, unit),
                )
        replies.append(Reply(key, params))
    before_usage = detail.previous_usage
    if before_usage is None and previous is not None:
        before_usage = previous.usage
    reasons = (
        _reasons(ctx, detail, previous, unit, before_usage) if went_up or previous is None else []
    )
    if reasons:
        replies.append(Reply("explain_reasons", {"lines": reasons}))
    flat = _is_flat(detail.lines)
    tier_seen = False
    lines = []
    for line in detail.lines:
        first = line.kind == "tier" and not tier_seen
        lines.append(line_reply(ctx, line, unit, first=first, flat=flat))
        tier_seen = tier_seen or line.kind == "tier"
    replies.append(Reply("explain_lines", {"lines": lines}))
    return ActionResult(
        replies,
        {"context_utility": detail.utility, "last_intent": "explain_bill"},
    )
