"""The Telegram webhook: ``POST /telegram/webhook`` in the product's ASGI app.

``billtalk serve`` mounts this module (``app.web.WEB_MODULES``). With
``BILLTALK_TELEGRAM_TOKEN`` unset, :func:`mount` adds nothing and the rest of
the app runs as before. With a token, the route:

* answers 403 unless the request carries ``X-Telegram-Bot-Api-Secret-Token``
  equal to the webhook secret (:func:`webhook_secret`: ``BILLTALK_TELEGRAM_WEBHOOK_SECRET``,
  or derived from ``BILLTALK_SECRET_KEY`` and the bot id, so every worker and
  ``billtalk telegram set-webhook`` agree on it without sharing a file);
* handles the update (its turn, its replies) before answering 200. If the
  worker dies first, Telegram redelivers; the engine records each update's
  delivery id with its turn, so the redelivery (or the same update reaching
  another worker) acts once;
* except a voice note, audio, photo, video (note) or document (``early_ack``,
  on by default): answered 200 as soon as the update is claimed in the ledger
  with its raw JSON, its turn finished in the background. A voice note decodes
  for seconds, and while it held its request (one of Telegram's at most 100
  connections to the webhook) other chats' text updates queued behind it.
  Telegram never redelivers an update it got 200 for, so the ledger does: each
  worker renews the claims it holds and takes over acknowledged claims gone
  stale (:meth:`~bot.channels.telegram.app.TelegramRuntime.sweep`). A later
  update of the same chat still waits for the voice note (the chat's lock in
  this worker, its claim in the ledger for the others).

Several worker processes may serve the route at once: each runs its own
application and outbox sender; chat order and exactly-once go through the
database (:mod:`bot.channels.telegram.ledger`).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from billtalk.logs import get_logger
from bot.channels.telegram.settings import TelegramSettings, get_telegram_settings

log = get_logger("bot.channels.telegram.webhook")
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
EngineFactory = Callable[[], Awaitable[Any]]


def webhook_secret(settings: TelegramSettings, secret_key: str | None = None) -> str:
    """The webhook's secret token: the configured one, or HMAC(secret key, bot id) in hex."""
    if settings.webhook_secret:
        return settings.webhook_secret
    if secret_key is None:
        from billtalk.settings import get_settings

        secret_key = get_settings().secret_key
    bot_id = settings.token.split(":", 1)[0]
    return hmac.new(
        secret_key.encode(), f"telegram-webhook:{bot_id}".encode(), hashlib.sha256
    ).hexdigest()


class WebhookService:
    """The bot behind the webhook route, started with the app (or on the first update).

    Args:
        settings: Telegram settings (a token is required).
        engine_factory: Builds the dialogue engine (default: ``DialogueEngine.embedded``
            on ``database_url``).
        database_url: The database of the embedded engine.
        outbox: Whether this worker also runs the outbox sender for Telegram.
    """

    def __init__(
        self,
        settings: TelegramSettings,
        *,
        engine_factory: EngineFactory | None = None,
        database_url: str | None = None,
        outbox: bool = True,
    ) -> None:
        self.settings = settings
        self.secret = webhook_secret(settings)
        self.database_url = database_url
        self.engine_factory = engine_factory
        self.outbox = outbox
        self.runtime: Any = None
        self._engine: Any = None
        self._lock = asyncio.Lock()

    async def start(self) -> Any:
        """Build the engine and the PTB application (``getMe``, commands, outbox sender)."""
        async with self._lock:
            if self.runtime is not None:
                return self.runtime
            from bot.channels.telegram.app import TelegramRuntime

            if self.engine_factory is not None:
                self._engine = await self.engine_factory()
            else:
                from bot.engine import DialogueEngine

                self._engine = await DialogueEngine.embedded(self.database_url)
            runtime = TelegramRuntime(
                self._engine, self.settings, polling=False, outbox=self.outbox
            )
            await runtime.start()
            self.runtime = runtime
            return runtime

    async def stop(self) -> None:
        """Stop the application and the outbox sender."""
        async with self._lock:
            if self.runtime is not None:
                await self.runtime.stop()
                self.runtime = None
            if self._engine is not None and self.engine_factory is None:
                aclose = getattr(self._engine.billing, "aclose", None)
                if aclose is not None:
                    await aclose()
                self._engine = None

    def stats(self) -> dict[str, int]:
        """Counters of this worker: updates handled since it started, turns running in the
        background now, NLU cache use."""
        runtime = self.runtime
        if runtime is None:
            return {"updates_handled": 0}
        return {
            "updates_handled": runtime.adapter.handled,
            "background_turns": len(runtime.background),
            **runtime.engine.nlu_cache_stats(),
        }

    async def handle(self, request: Request) -> Response:
        """The route: check the secret, handle the update, answer."""
        given = request.headers.get(SECRET_HEADER, "")
        if not given or not hmac.compare_digest(given.encode(), self.secret.encode()):
            log.warning("telegram_webhook_forbidden", has_header=bool(given))
            return JSONResponse(
                {"error": {"code": "forbidden", "message": "missing or wrong secret token"}},
                status_code=403,
            )
        try:
            data = json.loads(await request.body())
            if not isinstance(data, dict) or not isinstance(data.get("update_id"), int):
                raise ValueError("not an update")
        except ValueError:
            return JSONResponse(
                {"error": {"code": "bad_update", "message": "the body is not a Telegram update"}},
                status_code=400,
            )
        runtime = self.runtime or await self.start()
        if runtime.acks_early(data):  # answered once claimed; the turn goes on
            await runtime.process_early(data)
        else:
            await runtime.process(data)
        return Response(status_code=200)


def mount(
    app: FastAPI,
    *,
    settings: TelegramSettings | None = None,
    engine_factory: EngineFactory | None = None,
    database_url: str | None = None,
) -> WebhookService | None:
    """Add ``POST {webhook_path}`` to ``app`` and start the bot with the app.

    Without a token nothing is added (``billtalk serve`` runs without Telegram).
    """
    settings = settings or get_telegram_settings()
    if not settings.token:
        log.info("telegram_webhook_disabled", reason="BILLTALK_TELEGRAM_TOKEN is not set")
        return None
    from bot.channels.telegram.masking import install_token_masking

    url = database_url or getattr(app.state, "database_url", None)
    service = WebhookService(settings, engine_factory=engine_factory, database_url=url)
    install_token_masking(settings.token, service.secret)
    app.state.telegram = service
    app.add_api_route(
        settings.webhook_path, service.handle, methods=["POST"], include_in_schema=False
    )
    previous = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(a: Any) -> AsyncIterator[Any]:
        async with previous(a) as state:
            await service.start()
            try:
                yield state
            finally:
                await service.stop()

    app.router.lifespan_context = lifespan
    return service


def create_app(
    settings: TelegramSettings | None = None, database_url: str | None = None
) -> FastAPI:
    """An app with only the webhook and ``/healthz`` (``billtalk telegram run --mode webhook``)."""
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    service = mount(app, settings=settings, database_url=database_url)
    if service is None:
        raise RuntimeError("BILLTALK_TELEGRAM_TOKEN is not set")

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        return {"status": "ok", **service.stats()}

    return app


__all__ = ["SECRET_HEADER", "WebhookService", "create_app", "mount", "webhook_secret"]
