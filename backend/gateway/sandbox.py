"""The deterministic sandbox gateway, billtalk's default.

The sandbox behaves like a card processor's test mode: the payment token (or test
card number) decides the outcome, so every path of the payment flow (success,
decline, insufficient funds, a timeout that settles later) can be driven from a
test, the terminal chat or the demo without a real provider.

=========================================  ==========================  =====================
Token / test card number                   :meth:`charge` returns      later :meth:`status`
=========================================  ==========================  =====================
``None`` (the saved default instrument)    succeeded                   succeeded
``tok_success``, ``tok_visa``,             succeeded                   succeeded
``4242424242424242``, ``5555555555554444``
``tok_decline``, ``4000000000000002``      failed ``card_declined``    failed
``tok_insufficient``, ``4000000000009995`` failed                      failed
                                           ``insufficient_funds``
``tok_expired``, ``4000000000000069``      failed ``expired_card``     failed
``tok_timeout``, ``4000000000000119``      pending ``timeout``         succeeded
``tok_timeout_decline``,                   pending ``timeout``         failed ``card_declined``
``4000000000000259``
any other Luhn-valid card number           succeeded                   succeeded
a card number failing the Luhn check       failed ``invalid_number``   failed
any other token                            failed ``invalid_token``    failed
=========================================  ==========================  =====================

**No state.** A reference is a pure function of the request and encodes its own
outcome, amount and currency, authenticated with an HMAC under a key derived from
``BILLTALK_SECRET_KEY``::

    sbx_ch_<outcome>_<amount in minor units>_<currency>_<request id>_<mac>

so :meth:`SandboxGateway.status` needs no table, survives restarts (the reconcile
command can run in a fresh process, days later) and cannot be fooled by a forged
reference. The same idempotency key with the same request gives the same
reference and the same result. Detecting "same key, different body" needs state
and is the billing service's job (its idempotency table), not the gateway's. The
sandbox likewise checks a refund against the one charge it refunds, but the sum of
several partial refunds is limited by the ledger, not here.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Final, Literal

from backend.gateway.base import (
    GatewayResult,
    GatewayStatus,
    GatewayValidationError,
    UnknownReferenceError,
    check_amount,
    check_currency,
    check_idempotency_key,
    check_method,
)
from backend.gateway.webhooks import event_for_result, sign_webhook

_Outcome = Literal["s", "d", "i", "e", "t", "u", "n", "x"]


@dataclass(frozen=True, slots=True)
class _Behaviour:
    at_charge: GatewayStatus
    charge_code: str | None
    final: GatewayStatus
    final_code: str | None


_BEHAVIOUR: Final[dict[str, _Behaviour]] = {
    "s": _Behaviour("succeeded", None, "succeeded", None),
    "d": _Behaviour("failed", "card_declined", "failed", "card_declined"),
    "i": _Behaviour("failed", "insufficient_funds", "failed", "insufficient_funds"),
    "e": _Behaviour("failed", "expired_card", "failed", "expired_card"),
    "t": _Behaviour("pending", "timeout", "succeeded", None),
    "u": _Behaviour("pending", "timeout", "failed", "card_declined"),
    "n": _Behaviour("failed", "invalid_number", "failed", "invalid_number"),
    "x": _Behaviour("failed", "invalid_token", "failed", "invalid_token"),
}

#: The documented test tokens and card numbers, and the outcome each one triggers.
TEST_TOKENS: Final[dict[str, str]] = {
    "tok_success": "s",
    "tok_visa": "s",
    "4242424242424242": "s",
    "5555555555554444": "s",
    "tok_decline": "d",
    "4000000000000002": "d",
    "tok_insufficient": "i",
    "4000000000009995": "i",
    "tok_expired": "e",
    "4000000000000069": "e",
    "tok_timeout": "t",
    "4000000000000119": "t",
    "tok_timeout_decline": "u",
    "4000000000000259": "u",
}

_MESSAGES: Final[dict[str | None, str]] = {
    None: "Payment approved.",
    "card_declined": "The card was declined.",
    "insufficient_funds": "The account has insufficient funds.",
    "expired_card": "The card has expired.",
    "timeout": "The payment provider did not answer in time; the payment is being checked.",
    "invalid_number": "The card number is not valid.",
    "invalid_token": "The payment instrument is not recognised.",
}

_REF_RE: Final = re.compile(
    r"^sbx_(?P<kind>ch|rf)_(?P<outcome>[sdietunx])_(?P<minor>[1-9][0-9]{0,11})_"
    r"(?P<currency>[A-Z]{3})_(?P<rid>[0-9a-f]{20})_(?P<mac>[0-9a-f]{24})$"
)
_CARD_CHARS_RE: Final = re.compile(r"^[0-9][0-9 -]{10,22}[0-9]$")


def luhn_valid(number: str) -> bool:
    """Whether the digit string ``number`` passes the Luhn checksum."""
    total = 0
    for i, ch in enumerate(reversed(number)):
        d = int(ch)
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def outcome_for_token(payment_token: str | None) -> str:
    """Return the sandbox outcome letter ``payment_token`` triggers (see the module table)."""
    if payment_token is None:
        return "s"
    token = payment_token.strip()
    if _CARD_CHARS_RE.match(token):
        digits = token.replace(" ", "").replace("-", "")
        if digits in TEST_TOKENS:
            return TEST_TOKENS[digits]
        if 12 <= len(digits) <= 19 and luhn_valid(digits):
            return "s"
        return "n"
    return TEST_TOKENS.get(token, "x")


class SandboxGateway:
    """A deterministic, stateless test gateway (see the module docstring for its tokens).

    Args:
        key: The HMAC key that authenticates references. Use
            ``derive_key("gateway-sandbox")`` (what :func:`~backend.gateway.get_gateway`
            does) so references stay valid across restarts of the same deployment.
    """

    name = "sandbox"

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("the sandbox key must be at least 16 bytes")
        self._key = key

    # -- the PaymentGateway protocol -------------------------------------------------

    def charge(
        self,
        *,
        amount: Decimal,
        currency: str,
        method: str,
        payment_token: str | None,
        idempotency_key: str,
    ) -> GatewayResult:
        """Charge ``amount``; the outcome is decided by ``payment_token``.

        See :meth:`backend.gateway.base.PaymentGateway.charge`.
        """
        amount = check_amount(amount)
        currency = check_currency(currency)
        method = check_method(method)
        idempotency_key = check_idempotency_key(idempotency_key)
        if payment_token is not None and not isinstance(payment_token, str):
            raise GatewayValidationError("invalid_token", "payment_token must be a string")
        outcome = outcome_for_token(payment_token)
        rid = self._digest(
            "charge", idempotency_key, str(amount), currency, method, payment_token or ""
        )[:20]
        reference = self._reference("ch", outcome, amount, currency, rid)
        behaviour = _BEHAVIOUR[outcome]
        return _result(behaviour.at_charge, reference, behaviour.charge_code, amount, currency)

    def status(self, reference: str) -> GatewayResult:
        """Return the settled state of ``reference``; a timed-out charge resolves here.

        See :meth:`backend.gateway.base.PaymentGateway.status`.
        """
        kind, outcome, amount, currency = self._parse(reference)
        if kind == "rf":
            return _result("succeeded", reference, None, amount, currency, refund=True)
        behaviour = _BEHAVIOUR[outcome]
        return _result(behaviour.final, reference, behaviour.final_code, amount, currency)

    def refund(self, reference: str, amount: Decimal, idempotency_key: str) -> GatewayResult:
        """Refund ``amount`` of the succeeded charge ``reference``.

        See :meth:`backend.gateway.base.PaymentGateway.refund`.
        """
        amount = check_amount(amount)
        idempotency_key = check_idempotency_key(idempotency_key)
        kind, outcome, charged, currency = self._parse(reference)
        if kind != "ch":
            raise GatewayValidationError("not_refundable", "a refund cannot be refunded")
        if _BEHAVIOUR[outcome].final != "succeeded":
            raise GatewayValidationError(
                "not_refundable", "only a succeeded charge can be refunded"
            )
        if amount > charged:
            raise GatewayValidationError(
                "refund_exceeds_charge", f"refund {amount} exceeds the charge of {charged}"
            )
        rid = self._digest("refund", reference, idempotency_key, str(amount))[:20]
        refund_ref = self._reference("rf", "s", amount, currency, rid)
        return _result("succeeded", refund_ref, None, amount, currency, refund=True)

    def webhook(
        self, reference: str, *, secret: bytes | str | None = None, timestamp: int | None = None
    ) -> tuple[bytes, str]:
        """Build the signed webhook the sandbox would send about ``reference``.

        Use it to drive the webhook route in tests and demos exactly as a provider
        would: POST the body with the header as ``X-Billtalk-Signature``.

        Args:
            reference: A charge or refund reference issued by this gateway.
            secret: The webhook secret; ``None`` uses the configured one.
            timestamp: Unix seconds to sign (default: now).

        Returns:
            ``(body, signature_header)``.
        """
        result = self.status(reference)
        created = datetime.fromtimestamp(timestamp, UTC) if timestamp is not None else None
        event = event_for_result(result, created_at=created, refund=reference.startswith("sbx_rf_"))
        body = event.to_body()
        return body, sign_webhook(body, secret, timestamp)

    # -- references -----------------------------------------------------------------

    def _digest(self, *parts: str) -> str:
        msg = "\x1f".join(parts).encode("utf-8")
        return hmac.new(self._key, msg, hashlib.sha256).hexdigest()

    def _reference(self, kind: str, outcome: str, amount: Decimal, currency: str, rid: str) -> str:
        minor = int(amount * 100)
        body = f"{kind}_{outcome}_{minor}_{currency}_{rid}"
        return f"sbx_{body}_{self._digest('reference', body)[:24]}"

    def _parse(self, reference: str) -> tuple[str, str, Decimal, str]:
        m = _REF_RE.match(reference) if isinstance(reference, str) else None
        if m is None:
            raise UnknownReferenceError("unknown_reference", "not a sandbox reference")
        body = reference[len("sbx_") : -len("_" + m["mac"])]
        expected = self._digest("reference", body)[:24]
        if not hmac.compare_digest(expected, m["mac"]):
            raise UnknownReferenceError(
                "unknown_reference", "the reference was not issued by this gateway"
            )
        return m["kind"], m["outcome"], Decimal(m["minor"]).scaleb(-2), m["currency"]


def _result(
    status: GatewayStatus,
    reference: str,
    code: str | None,
    amount: Decimal,
    currency: str,
    *,
    refund: bool = False,
) -> GatewayResult:
    message = "Refund issued." if refund else _MESSAGES[code]
    return GatewayResult(
        status=status,
        reference=reference,
        failure_code=code,
        message=message,
        amount=amount,
        currency=currency,
    )
