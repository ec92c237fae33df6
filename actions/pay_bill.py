"""Everything a payment asks of the backend, and the outcome explained plainly.

The payment form (``bot/forms/payment.py``) drives the conversation: it collects
the utility, amount and method and shows the confirmation. Every backend call
on the way is here: what is owed (:func:`amounts_due`), what a payment would pay
and whether it needs step-up (:func:`preview`), and the payment itself
(:func:`execute_payment`), which is carried out with the idempotency key derived from the
confirmation token, so pressing Pay twice (or a retry after a crash) returns the
first payment instead of charging again. A payment that needed step-up carries
the backend's single-use proof (``pending["step_up_proof"]``, bound to exactly
this payment); without a valid one the API refuses it and nothing is charged.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from actions.base import ActionContext, ActionResult, method_term, utility_term
from actions.errors import (
    BackendUnavailable,
    BillingError,
    Conflict,
    StepUpRequired,
    ValidationFailed,
)
from actions.replies import Money, Reply, Term

#: Gateway failure codes with their own explanation; anything else is "failed".
FAILURE_REPLIES = {
    "card_declined": "pay_failed_declined",
    "insufficient_funds": "pay_failed_insufficient",
    "expired_card": "pay_failed_expired",
    "invalid_number": "pay_failed_method",
    "invalid_token": "pay_failed_method",
}


def _params(ctx: ActionContext, pending: dict[str, Any]) -> dict[str, Any]:
    utility = pending.get("utility")
    return {
        "amount": ctx.money(Decimal(pending["amount"])),
        "utility": utility_term(utility) if utility else Term("utility", "all"),
        "method": method_term(pending["method"]),
    }


async def amounts_due(ctx: ActionContext) -> Any:
    """The household's balance: ``total_due`` and ``by_utility`` (what the form offers)."""
    return await ctx.client.get_balance(ctx.household_id)


async def preview(
    ctx: ActionContext, *, amount: Decimal, utility: str | None, method: str, channel: str
) -> Any:
    """What paying ``amount`` would pay (bills, credit) and whether the backend wants step-up."""
    return await ctx.client.preview_payment(
        ctx.household_id, amount=amount, utility=utility, method=method, channel=channel
    )


async def execute_payment(
    ctx: ActionContext, pending: dict[str, Any], idempotency_key: str
) -> ActionResult:
    """Create the payment described by a confirmed ``pending`` confirmation."""
    params = _params(ctx, pending)
    # The step-up proof (and the channel, a risk feature) go along when there are any.
    extra = {k: pending[k] for k in ("step_up_proof", "channel") if pending.get(k)}
    try:
        payment = await ctx.client.create_payment(
            ctx.household_id,
            amount=Decimal(pending["amount"]),
            method=pending["method"],
            utility=pending.get("utility"),
            idempotency_key=idempotency_key,
            **extra,
        )
    except BackendUnavailable:
        return ActionResult([Reply("pay_backend_down", params)], {"last_intent": "pay_bill"})
    except Conflict:
        return ActionResult([Reply("pay_conflict", params)], {"last_intent": "pay_bill"})
    except StepUpRequired:  # no valid proof reached the API: nothing was charged
        return ActionResult([Reply("pay_step_up_required", params)], {"last_intent": "pay_bill"})
    except ValidationFailed as exc:
        key = (
            "pay_invalid_overpay"
            if exc.code in ("overpayment", "amount_exceeds_due")
            else "pay_invalid"
        )
        return ActionResult([Reply(key, params)], {"last_intent": "pay_bill"})
    except BillingError:
        return ActionResult([Reply("pay_error", params)], {"last_intent": "pay_bill"})
    slots: dict[str, Any] = {"last_intent": "pay_bill", "last_payment_id": payment.payment_id}
    if payment.status == "succeeded":
        reply = Reply("pay_succeeded", {**params, "receipt_no": payment.receipt_no or ""})
    elif payment.status == "pending":
        slots["pending_payment_id"] = payment.payment_id
        reply = Reply("pay_pending", params)
    elif payment.status == "review":  # held by the risk rules for staff; nothing charged yet
        slots["pending_payment_id"] = payment.payment_id
        reply = Reply("pay_review", params)
    else:
        reply = Reply(FAILURE_REPLIES.get(payment.failure_code or "", "pay_failed"), params)
    return ActionResult([reply], slots, payment_ids=[payment.payment_id])


def settled_reply(payment: Any, currency: str) -> Reply:
    """How a payment that was left pending ended (succeeded or failed), as a reply."""
    params: dict[str, Any] = {
        "amount": Money(Decimal(payment.amount), currency),
        "utility": utility_term(payment.utility) if payment.utility else Term("utility", "all"),
        "method": method_term(payment.method),
    }
    if payment.status == "succeeded":
        return Reply("pay_settled_succeeded", {**params, "receipt_no": payment.receipt_no or ""})
    return Reply("pay_settled_failed", params)


async def payment_status_update(ctx: ActionContext, payment_id: str) -> ActionResult | None:
    """If a pending payment has settled, say how it ended (else ``None``)."""
    try:
        payment = await ctx.client.get_payment(payment_id)
    except BillingError:
        return None
    if payment.status in ("pending", "review"):
        return None
    reply = settled_reply(payment, ctx.currency)
    return ActionResult([reply], {"pending_payment_id": None}, payment_ids=[payment_id])
