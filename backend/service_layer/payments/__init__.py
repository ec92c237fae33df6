"""Payments: create, settle, reconcile, refund and reverse; autopay.

Every function takes a :class:`~backend.service_layer.unit_of_work.UnitOfWork`
(and the :class:`~backend.gateway.base.PaymentGateway` when money moves), does
one thing, and either commits it entirely or raises a
:class:`~backend.service_layer.errors.ServiceError` having written nothing.

How a payment flows (:func:`create_payment`):

1. *Record.* Lock the household row; if the idempotency key is known, replay the
   stored response (same body) or refuse (different body: 409). Otherwise check
   the amount and the overpayment limit and store the payment as ``pending``.
   Commit.
2. *Charge.* Call the gateway with the payment id as its idempotency key (outside
   any transaction: no lock is held while waiting for the provider).
3. *Settle.* Lock the household and the payment again. If the payment is still
   ``pending``, apply the gateway's answer: ``succeeded`` allocates it to bills,
   books the ledger entry and issues the receipt number; ``failed`` records the
   reason; ``pending`` (timeout) stays for reconciliation. Commit, store the
   response for replays.

A concurrent confirmation of the same payment waits at step 1 or 3 and then finds
the payment already settled, so the gateway's idempotent charge and the state
machine together move money once. A crash between 1 and 3 leaves a ``pending``
payment that ``billtalk payments reconcile`` (or a webhook) settles.

The parts: :mod:`.create` (record, charge, settle; the preview),
:mod:`.settlement`, :mod:`.review` (held for staff), :mod:`.reconciliation`
(pending payments, webhooks), :mod:`.refunds`, :mod:`.queries`, :mod:`.autopay`.
"""

from __future__ import annotations

from backend.service_layer.payments.autopay import get_autopay, run_autopay, set_autopay
from backend.service_layer.payments.create import PaymentBlocked, create_payment, preview_payment
from backend.service_layer.payments.queries import (
    get_payment,
    get_receipt,
    list_payments,
    payment_household,
)
from backend.service_layer.payments.reconciliation import apply_webhook, reconcile_pending
from backend.service_layer.payments.refunds import refund_payment
from backend.service_layer.payments.review import held_payments, review_payment

__all__ = [
    "PaymentBlocked",
    "apply_webhook",
    "create_payment",
    "get_autopay",
    "get_payment",
    "get_receipt",
    "held_payments",
    "list_payments",
    "payment_household",
    "preview_payment",
    "reconcile_pending",
    "refund_payment",
    "review_payment",
    "run_autopay",
    "set_autopay",
]
