"""Building and running the python-telegram-bot ``Application`` for billtalk.

:func:`build_application` wires PTB to the settings: the token, ``base_url``
and ``base_file_url`` (``BILLTALK_TELEGRAM_API_URL`` / ``_FILE_URL``, so the
stand-in in the tests or a self-hosted Bot API server work like the real one),
``AIORateLimiter`` for sends (429 ``RetryAfter`` waited out), timeouts, and
concurrent update processing that keeps each chat in order.

:class:`TelegramRuntime` is one running bot: the application, the adapter, and
the outbox sender that delivers pushed messages (reminders, staff replies) to
Telegram chats. :func:`run_polling` is ``billtalk telegram run --mode polling``:
``getMe``, ``deleteWebhook``, then ``getUpdates`` until stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any

from telegram import Update
from telegram.error import TelegramError
from telegram.ext import AIORateLimiter, Application, ApplicationBuilder, ExtBot
from telegram.request import HTTPXRequest

from billtalk.logs import get_logger
from bot.channels.telegram.adapter import (
    ChatOrderedUpdateProcessor,
    EarlyAck,
    TelegramAdapter,
    chat_key,
)
from bot.channels.telegram.channel import NAME
from bot.channels.telegram.masking import install_token_masking, mask_token
from bot.channels.telegram.settings import TelegramSettings

if TYPE_CHECKING:
    from bot.engine import DialogueEngine

log = get_logger("bot.channels.telegram")
#: The message fields of updates the webhook may acknowledge before their turn is done:
#: media that are downloaded, then decoded or checked for a face (seconds, not milliseconds).
EARLY_ACK_FIELDS = frozenset({"voice", "audio", "video_note", "video", "photo", "document"})
#: How long a stopping worker lets its background turns finish before cancelling them (a
#: cancelled turn's claim stays, for a live worker to take over once stale).
BACKGROUND_DRAIN_S = 15.0


def _discard(items: set[int], item: int, _task: object) -> None:
    items.discard(item)


class MissingTokenError(RuntimeError):
    """``BILLTALK_TELEGRAM_TOKEN`` is not set."""


def parse_update(data: dict[str, Any], bot: Any) -> Update:
    """``data`` as an :class:`Update`; one PTB cannot parse becomes an empty update of its id.

    A newer Bot API may send fields this PTB version does not know, or a field it
    requires may be missing. Such an update is still claimed, logged and answered
    as "nothing to do", instead of failing again on every poll and blocking every
    later update.
    """
    try:
        update = Update.de_json(data, bot)
    except Exception as exc:
        log.warning(
            "telegram_update_unparsed", update_id=data.get("update_id"), error=type(exc).__name__
        )
        update = None
    if update is None:
        chat: dict[str, Any] = {}
        sender: dict[str, Any] = {}
        for value in data.values():
            if isinstance(value, dict) and isinstance(value.get("chat"), dict):
                chat = value["chat"]
                found = value.get("from")
                sender = found if isinstance(found, dict) else {}
        extra = {}
        if chat.get("type") == "private" and isinstance(chat.get("id"), int):
            extra = {
                "unparsed_private_chat": chat["id"],
                "unparsed_language_code": sender.get("language_code"),
            }
        update = Update(update_id=int(data["update_id"]), api_kwargs=extra)
        update.set_bot(bot)
    return update


class LenientBot(ExtBot[Any]):
    """PTB's bot, except that an unparsable update does not wedge polling (:func:`parse_update`)."""

    async def get_updates(self, *args: Any, **kwargs: Any) -> tuple[Update, ...]:
        """``getUpdates``; when PTB fails to parse the batch, each update is parsed alone."""
        try:
            return await super().get_updates(*args, **kwargs)
        except TelegramError:
            raise
        except Exception:  # a parse error: fetch the same batch raw, parse one by one
            names = ("offset", "limit", "timeout", "allowed_updates")
            params = dict(zip(names, args, strict=False))
            params.update({k: v for k, v in kwargs.items() if k in names})
            params["timeout"] = 0
            raw = await self.do_api_request(
                "getUpdates", api_kwargs={k: v for k, v in params.items() if v is not None}
            )
            return tuple(parse_update(item, self) for item in raw or [])


