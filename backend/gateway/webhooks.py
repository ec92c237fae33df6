"""Signed gateway webhooks: HMAC-SHA256 over a timestamp and the raw body.

A gateway tells billtalk that a payment settled by POSTing a JSON event to
``/api/v1/gateway/webhook`` with the header::

    X-Billtalk-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>

The MAC covers ``"<t>." + raw body`` under the webhook secret
(``BILLTALK_GATEWAY_WEBHOOK_SECRET``, or a key derived from ``BILLTALK_SECRET_KEY``).
:func:`parse_webhook` checks it in constant time, rejects timestamps further than
the tolerance (300 s by default) from now, in either direction, so a captured
request cannot be replayed later, and only then parses the body. Several ``v1=``
entries are accepted (secret rotation: any one matching is enough).

Replays *within* the tolerance window carry the same ``event_id``; the route
stores processed event ids and ignores repeats, so each event is applied once.

Body format::

    {"id": "evt_...", "type": "charge.succeeded", "created": 1700000000,
     "data": {"reference": "sbx_...", "status": "succeeded", "failure_code": null,
              "amount": "12.34", "currency": "CNY"}}

Amounts are decimal strings; a JSON number is rejected like any malformed body.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Final, get_args

from backend.gateway.base import GatewayResult, GatewayStatus
from backend.gateway.settings import get_gateway_settings, webhook_secret

#: The HTTP header that carries the signature.
SIGNATURE_HEADER: Final = "X-Billtalk-Signature"

#: The largest webhook body accepted, in bytes.
MAX_BODY_BYTES: Final = 64 * 1024

#: The event types a gateway sends.
EVENT_TYPES: Final = (
    "charge.succeeded",
    "charge.failed",
    "charge.pending",
    "refund.succeeded",
    "refund.failed",
)


class WebhookError(ValueError):
    """Base class of webhook rejections; ``code`` is stable and machine-readable.

    Args:
        code: e.g. ``"signature_mismatch"``, ``"timestamp_out_of_tolerance"``.
        message: A human-readable explanation (never contains the secret).
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class WebhookSignatureError(WebhookError):
    """The signature header is missing, malformed, stale or does not match the body.

    Answer 400 (or 401) and apply nothing.
    """


class WebhookPayloadError(WebhookError):
    """The signature is valid but the body is not a well-formed event."""


@dataclass(frozen=True, slots=True)
class WebhookEvent:
    """A verified gateway notification.

    Attributes:
        event_id: Unique id of the event; redeliveries of one event share it, so
            store it to apply each event once.
        type: One of :data:`EVENT_TYPES`.
        reference: The gateway reference of the charge or refund.
        status: ``"succeeded"``, ``"failed"`` or ``"pending"``.
        failure_code: Why it failed, or ``None``.
        amount: The amount, as an exact ``Decimal``.
        currency: ISO 4217 code.
        created_at: When the gateway created the event (UTC).
    """

    event_id: str
    type: str
    reference: str
    status: GatewayStatus
    failure_code: str | None
    amount: Decimal
    currency: str
    created_at: datetime

    def to_body(self) -> bytes:
        """Serialise the event to the JSON body a gateway POSTs (compact, UTF-8)."""
        payload = {
            "id": self.event_id,
            "type": self.type,
            "created": int(self.created_at.timestamp()),
            "data": {
                "reference": self.reference,
                "status": self.status,
                "failure_code": self.failure_code,
                "amount": f"{self.amount:.2f}",
                "currency": self.currency,
            },
        }
        return json.dumps(payload, separators=(",", ":"), sort_keys=True).encode("utf-8")


