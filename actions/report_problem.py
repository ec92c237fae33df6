"""Problems and disputes: the conversation is flagged for staff, and the resident told so."""

from __future__ import annotations

from actions.base import ActionContext, ActionResult
from actions.replies import Reply


async def report_problem(ctx: ActionContext) -> ActionResult:
    """Open a ticket (flag the conversation for staff review)."""
    ticket = str(ctx.slots.get("conversation_ref", ""))
    return ActionResult(
        [Reply("problem_reported", {"ticket": ticket})],
        {"last_intent": "report_problem"},
        flag="problem_report",
    )
