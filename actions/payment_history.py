"""Payment history: the last payments and their status."""

from __future__ import annotations

from actions.base import ActionContext, ActionResult, method_term, utility_term
from actions.replies import Reply, Term


async def payment_history(ctx: ActionContext, limit: int = 5) -> ActionResult:
    """List the household's last payments."""
    payments = await ctx.client.list_payments(ctx.household_id, limit=limit)
    if not payments:
        return ActionResult([Reply("history_none")], {"last_intent": "payment_history"})
    lines = [
        Reply(
            "history_line_receipt" if p.receipt_no else "history_line",
            {
                "date": p.created_at,
                "amount": ctx.money(p.amount),
                "utility": utility_term(p.utility) if p.utility else Term("utility", "all"),
                "method": method_term(p.method),
                "status": Term("status", p.status),
                "receipt_no": p.receipt_no or "",
            },
        )
        for p in payments
    ]
    return ActionResult(
        [Reply("history_list", {"lines": lines})],
        {"last_intent": "payment_history"},
        payment_ids=[p.payment_id for p in payments],
    )