def event_for_result(
    result: GatewayResult, *, created_at: datetime | None = None, refund: bool = False
) -> WebhookEvent:
    """Build the event a gateway sends about ``result``.

    The ``event_id`` is derived from the reference and status, so notifying the
    same outcome twice yields the same id (and is applied once).

    Args:
        result: The charge or refund outcome to announce.
        created_at: Event time (default: now, UTC).
        refund: Whether ``result`` is a refund rather than a charge.
    """
    kind = "refund" if refund else "charge"
    digest = hashlib.sha256(f"{result.reference}\x1f{result.status}".encode()).hexdigest()
    return WebhookEvent(
        event_id=f"evt_{digest[:24]}",
        type=f"{kind}.{result.status}",
        reference=result.reference,
        status=result.status,
        failure_code=result.failure_code,
        amount=result.amount,
        currency=result.currency,
        created_at=(created_at or datetime.now(UTC)).replace(microsecond=0),
    )


def _key(secret: bytes | str | None) -> bytes:
    if secret is None:
        return webhook_secret()
    return secret.encode("utf-8") if isinstance(secret, str) else secret


def _mac(key: bytes, timestamp: int, body: bytes) -> str:
    return hmac.new(key, str(timestamp).encode("ascii") + b"." + body, hashlib.sha256).hexdigest()


def _unix(now: datetime | float | None) -> int:
    if now is None:
        return int(time.time())
    if isinstance(now, datetime):
        if now.tzinfo is None:
            raise ValueError("now must be timezone-aware")
        return int(now.timestamp())
    return int(now)


def sign_webhook(
    body: bytes, secret: bytes | str | None = None, timestamp: int | None = None
) -> str:
    """Return the ``X-Billtalk-Signature`` header value for ``body``.

    Gateways (and tests) use this to sign what they send.

    Args:
        body: The exact bytes that will be POSTed.
        secret: The webhook secret; ``None`` uses the configured one.
        timestamp: Unix seconds to sign (default: now).

    Returns:
        ``"t=<timestamp>,v1=<hex>"``.
    """
    ts = int(time.time()) if timestamp is None else int(timestamp)
    return f"t={ts},v1={_mac(_key(secret), ts, body)}"


def _parse_header(header: str) -> tuple[int, list[str]]:
    timestamp: int | None = None
    signatures: list[str] = []
    for part in header.split(","):
        name, sep, value = part.strip().partition("=")
        if not sep:
            raise WebhookSignatureError("malformed_signature", "malformed signature header")
        if name == "t":
            if timestamp is not None or not value.isascii() or not value.isdigit():
                raise WebhookSignatureError("malformed_signature", "malformed timestamp")
            timestamp = int(value)
        elif name == "v1":
            signatures.append(value)
        # other schemes (v0...) are ignored, as providers add them over time
    if timestamp is None or not signatures:
        raise WebhookSignatureError(
            "malformed_signature", "signature header needs t= and at least one v1="
        )
    return timestamp, signatures


def verify_signature(
    body: bytes,
    header: str | None,
    *,
    secret: bytes | str | None = None,
    now: datetime | float | None = None,
    tolerance_s: int | None = None,
) -> int:
    """Check the signature header of ``body``; return the signed timestamp.

    Args:
        body: The raw request body, exactly as received.
        header: The ``X-Billtalk-Signature`` value (``None`` if absent).
        secret: The webhook secret; ``None`` uses the configured one.
        now: The current time (aware ``datetime`` or unix seconds); default now.
        tolerance_s: Maximum age (and future skew) of the timestamp; ``None`` uses
            ``BILLTALK_GATEWAY_WEBHOOK_TOLERANCE_S``.

    Raises:
        WebhookSignatureError: missing or malformed header, stale or future
            timestamp, or no ``v1`` signature matches.
    """
    if not header:
        raise WebhookSignatureError("missing_signature", f"missing {SIGNATURE_HEADER} header")
    if len(header) > 2048:
        raise WebhookSignatureError("malformed_signature", "signature header too long")
    timestamp, signatures = _parse_header(header)
    tolerance = get_gateway_settings().webhook_tolerance_s if tolerance_s is None else tolerance_s
    if abs(_unix(now) - timestamp) > tolerance:
        raise WebhookSignatureError(
            "timestamp_out_of_tolerance",
            f"signature timestamp is more than {tolerance} s from now (replay?)",
        )
    expected = _mac(_key(secret), timestamp, body)
    matched = False
    for candidate in signatures:
        # compare every candidate, always, so timing does not reveal which one matched
        matched |= hmac.compare_digest(expected, candidate.lower())
    if not matched:
        raise WebhookSignatureError("signature_mismatch", "webhook signature does not match")
    return timestamp


