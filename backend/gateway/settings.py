"""Settings of the payment gateway adapter (``BILLTALK_GATEWAY_*``)."""

from __future__ import annotations

import hashlib
import hmac
from functools import lru_cache

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from billtalk.settings import get_settings


class GatewaySettings(BaseSettings):
    """Knobs of the payment gateway, read from ``BILLTALK_GATEWAY_*`` variables.

    Attributes:
        name: Which gateway :func:`~backend.gateway.get_gateway` builds by default.
        webhook_secret: The shared secret of webhook signatures. Empty (the default)
            derives one from ``BILLTALK_SECRET_KEY``; set it when the provider issues
            its own secret.
        webhook_tolerance_s: How old (or how far in the future) a webhook's signed
            timestamp may be before it is rejected as a replay.
    """

    model_config = SettingsConfigDict(
        env_prefix="BILLTALK_GATEWAY_", env_file=".env", extra="ignore", frozen=True
    )

    name: str = "sandbox"
    webhook_secret: str = Field(default="", repr=False)
    webhook_tolerance_s: int = Field(default=300, ge=1, le=86_400)


@lru_cache(maxsize=1)
def get_gateway_settings() -> GatewaySettings:
    """Return the gateway settings, read once from the environment."""
    return GatewaySettings()


def derive_key(purpose: str, secret_key: str | None = None) -> bytes:
    """Derive a 32-byte key for one ``purpose`` from ``BILLTALK_SECRET_KEY``.

    Separate purposes (webhook signing, sandbox references) get unrelated keys, so
    a key leaked or misused in one place cannot forge the other.

    Args:
        purpose: A short label, e.g. ``"gateway-webhook"``.
        secret_key: The root secret; ``None`` reads ``BILLTALK_SECRET_KEY``.
    """
    root = secret_key if secret_key is not None else get_settings().secret_key
    return hmac.new(
        root.encode("utf-8"), f"billtalk/{purpose}/v1".encode(), hashlib.sha256
    ).digest()


def webhook_secret(settings: GatewaySettings | None = None) -> bytes:
    """The key webhook bodies are signed with (see :mod:`backend.gateway.webhooks`)."""
    settings = settings or get_gateway_settings()
    if settings.webhook_secret:
        return settings.webhook_secret.encode("utf-8")
    return derive_key("gateway-webhook")
