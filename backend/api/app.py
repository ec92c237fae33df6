"""The FastAPI application factory."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from backend.api.errors import error_response, install_error_handlers
from backend.api.routes import router
from backend.gateway import get_gateway
from backend.gateway.base import PaymentGateway
from backend.settings import BillingSettings, get_billing_settings
from billtalk.db import is_sqlite, make_engine
from billtalk.ratelimit import MemoryLimiter, get_limiter
from billtalk.settings import Settings, get_settings


class BodySizeLimit:
    """Refuse request bodies above ``limit`` bytes with 413 before they are parsed."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    too_big = int(value) > self.limit
                except ValueError:
                    too_big = True
                if too_big:
                    await self._refuse(scope, receive, send)
                    return
        # Buffer the body (it is small by definition) so the limit holds for chunked
        # uploads too, then replay it to the app as one message.
        chunks: list[bytes] = []
        seen = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                await self.app(scope, _replay([], message, receive), send)
                return
            body = message.get("body", b"")
            seen += len(body)
            if seen > self.limit:
                await self._refuse(scope, receive, send)
                return
            chunks.append(body)
            if not message.get("more_body", False):
                break
        await self.app(scope, _replay(chunks, None, receive), send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = error_response(
            413, "body_too_large", f"request bodies are limited to {self.limit} bytes"
        )
        await response(scope, receive, send)


def _replay(chunks: list[bytes], first: Message | None, upstream: Receive) -> Receive:
    """A ``receive`` that yields the buffered body once, then defers to the server."""
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if first is not None and not sent:
            sent = True
            return first
        if not sent:
            sent = True
            return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
        return await upstream()

    return receive


def create_app(
    settings: Settings | str | None = None,
    *,
    gateway: PaymentGateway | None = None,
    billing_settings: BillingSettings | None = None,
    migrate: bool = False,
) -> FastAPI:
    """Build the billing API.

    Args:
        settings: the process settings, or a database URL, or ``None`` for
            :func:`~billtalk.settings.get_settings`.
        gateway: the payment gateway (default: the configured one, ``sandbox``).
        billing_settings: billing knobs (default: from ``BILLTALK_BILLING_*``).
        migrate: run the billing migrations first.
    """
    url = settings if isinstance(settings, str) else (settings or get_settings()).database_url
    if migrate:
        from backend.bootstrap import ensure_database

        ensure_database(url)
    billing_settings = billing_settings or get_billing_settings()
    app = FastAPI(
        title="billtalk billing API",
        version="1.0.0",
        description=(
            "Balances, bills, payments, readings and the ledger of a residential community. "
            'Amounts are JSON strings with two decimal places ("12.34"); JSON numbers are '
            'refused with 422 invalid_amount. Errors are {"error": {"code", "message"}}.'
        ),
        openapi_url="/api/v1/openapi.json",
        docs_url="/api/v1/docs",
        redoc_url=None,
    )
    # Sync routes and in-process reads run in a thread pool (40 threads). Keep 16
    # connections (a pool of 10 made and dropped overflow connections all the time under
    # a Telegram worker's load) and allow 8 more: with the dialogue store's 16 a worker
    # process opens at most 40, so two workers stay well inside PostgreSQL's default
    # max_connections of 100. At 16 + 24 two workers could open 112, and under load
    # PostgreSQL refused them ("too many clients"); past 24 a request now waits for a
    # connection instead.
    app.state.engine = (
        make_engine(url) if is_sqlite(url) else make_engine(url, pool_size=16, max_overflow=8)
    )
    app.state.gateway = gateway or get_gateway()
    app.state.billing_settings = billing_settings
    app.state.limiter = (
        get_limiter(billing_settings.redis_url) if billing_settings.redis_url else MemoryLimiter()
    )
    app.state.database_url = url
    install_error_handlers(app)
    app.include_router(router)

    @app.get("/healthz", tags=["health"])
    def healthz() -> dict[str, Any]:
        """200 once the app is ready (and its database answers)."""
        from sqlalchemy import text

        with app.state.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return {"status": "ok"}

    app.add_middleware(BodySizeLimit, limit=billing_settings.max_body_bytes)
    return app
