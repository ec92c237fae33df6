"""Receipts: the latest successful payment's receipt as text, and as a PDF where possible."""

from __future__ import annotations

from actions.base import ActionContext, ActionResult, method_term
from actions.replies import Attachment, Reply


async def request_receipt(ctx: ActionContext) -> ActionResult:
    """Send the receipt of the most recent successful payment."""
    payments = await ctx.client.list_payments(ctx.household_id, limit=10)
    paid = [p for p in payments if p.status == "succeeded" and p.receipt_no]
    if not paid:
        return ActionResult([Reply("receipt_none")], {"last_intent": "request_receipt"})
    payment = paid[0]
    receipt = await ctx.client.get_receipt(payment.payment_id)
    attachments = []
    if ctx.supports_files:
        pdf = await ctx.client.get_receipt_pdf(payment.payment_id)
        attachments.append(
            Attachment("pdf", pdf, f"receipt-{receipt.receipt_no}.pdf", "application/pdf")
        )
    reply = Reply(
        "receipt_text_pdf" if attachments else "receipt_text",
        {
            "receipt_no": receipt.receipt_no,
            "amount": ctx.money(receipt.amount),
            "method": method_term(receipt.method),
            "paid_at": receipt.paid_at,
            "unit": receipt.unit,
        },
        attachments=attachments,
    )
    return ActionResult([reply], {"last_intent": "request_receipt"}, [payment.payment_id])