def build_application(
    adapter: TelegramAdapter, settings: TelegramSettings, *, polling: bool = True
) -> Application:
    """The PTB application for ``adapter``'s bot (handlers attached; not yet initialised).

    Raises:
        MissingTokenError: No token is configured.
    """
    if not settings.token:
        raise MissingTokenError(
            "BILLTALK_TELEGRAM_TOKEN is not set: create a bot with @BotFather and export its token"
        )
    install_token_masking(settings.token, settings.webhook_secret)
    timeout = settings.request_timeout_s
    bot = LenientBot(
        settings.token,
        base_url=settings.api_url,
        base_file_url=settings.file_url,
        request=HTTPXRequest(
            connection_pool_size=max(8, settings.concurrent_updates),
            connect_timeout=timeout,
            read_timeout=timeout,
            write_timeout=timeout,
            pool_timeout=timeout,
        ),
        get_updates_request=HTTPXRequest(
            connection_pool_size=1,
            connect_timeout=timeout,
            read_timeout=settings.poll_timeout_s + timeout,
            write_timeout=timeout,
            pool_timeout=timeout,
        ),
        rate_limiter=AIORateLimiter(
            overall_max_rate=settings.max_sends_per_s,
            overall_time_period=1,
            max_retries=settings.max_retries,
        ),
    )
    builder: ApplicationBuilder = (
        Application.builder()
        .bot(bot)
        .concurrent_updates(
            ChatOrderedUpdateProcessor(settings.concurrent_updates, adapter.sequencer)
        )
    )
    if not polling:
        builder = builder.updater(None)
    application = builder.build()
    adapter.attach(application)
    return application


