"""THE payment state machine.

::

    review ──► pending ──► succeeded ──► reversed
       │          │            │
       └► declined └──► failed  └──(refund: partial or full; stays succeeded, ``refunded`` grows)

* ``review`` - held by the risk rules (:mod:`backend.domain.risk`) for staff;
  nothing was charged. Approving makes it ``pending`` and charges it;
  declining makes it ``declined`` (nothing is ever charged).

* ``pending`` - the gateway has not answered yet (timeout); reconciliation or a
  webhook moves it on.
* ``succeeded`` - money captured; allocated to bills; a receipt number issued.
* ``failed`` - declined; nothing allocated, no ledger entry.
* ``reversed`` - staff reversed the whole payment (chargeback or mistake); a
  compensating ledger entry undoes it.

Refunds are partial or full returns of a succeeded payment; a full refund is
a reversal. No other transition exists.
"""

from __future__ import annotations

from decimal import Decimal

from billtalk.vocabulary import PAYMENT_METHODS

PAYMENT_STATUSES = ("pending", "succeeded", "failed", "reversed", "review", "declined")
METHODS = PAYMENT_METHODS

_TRANSITIONS: dict[str, frozenset[str]] = {
    "pending": frozenset({"succeeded", "failed"}),
    "succeeded": frozenset({"reversed"}),
    "failed": frozenset(),
    "reversed": frozenset(),
    "review": frozenset({"pending", "declined"}),
    "declined": frozenset(),
}


class InvalidTransition(ValueError):
    """A status change the payment state machine does not allow."""

    code = "invalid_transition"


def can_transition(current: str, new: str) -> bool:
    """Whether a payment may move from ``current`` to ``new``."""
    return new in _TRANSITIONS.get(current, frozenset())


def transition(current: str, new: str) -> str:
    """Return ``new`` if the move is allowed.

    Raises:
        InvalidTransition: otherwise (e.g. ``failed`` → ``succeeded``).
    """
    if not can_transition(current, new):
        raise InvalidTransition(f"a {current} payment cannot become {new}")
    return new


def check_refund(status: str, amount: Decimal, already_refunded: Decimal, paid: Decimal) -> None:
    """Validate a refund of ``amount`` from a payment of ``paid``.

    Raises:
        InvalidTransition: the payment is not ``succeeded``, or the refund exceeds
            what is left to refund.
    """
    if status != "succeeded":
        raise InvalidTransition(f"only succeeded payments can be refunded (this one is {status})")
    if amount <= 0 or already_refunded + amount > paid:
        raise InvalidTransition(
            f"refund of {amount:f} exceeds the refundable {paid - already_refunded:f}"
        )
