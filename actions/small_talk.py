"""Greetings, thanks, goodbyes, help and out-of-scope replies."""

from __future__ import annotations

from actions.base import ActionContext, ActionResult
from actions.replies import ButtonSpec, Reply


async def greet(ctx: ActionContext) -> ActionResult:
    """Say hello by name."""
    return ActionResult([Reply("greet", {"name": ctx.resident.name})])


async def thank(ctx: ActionContext) -> ActionResult:
    """You're welcome."""
    return ActionResult([Reply("thank")])


async def goodbye(ctx: ActionContext) -> ActionResult:
    """Goodbye."""
    return ActionResult([Reply("goodbye")])


async def help_(ctx: ActionContext) -> ActionResult:
    """List what the assistant can do, with a few buttons to start."""
    return ActionResult(
        [
            Reply(
                "help",
                buttons=[
                    ButtonSpec("button_balance", ctx.payload("check_balance")),
                    ButtonSpec("button_start_payment", ctx.payload("pay_bill")),
                    ButtonSpec("button_history", ctx.payload("payment_history")),
                ],
            )
        ]
    )


async def out_of_scope(ctx: ActionContext) -> ActionResult:
    """Say it is outside what the assistant does, and offer help."""
    return ActionResult(
        [Reply("out_of_scope", buttons=[ButtonSpec("button_help", ctx.payload("help"))])]
    )