class TelegramRuntime:
    """A running bot: PTB application, adapter and the outbox sender for pushed messages.

    Args:
        engine: The dialogue engine.
        settings: Telegram settings.
        polling: Whether updates come from ``getUpdates`` (else from the webhook route).
        outbox: Whether to run the outbox sender for the ``telegram`` channel.
    """

    def __init__(
        self,
        engine: DialogueEngine,
        settings: TelegramSettings,
        *,
        polling: bool = True,
        outbox: bool = True,
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.adapter = TelegramAdapter(engine, settings)
        self.application = build_application(self.adapter, settings, polling=polling)
        self.polling = polling
        self.outbox = outbox
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[Any]] = []
        #: Turns running without a webhook request waiting (acknowledged early, taken over).
        self.background: set[asyncio.Task[Any]] = set()
        self._taking_over: set[int] = set()

    @property
    def bot(self) -> Any:
        """The PTB bot."""
        return self.application.bot

    async def start(self) -> None:
        """``getMe``, the command menu, then (polling) ``deleteWebhook`` and ``getUpdates``."""
        if self.settings.threads > 0:
            asyncio.get_running_loop().set_default_executor(
                ThreadPoolExecutor(self.settings.threads, thread_name_prefix="telegram")
            )
        self.engine.serve_voice_from_processes()
        await self.application.initialize()
        await self.adapter.set_commands(self.application.bot)
        await self._warm_up()
        await self.application.start()
        if self.polling:
            updater = self.application.updater
            assert updater is not None
            await updater.start_polling(
                timeout=self.settings.poll_timeout_s,
                allowed_updates=Update.ALL_TYPES,
                drop_pending_updates=False,
            )
        if self.outbox:
            self._tasks.append(asyncio.create_task(self._run_outbox(), name="telegram-outbox"))
        if self.settings.notice_poll_s > 0:
            self._tasks.append(asyncio.create_task(self._run_notices(), name="telegram-notices"))
        if self.settings.keep_handled_h > 0:
            self._tasks.append(
                asyncio.create_task(self._run_housekeeping(), name="telegram-housekeeping")
            )
        if not self.polling:
            self._tasks.append(asyncio.create_task(self._run_claims(), name="telegram-claims"))
        log.info(
            "telegram_started",
            mode="polling" if self.polling else "webhook",
            bot=self.application.bot.username,
        )

    async def _warm_up(self) -> None:
        """Parse one message before the first resident's: the NLU loads its encoder lazily."""
        parse = getattr(self.engine.nlu, "parse", None)
        if parse is None:
            return
        try:
            await asyncio.to_thread(parse, "how much do I owe?")
        except Exception as exc:  # a warm-up failure shows in the first real turn instead
            log.warning("telegram_warm_up_failed", error=type(exc).__name__)

    async def _run_outbox(self) -> None:
        try:
            from bot.outbox import OutboxSender
        except ImportError:  # the push path is not available in this build
            log.warning("telegram_outbox_unavailable")
            return
        assert self.adapter.channel is not None
        sender = OutboxSender(self.engine.store, channels={"telegram": self.adapter.channel})
        while not self._stop.is_set():
            try:
                await sender.run(self._stop, every_s=self.settings.outbox_poll_s)
            except Exception as exc:  # the sender must not die with one bad row
                log.error("telegram_outbox_failed", error=type(exc).__name__)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), self.settings.outbox_poll_s)

    def housekeep(self, ahead: timedelta = timedelta(0)) -> dict[str, int]:
        """Forget handled updates and their kept replies older than ``keep_handled_h``.

        Each table is aged by the clock that wrote it: the ledger by the wall clock, the
        engine's deliveries by the engine's clock. ``ahead`` moves both forward (tests).
        Returns how many ledger rows were deleted and how many deliveries' replies dropped.
        """
        age = timedelta(hours=self.settings.keep_handled_h) - ahead
        store = self.engine.store
        forgotten = {
            "updates": self.adapter.ledger.prune(datetime.now(UTC) - age),
            "delivery_replies": store.forget_delivery_replies(self.engine.clock() - age),
        }
        if any(forgotten.values()):
            log.info("telegram_housekeeping", **forgotten)
        return forgotten

    async def _run_housekeeping(self) -> None:
        """:meth:`housekeep` now and then every ``housekeeping_every_s`` (each worker may)."""
        while not self._stop.is_set():
            try:
                await asyncio.to_thread(self.housekeep)
            except Exception as exc:  # the database away for a while: next time
                log.warning("telegram_housekeeping_failed", error=type(exc).__name__)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.settings.housekeeping_every_s)

    async def _run_notices(self) -> None:
        """Write the backend's pending notices into Telegram conversations, every so often.

        The courier (:mod:`bot.notices`) writes each notice into the resident's most
        recent Telegram conversation together with its outbox row, in one transaction,
        and keeps quiet hours and the resident's language; the outbox sender sends it.
        """
        every_s = self.settings.notice_poll_s
        while not self._stop.is_set():
            try:
                await self.engine.deliver_notices(channel=NAME)
            except Exception as exc:  # the backend away for a while: try again next time
                log.warning("telegram_notices_failed", error=type(exc).__name__)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), every_s)

    async def process(self, data: dict[str, Any]) -> None:
        """Handle one update received by the webhook (in its chat's order).

        A redelivery of an update done already, or being processed by a live worker, is
        dropped by the ledger's claim (the first thing every handler does), as in polling.
        """
        update = parse_update(data, self.application.bot)

        async with self.adapter.sequencer.hold(chat_key(update)):
            await self.application.process_update(update)

    def acks_early(self, data: dict[str, Any]) -> bool:
        """Whether the webhook may answer Telegram for this update before its turn is done:
        a new message (not an edit, not a channel post) with a voice note, audio, photo,
        video (note) or document, early ack on, and fewer than ``max_background_turns``
        turns in the background.

        Text, commands and button presses are not: their turns take milliseconds, and a
        request held until the turn is done keeps Telegram's retry for a failure and its
        ``max_connections`` as the bound on a worker's load.
        """
        if not self.settings.early_ack:
            return False
        if len(self.background) >= self.settings.max_background_turns:
            return False
        message = data.get("message")
        return isinstance(message, dict) and not EARLY_ACK_FIELDS.isdisjoint(message)

    async def process_early(self, data: dict[str, Any]) -> None:
        """Handle an update, returning as soon as it is claimed (its raw JSON in the claim
        row); the turn goes on in the background, and a live worker takes it over from the
        ledger if this one dies first (:meth:`sweep`). Returns when the turn is done if its
        handler does not acknowledge early (a voice note in a group: told once, at once).

        Raises what :meth:`process` raised when that came first (the claim failed: the
        webhook answers 500 and Telegram redelivers).
        """
        update_id = int(data["update_id"])
        acked = asyncio.get_running_loop().create_future()

        def acknowledge() -> None:
            if not acked.done():
                acked.set_result(None)

        payload = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
        self.adapter.expect_ack(update_id, EarlyAck(payload, acknowledge))
        task = self._spawn(self.process(data))
        task.add_done_callback(lambda _task: self.adapter.forget_ack(update_id))
        await asyncio.wait((task, acked), return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            task.result()

    def _spawn(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.create_task(work)
        self.background.add(task)
        task.add_done_callback(self._background_done)
        return task

    def _background_done(self, task: asyncio.Task[None]) -> None:
        self.background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            error = task.exception()
            log.error(
                "telegram_background_turn_failed",
                error=mask_token(f"{type(error).__name__}: {error}"),
            )

    async def sweep(self) -> int:
        """Renew the claims this worker holds, and take over updates acknowledged by a worker
        that died before their turn was done (stale claims with their raw update): each is
        handled here in the background, its claim taken over by one worker only.

        Returns how many updates this worker started taking over.
        """
        ledger = self.adapter.ledger
        await asyncio.to_thread(ledger.refresh, list(self.adapter.claims.values()))
        room = self.settings.max_background_turns - len(self.background)
        if room <= 0:
            return 0
        started = 0
        for update_id, payload in await asyncio.to_thread(ledger.stale_payloads, room):
            if update_id in self.adapter.claims or update_id in self._taking_over:
                continue
            try:
                data = json.loads(payload)
            except ValueError:
                log.error("telegram_payload_unreadable", update_id=update_id)
                continue
            log.warning("telegram_update_taken_over", update_id=update_id)
            self._taking_over.add(update_id)
            task = self._spawn(self.process(data))
            task.add_done_callback(partial(_discard, self._taking_over, update_id))
            started += 1
        return started

    async def _run_claims(self) -> None:
        """:meth:`sweep` every ``claim_refresh_s`` (at most a third of ``stale_claim_s``)."""
        every_s = min(self.settings.claim_refresh_s, self.settings.stale_claim_s / 3)
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), every_s)
            if self._stop.is_set():
                return
            try:
                await self.sweep()
            except Exception as exc:  # the database away for a while: next time
                log.warning("telegram_claims_failed", error=type(exc).__name__)

    async def stop(self) -> None:
        """Stop polling, the outbox sender, the application and the voice decoding processes.

        Background turns get :data:`BACKGROUND_DRAIN_S` to finish; one still running then is
        cancelled, its claim left for a live worker to take over.
        """
        self._stop.set()
        if self.background:
            await asyncio.wait(set(self.background), timeout=BACKGROUND_DRAIN_S)
            for task in list(self.background):
                task.cancel()
            await asyncio.gather(*self.background, return_exceptions=True)
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        updater = self.application.updater
        if updater is not None and updater.running:
            await updater.stop()
        if self.application.running:
            await self.application.stop()
        await self.application.shutdown()
        await self.engine.stop_voice_processes()


async def run_polling(
    engine: DialogueEngine, settings: TelegramSettings, stop: asyncio.Event
) -> None:
    """Run the bot in polling mode until ``stop`` is set."""
    runtime = TelegramRuntime(engine, settings, polling=True)
    await runtime.start()
    try:
        await stop.wait()
    finally:
        await runtime.stop()


__all__ = ["MissingTokenError", "TelegramRuntime", "build_application", "run_polling"]
