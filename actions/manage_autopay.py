"""Autopay: show it, or turn it on or off for one utility."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from actions.base import UTILITIES, ActionContext, ActionResult, method_term, utility_term
from actions.errors import BillingError
from actions.replies import ButtonSpec, Reply, Term

# How residents say "on" and "off" (input vocabulary, not replies).
_OFF = re.compile(
    r"\b(off|disable|stop|cancel|deactivate|turn\s+off|switch\s+off)\b|关闭|关掉|取消|停止|停用|不要",
    re.IGNORECASE,
)
_ON = re.compile(
    r"\b(on|enable|activate|set\s*up|start|turn\s+on|switch\s+on)\b|开启|打开|开通|启用|设置",
    re.IGNORECASE,
)


def wanted_state(ctx: ActionContext) -> bool | None:
    """``True`` to enable, ``False`` to disable, ``None`` if the message doesn't say."""
    explicit = ctx.entities.get("autopay_enabled")
    if isinstance(explicit, bool):
        return explicit
    if _OFF.search(ctx.text or ""):
        return False
    if _ON.search(ctx.text or ""):
        return True
    return None


#: The limit a new autopay gets when the resident names none (the backend's default).
AUTOPAY_DEFAULT_LIMIT = Decimal("2000.00")


async def enable_autopay(ctx: ActionContext, confirmed: dict[str, Any]) -> ActionResult:
    """Turn autopay on as the resident confirmed it: utility, method and monthly limit."""
    utility = str(confirmed["utility"])
    limit = Decimal(str(confirmed["amount"]))
    method = str(confirmed["method"])
    slots: dict[str, Any] = {"last_intent": "manage_autopay", "context_utility": utility}
    try:
        setting = await ctx.client.set_autopay(
            ctx.household_id,
            utility=utility,
            enabled=True,
            method=method,
            max_amount=limit,
            step_up_proof=confirmed.get("step_up_proof"),
        )
    except BillingError:
        return ActionResult([Reply("autopay_failed", {"utility": utility_term(utility)})], slots)
    slots["autopay_set"] = True
    return ActionResult(
        [
            Reply(
                "autopay_on_limit",
                {
                    "utility": utility_term(utility),
                    "method": method_term(setting.method or method),
                    "limit": ctx.money(Decimal(setting.max_amount)),
                },
            )
        ],
        slots,
    )


async def manage_autopay(ctx: ActionContext) -> ActionResult:
    """Turn autopay on or off, or show the settings with buttons to change them."""
    utility = ctx.entities.get("utility")
    enabled = wanted_state(ctx)
    slots = {"last_intent": "manage_autopay"}
    settings = await ctx.client.get_autopay(ctx.household_id)
    if utility in UTILITIES and enabled is not None:
        method = ctx.entities.get("payment_method") or ctx.resident.saved_method
        if enabled and method is None:
            return ActionResult(
                [Reply("autopay_needs_method", {"utility": utility_term(utility)})], slots
            )
        setting = await ctx.client.set_autopay(
            ctx.household_id, utility=utility, enabled=enabled, method=method if enabled else None
        )
        slots["context_utility"] = utility
        if setting.enabled:
            return ActionResult(
                [
                    Reply(
                        "autopay_on",
                        {
                            "utility": utility_term(utility),
                            "method": method_term(setting.method or method),
                        },
                    )
                ],
                slots,
            )
        return ActionResult([Reply("autopay_off", {"utility": utility_term(utility)})], slots)
    lines = []
    buttons = []
    for u in UTILITIES:
        setting = settings.get(u)
        on = bool(setting and setting.enabled)
        params = {"utility": utility_term(u), "state": Term("onoff", "on" if on else "off")}
        if on and getattr(setting, "max_amount", None) is not None:
            limit = ctx.money(Decimal(setting.max_amount))  # type: ignore[union-attr]
            lines.append(Reply("autopay_status_line_limit", {**params, "limit": limit}))
        else:
            lines.append(Reply("autopay_status_line", params))
        if enabled is None or enabled != on:
            buttons.append(
                ButtonSpec(
                    "button_autopay_off" if on else "button_autopay_on",
                    ctx.payload("manage_autopay", utility=u, enabled=not on),
                    {"utility": utility_term(u)},
                )
            )
    return ActionResult([Reply("autopay_status", {"lines": lines}, buttons=buttons)], slots)
