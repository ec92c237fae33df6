"""Payment confirmations bound to the exact payment (PSD2-style dynamic linking).

When the assistant asks "Pay ¥153.02 for electricity (1 Oct – 31 Oct 2026) by
card?", it issues a *confirmation token*::

    <issued_at>.<nonce>.<binding hash>.<HMAC-SHA256 over the first three>

The binding hash covers the household, utility, amount, method and bill
period(s) shown. Pressing Pay sends the token back; it is accepted only if the
signature is valid, it is younger than the confirmation TTL (5 minutes by
default) and its binding hash equals the hash of the payment about to be made.
So any change (a new amount, another utility) invalidates the button.

The payment's idempotency key is derived from the token. A replayed or
double-pressed Pay button therefore carries the same key, and the billing
backend returns the first payment instead of charging again, even when two
workers handle the two presses at the same moment.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from billtalk.settings import get_settings

_CENT = Decimal("0.01")


class ConfirmationError(ValueError):
    """A confirmation token was refused.

    Attributes:
        reason: ``malformed``, ``bad_signature``, ``expired`` or ``mismatch``.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class PaymentBinding:
    """The values a confirmation is bound to."""

    household_id: str
    utility: str | None
    amount: Decimal
    method: str
    periods: tuple[str, ...]

    def digest(self) -> str:
        """A stable hash of the values (hex, 32 characters)."""
        canonical = json.dumps(
            {
                "household": self.household_id,
                "utility": self.utility,
                "amount": str(self.amount.quantize(_CENT)),
                "method": self.method,
                "periods": sorted(self.periods),
            },
            sort_keys=True,
            separators=(",", ":"),
        )
        return hashlib.sha256(canonical.encode()).hexdigest()[:32]


def _key() -> bytes:
    secret = get_settings().secret_key.encode()
    return hmac.new(secret, b"billtalk-dialogue-confirmation-v1", hashlib.sha256).digest()


def _mac(message: str) -> str:
    raw = hmac.new(_key(), message.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(raw[:18]).decode().rstrip("=")


def issue(binding: PaymentBinding, now: datetime) -> str:
    """Issue a confirmation token for ``binding`` at ``now``."""
    body = f"{int(now.timestamp())}.{secrets.token_hex(6)}.{binding.digest()}"
    return f"{body}.{_mac(body)}"


def check(token: str, binding: PaymentBinding, now: datetime, ttl: timedelta) -> None:
    """Accept ``token`` for ``binding`` at ``now`` or raise :class:`ConfirmationError`."""
    parts = token.split(".") if isinstance(token, str) else []
    if len(parts) != 4 or not parts[0].isdigit():
        raise ConfirmationError("malformed")
    body = ".".join(parts[:3])
    if not hmac.compare_digest(parts[3], _mac(body)):
        raise ConfirmationError("bad_signature")
    issued = datetime.fromtimestamp(int(parts[0]), UTC)
    if now - issued >= ttl or issued - now > timedelta(seconds=5):
        raise ConfirmationError("expired")
    if not hmac.compare_digest(parts[2], binding.digest()):
        raise ConfirmationError("mismatch")


def idempotency_key(token: str) -> str:
    """The payment idempotency key derived from a confirmation token."""
    return "dlg-" + hashlib.sha256(("idem:" + token).encode()).hexdigest()[:40]


def periods_of(allocations: Sequence[object]) -> tuple[str, ...]:
    """The bill periods a payment preview allocates to, as ``start/end`` strings."""
    out = []
    for a in allocations:
        start = getattr(a, "period_start", None)
        end = getattr(a, "period_end", None)
        if start is None and isinstance(a, tuple | list) and len(a) >= 4:
            start, end = a[2], a[3]
        out.append(f"{start}/{end}")
    return tuple(out)
