"""The payment gateway adapter interface.

The billing services never talk to a payment provider directly: they call a
:class:`PaymentGateway`, which charges, looks up and refunds payments and
answers with a :class:`GatewayResult`. The default implementation is the
deterministic :class:`~backend.gateway.sandbox.SandboxGateway`; a production
provider is one more class with the same three methods.

Every amount crossing this interface is a :class:`~decimal.Decimal` with at most
two decimal places. A ``float`` raises :class:`TypeError` at once, so no float can
reach a provider (or come back into the ledger) through the gateway.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Final, Literal, Protocol, runtime_checkable

from billtalk import vocabulary

#: The payment methods a gateway accepts (CONTRACTS.md).
PAYMENT_METHODS: Final = vocabulary.PAYMENT_METHODS

#: Outcome of a gateway call. ``pending`` means "not known yet": ask :meth:`status` later.
GatewayStatus = Literal["succeeded", "failed", "pending"]

#: The largest single amount a gateway accepts; mirrors ``Numeric(12, 2)`` in the database.
MAX_AMOUNT: Final = Decimal("9999999999.99")

_CENT = Decimal("0.01")


class GatewayError(Exception):
    """Base class of errors raised by a gateway before anything is charged.

    Args:
        code: A stable, machine-readable code (``invalid_amount``, ``unknown_method``...).
        message: A human-readable explanation.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class GatewayValidationError(GatewayError, ValueError):
    """The request is malformed (bad amount, unknown method, currency...). Nothing was charged."""


class UnknownReferenceError(GatewayError, LookupError):
    """The gateway does not know (or cannot authenticate) the reference it was given."""


@dataclass(frozen=True, slots=True)
class GatewayResult:
    """What the gateway said about a charge or refund.

    Attributes:
        status: ``"succeeded"``, ``"failed"`` or ``"pending"`` (not known yet; poll
            :meth:`PaymentGateway.status` or wait for a webhook).
        reference: The gateway's own identifier for this charge or refund. Store it
            with the payment; it is what :meth:`PaymentGateway.status` and
            :meth:`PaymentGateway.refund` take.
        failure_code: Why it failed or is pending, e.g. ``"card_declined"``,
            ``"insufficient_funds"``, ``"timeout"``; ``None`` on success.
        message: A short human-readable explanation, safe to show to a resident.
        amount: The amount charged or refunded.
        currency: ISO 4217 code of ``amount``.
    """

    status: GatewayStatus
    reference: str
    failure_code: str | None
    message: str
    amount: Decimal
    currency: str

    @property
    def succeeded(self) -> bool:
        """Whether the money moved."""
        return self.status == "succeeded"

    @property
    def is_final(self) -> bool:
        """Whether the outcome can no longer change (it is not ``pending``)."""
        return self.status != "pending"


@runtime_checkable
class PaymentGateway(Protocol):
    """A payment provider, as the billing services see it.

    Implementations must be idempotent: calling :meth:`charge` or :meth:`refund`
    twice with the same ``idempotency_key`` (and the same arguments) returns the
    same :class:`GatewayResult`, with the same reference, and moves money once.
    """

    #: Short name of the gateway (``"sandbox"``), stored with each payment.
    name: str

    def charge(
        self,
        *,
        amount: Decimal,
        currency: str,
        method: str,
        payment_token: str | None,
        idempotency_key: str,
    ) -> GatewayResult:
        """Charge ``amount`` to the instrument behind ``payment_token``.

        Args:
            amount: A positive ``Decimal`` with at most two places. Floats raise
                :class:`TypeError`.
            currency: ISO 4217 code, e.g. ``"CNY"``.
            method: One of :data:`PAYMENT_METHODS`.
            payment_token: The tokenised instrument (card token, wallet token...);
                ``None`` uses the payer's saved default instrument.
            idempotency_key: The caller's key for this charge; a retry must reuse it.

        Raises:
            TypeError: ``amount`` is not a ``Decimal``.
            GatewayValidationError: The request is malformed; nothing was charged.
        """
        ...

    def status(self, reference: str) -> GatewayResult:
        """Return the current state of the charge or refund ``reference``.

        Raises:
            UnknownReferenceError: The gateway does not know ``reference``.
        """
        ...

    def refund(self, reference: str, amount: Decimal, idempotency_key: str) -> GatewayResult:
        """Refund ``amount`` (all or part) of the succeeded charge ``reference``.

        Raises:
            TypeError: ``amount`` is not a ``Decimal``.
            GatewayValidationError: The amount is invalid or exceeds the charge.
            UnknownReferenceError: ``reference`` is not a charge this gateway made.
        """
        ...


def check_amount(amount: object, *, field: str = "amount") -> Decimal:
    """Validate a gateway amount and return it as a two-place ``Decimal``.

    Args:
        amount: The value to check.
        field: Name used in error messages.

    Returns:
        ``amount`` quantised to exactly two places (``Decimal("12.3")`` gives ``12.30``).

    Raises:
        TypeError: ``amount`` is not a ``Decimal`` (a ``float``, ``int`` or ``str``).
        GatewayValidationError: ``amount`` is not finite, not positive, has more
            than two decimal places or exceeds :data:`MAX_AMOUNT`.
    """
    if isinstance(amount, bool) or not isinstance(amount, Decimal):
        raise TypeError(
            f"{field} must be a Decimal, not {type(amount).__name__}; "
            "floats never enter a money path"
        )
    if not amount.is_finite():
        raise GatewayValidationError("invalid_amount", f"{field} must be a finite number")
    if amount <= 0:
        raise GatewayValidationError("invalid_amount", f"{field} must be positive")
    try:
        exact = amount.quantize(_CENT)
    except InvalidOperation as exc:  # too many digits for the context
        raise GatewayValidationError("invalid_amount", f"{field} is too large") from exc
    if exact != amount:
        raise GatewayValidationError("invalid_amount", f"{field} has more than two decimal places")
    if exact > MAX_AMOUNT:
        raise GatewayValidationError("invalid_amount", f"{field} exceeds {MAX_AMOUNT}")
    return exact


def check_currency(currency: object) -> str:
    """Validate an ISO 4217 currency code (three upper-case letters) and return it.

    Raises:
        GatewayValidationError: ``currency`` is not three ASCII upper-case letters.
    """
    if not (
        isinstance(currency, str)
        and len(currency) == 3
        and currency.isascii()
        and currency.isalpha()
        and currency.isupper()
    ):
        raise GatewayValidationError("invalid_currency", f"invalid currency code: {currency!r}")
    return currency


def check_method(method: object) -> str:
    """Validate a payment method name and return it.

    Raises:
        GatewayValidationError: ``method`` is not one of :data:`PAYMENT_METHODS`.
    """
    if method not in PAYMENT_METHODS:
        raise GatewayValidationError(
            "unknown_method",
            f"unknown payment method {method!r}; expected one of {', '.join(PAYMENT_METHODS)}",
        )
    return str(method)


def check_idempotency_key(key: object) -> str:
    """Validate an idempotency key (1-255 printable ASCII characters) and return it.

    Raises:
        GatewayValidationError: the key is empty, too long or not printable ASCII.
    """
    if not (isinstance(key, str) and 0 < len(key) <= 255 and key.isascii() and key.isprintable()):
        raise GatewayValidationError(
            "invalid_idempotency_key", "idempotency key must be 1-255 printable ASCII characters"
        )
    return key
