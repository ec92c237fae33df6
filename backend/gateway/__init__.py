"""Payment gateway adapters.

The billing services charge, look up and refund payments through a
:class:`PaymentGateway`; :func:`get_gateway` builds the configured one
(``BILLTALK_GATEWAY_NAME``, default ``sandbox``). Gateway webhooks are verified
with :func:`parse_webhook`. See ``docs/gateway.md`` for the design.

Example::

    from decimal import Decimal
    from backend.gateway import get_gateway

    gateway = get_gateway()
    result = gateway.charge(amount=Decimal("120.00"), currency="CNY", method="card",
                            payment_token="tok_success", idempotency_key="pay-42")
    assert result.status == "succeeded"
"""

from __future__ import annotations

from collections.abc import Callable

from backend.gateway.base import (
    PAYMENT_METHODS,
    GatewayError,
    GatewayResult,
    GatewayStatus,
    GatewayValidationError,
    PaymentGateway,
    UnknownReferenceError,
    check_amount,
)
from backend.gateway.sandbox import TEST_TOKENS, SandboxGateway
from backend.gateway.settings import GatewaySettings, derive_key, get_gateway_settings
from backend.gateway.webhooks import (
    SIGNATURE_HEADER,
    WebhookError,
    WebhookEvent,
    WebhookPayloadError,
    WebhookSignatureError,
    event_for_result,
    parse_webhook,
    sign_webhook,
    verify_signature,
)

__all__ = [
    "PAYMENT_METHODS",
    "SIGNATURE_HEADER",
    "TEST_TOKENS",
    "GatewayError",
    "GatewayResult",
    "GatewaySettings",
    "GatewayStatus",
    "GatewayValidationError",
    "PaymentGateway",
    "SandboxGateway",
    "UnknownReferenceError",
    "WebhookError",
    "WebhookEvent",
    "WebhookPayloadError",
    "WebhookSignatureError",
    "available_gateways",
    "check_amount",
    "event_for_result",
    "get_gateway",
    "get_gateway_settings",
    "parse_webhook",
    "register_gateway",
    "sign_webhook",
    "verify_signature",
]

_FACTORIES: dict[str, Callable[[], PaymentGateway]] = {
    "sandbox": lambda: SandboxGateway(derive_key("gateway-sandbox")),
}


def register_gateway(name: str, factory: Callable[[], PaymentGateway]) -> None:
    """Make a gateway implementation available to :func:`get_gateway` under ``name``.

    Args:
        name: The value of ``BILLTALK_GATEWAY_NAME`` that selects it.
        factory: Builds the gateway (reading its own settings, credentials...).
    """
    _FACTORIES[name] = factory


def available_gateways() -> list[str]:
    """Names :func:`get_gateway` accepts."""
    return sorted(_FACTORIES)


def get_gateway(name: str | None = None) -> PaymentGateway:
    """Build the payment gateway called ``name``.

    Args:
        name: A registered gateway name; ``None`` uses ``BILLTALK_GATEWAY_NAME``
            (default ``"sandbox"``).

    Raises:
        ValueError: no gateway of that name is registered.
    """
    chosen = name if name is not None else get_gateway_settings().name
    try:
        factory = _FACTORIES[chosen]
    except KeyError:
        raise ValueError(
            f"unknown payment gateway {chosen!r}; available: {', '.join(available_gateways())}"
        ) from None
    return factory()
