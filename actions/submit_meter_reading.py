"""Meter readings: hand the value to the backend, which validates it."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any

from actions.base import ActionContext, ActionResult, utility_term
from actions.errors import ValidationFailed
from actions.replies import ButtonSpec, Reply

#: Utilities with a meter the resident can read.
METERED = ("electricity", "water", "gas")


def _value(ctx: ActionContext) -> Decimal | None:
    raw = ctx.entities.get("meter_reading")
    if raw is None:
        return None
    try:
        value = Decimal(re.sub(r"[,\s]", "", str(raw)))
    except InvalidOperation:
        return None
    return value if value.is_finite() and value >= 0 else None


async def submit_meter_reading(ctx: ActionContext) -> ActionResult:
    """Submit the reading in the message (asks for what is missing)."""
    utility = ctx.entities.get("utility") or ctx.slots.get("context_utility")
    value = _value(ctx)
    # "awaiting_reading" tells the policy that the next "gas" or "12345" answers
    # this question (a reading), not a new one (a balance, an amount).
    slots: dict[str, Any] = {"last_intent": "submit_meter_reading", "awaiting_reading": None}
    if utility not in METERED:
        if value is None:
            slots["awaiting_reading"] = {"utility": None}
            return ActionResult([Reply("reading_ask")], slots)
        return ActionResult(
            [
                Reply(
                    "reading_which_utility",
                    {"value": value},
                    buttons=[
                        ButtonSpec(
                            "button_utility",
                            ctx.payload(
                                "submit_meter_reading", utility=u, meter_reading=str(value)
                            ),
                            {"utility": utility_term(u)},
                        )
                        for u in METERED
                    ],
                )
            ],
            slots,
        )
    slots["context_utility"] = utility
    if value is None:
        slots["awaiting_reading"] = {"utility": utility}
        return ActionResult([Reply("reading_ask_value", {"utility": utility_term(utility)})], slots)
    try:
        result = await ctx.client.submit_reading(
            ctx.household_id, utility=utility, value=value, source="resident"
        )
    except ValidationFailed as exc:
        key = "reading_backwards" if exc.code == "reading_backwards" else "reading_invalid"
        return ActionResult([Reply(key, {"utility": utility_term(utility), "value": value})], slots)
    if result.status == "accepted":
        return ActionResult(
            [Reply("reading_accepted", {"utility": utility_term(utility), "value": value})], slots
        )
    if result.status == "duplicate":
        return ActionResult(
            [Reply("reading_duplicate", {"utility": utility_term(utility), "value": value})], slots
        )
    suggested = result.suggested_value
    if suggested is None:
        return ActionResult(
            [Reply("reading_flagged", {"utility": utility_term(utility), "value": value})], slots
        )
    return ActionResult(
        [
            Reply(
                "reading_did_you_mean",
                {"utility": utility_term(utility), "value": value, "suggested": suggested},
                buttons=[
                    ButtonSpec(
                        "button_use_value",
                        ctx.payload(
                            "submit_meter_reading", utility=utility, meter_reading=str(suggested)
                        ),
                        {"value": suggested},
                    ),
                    ButtonSpec("button_keep_value", ctx.payload("reading_keep"), {"value": value}),
                ],
            )
        ],
        slots,
    )