def parse_webhook(
    body: bytes,
    header: str | None,
    now: datetime | float | None = None,
    *,
    secret: bytes | str | None = None,
    tolerance_s: int | None = None,
) -> WebhookEvent:
    """Verify and parse a gateway webhook.

    The signature is checked before the body is even decoded.

    Args:
        body: The raw request body.
        header: The ``X-Billtalk-Signature`` header value.
        now: The current time (aware ``datetime`` or unix seconds); default now.
        secret: The webhook secret; ``None`` uses the configured one.
        tolerance_s: Timestamp tolerance; ``None`` uses the setting.

    Returns:
        The verified :class:`WebhookEvent`.

    Raises:
        WebhookSignatureError: the signature is missing, malformed, stale or wrong.
        WebhookPayloadError: the body is too large or not a well-formed event.
    """
    if not isinstance(body, bytes | bytearray):
        raise TypeError("body must be the raw bytes of the request")
    if len(body) > MAX_BODY_BYTES:
        raise WebhookPayloadError("body_too_large", f"webhook body exceeds {MAX_BODY_BYTES} bytes")
    verify_signature(bytes(body), header, secret=secret, now=now, tolerance_s=tolerance_s)
    return _parse_event(bytes(body))


def _fail(message: str) -> WebhookPayloadError:
    return WebhookPayloadError("invalid_event", message)


def _str(obj: dict[str, Any], name: str, *, max_len: int = 255) -> str:
    value = obj.get(name)
    if not isinstance(value, str) or not 0 < len(value) <= max_len:
        raise _fail(f"{name} must be a non-empty string")
    return value


def _parse_event(body: bytes) -> WebhookEvent:
    try:
        payload = json.loads(body.decode("utf-8"), parse_float=Decimal)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _fail("body is not valid UTF-8 JSON") from exc
    if not isinstance(payload, dict) or not isinstance(payload.get("data"), dict):
        raise _fail("body must be an object with a data object")
    data: dict[str, Any] = payload["data"]
    event_type = _str(payload, "type")
    if event_type not in EVENT_TYPES:
        raise _fail(f"unknown event type {event_type!r}")
    status = _str(data, "status")
    if status not in get_args(GatewayStatus):
        raise _fail(f"unknown status {status!r}")
    created = payload.get("created")
    if isinstance(created, bool) or not isinstance(created, int) or created < 0:
        raise _fail("created must be unix seconds (an integer)")
    amount_raw = data.get("amount")
    if not isinstance(amount_raw, str):
        raise _fail('amount must be a decimal string such as "12.34"')
    try:
        amount = Decimal(amount_raw)
    except InvalidOperation as exc:
        raise _fail("amount is not a decimal number") from exc
    if not amount.is_finite() or amount < 0 or amount != amount.quantize(Decimal("0.01")):
        raise _fail("amount must be a non-negative decimal with at most two places")
    failure_code = data.get("failure_code")
    if failure_code is not None and not isinstance(failure_code, str):
        raise _fail("failure_code must be a string or null")
    currency = _str(data, "currency", max_len=3)
    try:
        created_at = datetime.fromtimestamp(created, UTC)
    except (OverflowError, OSError, ValueError) as exc:
        raise _fail("created is out of range") from exc
    return WebhookEvent(
        event_id=_str(payload, "id"),
        type=event_type,
        reference=_str(data, "reference"),
        status=status,  # type: ignore[arg-type]  # checked against GatewayStatus above
        failure_code=failure_code,
        amount=amount.quantize(Decimal("0.01")),
        currency=currency,
        created_at=created_at,
    )
