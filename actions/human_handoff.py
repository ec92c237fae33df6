"""Human handoff: the conversation waits for staff, and the bot stays quiet until released."""

from __future__ import annotations

from actions.base import ActionContext, ActionResult
from actions.replies import Reply


async def human_handoff(ctx: ActionContext) -> ActionResult:
    """Put the conversation in the staff queue."""
    return ActionResult(
        [Reply("handoff_started")], {"last_intent": "human_handoff"}, flag="handoff", handoff=True
    )
