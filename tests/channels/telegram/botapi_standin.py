"""A Telegram Bot API stand-in: a small HTTP server on loopback for tests and benchmarks.

It speaks the methods billtalk uses (``getMe``, ``getUpdates``, ``setWebhook`` /
``deleteWebhook``, ``sendMessage``, ``editMessageText`` / ``editMessageReplyMarkup``,
``answerCallbackQuery``, ``getFile`` and the file download, ``sendDocument``,
``sendPhoto``, ``sendChatAction``, ``setMyCommands``) the way the real Bot API
does (``{base}/bot<token>/<method>``, form or multipart parameters with JSON in
the nested ones, ``{"ok": true, "result": ...}`` answers), so the real
python-telegram-bot ``Application`` talks to it over real HTTP.

The server runs in its own thread with its own event loop. A test:

* injects updates (:meth:`BotApiStandIn.text`, :meth:`~BotApiStandIn.press`,
  :meth:`~BotApiStandIn.voice`...): they are handed out by ``getUpdates`` or, once a
  webhook is set, POSTed to it with the secret header (and redelivered when the
  webhook does not answer 200 in time, as Telegram does);
* reads what the bot did from :attr:`BotApiStandIn.calls` (every method call, in
  order) and :meth:`~BotApiStandIn.sent` (what reached a chat), waiting with
  :meth:`~BotApiStandIn.wait_for`;
* makes the next calls of a method fail (:meth:`~BotApiStandIn.fail`: 429 with
  ``retry_after``, 403, 5xx, or a delay longer than the bot's timeout).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

TOKEN = "123456789:AAE-stand-in-secret-token_0123456789"
BOT_ID = 123456789
BOT_USERNAME = "billtalk_test_bot"
#: Parameters whose form value is JSON.
_JSON_PARAMS = {"reply_markup", "commands", "allowed_updates", "scope", "entities", "media"}


@dataclass
class Call:
    """One Bot API call the bot made."""

    method: str
    params: dict[str, Any]
    files: dict[str, tuple[str, bytes]] = field(default_factory=dict)
    at: float = field(default_factory=time.monotonic)
    status: int = 200


@dataclass
class Fault:
    """How the next matching calls fail."""

    method: str
    status: int
    times: int
    retry_after: int | None = None
    delay_s: float = 0.0
    chat_id: int | None = None
    description: str = ""
    after: int = 0


@dataclass
class Delivery:
    """One webhook POST the stand-in made."""

    update_id: int
    url: str
    status: int | None
    attempt: int
    #: When the webhook's answer came (``time.monotonic``).
    at: float = field(default_factory=time.monotonic)


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class BotApiStandIn:
    """The stand-in server. Use as a context manager, or :meth:`start` / :meth:`stop`.

    Args:
        token: The bot token it accepts (any other token gets 401, as Telegram does).
        webhook_timeout_s: How long a webhook POST may take before it is redelivered.
        webhook_attempts: Deliveries of one update before the stand-in gives up.
        webhook_connections: Webhook POSTs in flight at once (Telegram's ``max_connections``).
        first_update_id: The first ``update_id`` handed out. Telegram's ids only grow for a
            bot: a second stand-in for the same bot and database must start above the first's.
    """

    def __init__(
        self,
        token: str = TOKEN,
        *,
        webhook_timeout_s: float = 10.0,
        webhook_attempts: int = 5,
        webhook_connections: int = 40,
        first_update_id: int = 1000,
    ) -> None:
        self.token = token
        self.port = free_port()
        self.webhook_timeout_s = webhook_timeout_s
        self.webhook_attempts = webhook_attempts
        self.webhook_connections = webhook_connections
        self.calls: list[Call] = []
        self.deliveries: list[Delivery] = []
        self.webhook: dict[str, Any] | None = None
        #: When set, webhook POSTs rotate over these URLs (a load balancer in front of workers).
        self.deliver_to: list[str] | None = None
        self.files: dict[str, tuple[str, bytes]] = {}
        self.downloads: list[str] = []
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._pending: list[dict[str, Any]] = []
        self._faults: list[Fault] = []
        self._update_ids = itertools.count(first_update_id)
        self._message_ids = itertools.count(1)
        self._file_ids = itertools.count(1)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._new_update: asyncio.Event | None = None
        self._webhook_queue: asyncio.Queue[tuple[dict[str, Any], int]] | None = None
        self._thread: threading.Thread | None = None
        self._server: uvicorn.Server | None = None
        self.injected_at: dict[int, float] = {}
        #: Called (on the server's thread) with every call the bot made, once recorded.
        self.listeners: list[Callable[[Call], None]] = []
        #: Deliver a chat's webhook updates one at a time, as Telegram does.
        self.webhook_chat_order = True
        self._chat_busy: set[int] = set()
        self._chat_waiting: dict[int, list[dict[str, Any]]] = {}
        self._rotation = itertools.count()

    # -- addresses ------------------------------------------------------------------

    @property
    def base(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        """The value for ``BILLTALK_TELEGRAM_API_URL`` (PTB's ``base_url``)."""
        return f"{self.base}/bot"

    @property
    def file_url(self) -> str:
        """The value for ``BILLTALK_TELEGRAM_FILE_URL`` (PTB's ``base_file_url``)."""
        return f"{self.base}/file/bot"

    # -- life cycle -------------------------------------------------------------------

    def start(self) -> BotApiStandIn:
        """Start serving (returns once the port accepts connections).

        Tries three free ports: another process may take the one picked first.
        """
        for attempt in range(3):
            try:
                return self._start()
            except RuntimeError:
                if attempt == 2:
                    raise
                self.stop()
                self.port = free_port()
        return self

    def _start(self) -> BotApiStandIn:
        app = Starlette(
            routes=[
                Route("/bot{token}/{method}", self._api, methods=["GET", "POST"]),
                Route("/file/bot{token}/{path:path}", self._download, methods=["GET"]),
            ],
            lifespan=self._lifespan,
        )
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            lifespan="on",
            access_log=False,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="botapi-standin", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the Bot API stand-in did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        """Stop serving."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)

    def __enter__(self) -> BotApiStandIn:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    @contextlib.asynccontextmanager
    async def _lifespan(self, _app: Any) -> AsyncIterator[None]:
        await self._on_startup()
        yield

    async def _on_startup(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._new_update = asyncio.Event()
        self._webhook_queue = asyncio.Queue()
        for _ in range(self.webhook_connections):
            self._loop.create_task(self._webhook_worker())

    # -- injecting updates -------------------------------------------------------------

    def inject(self, update: dict[str, Any]) -> int:
        """Queue an update (an ``update_id`` is assigned if missing); returns its id."""
        with self._lock:
            if "update_id" not in update:
                update = {"update_id": next(self._update_ids), **update}
            update_id = int(update["update_id"])
            self.injected_at.setdefault(update_id, time.monotonic())
            if self.webhook is not None:
                assert self._loop is not None and self._webhook_queue is not None
                self._loop.call_soon_threadsafe(self._enqueue_webhook, update)
            else:
                self._pending.append(update)
                if self._loop is not None and self._new_update is not None:
                    self._loop.call_soon_threadsafe(self._new_update.set)
        return update_id

    def redeliver(self, update: dict[str, Any]) -> int:
        """Inject the very same update again (same ``update_id``), as Telegram may."""
        return self.inject(dict(update))

    @staticmethod
    def user(chat_id: int, language_code: str | None = "en") -> dict[str, Any]:
        """The ``from`` of a resident's messages."""
        user: dict[str, Any] = {"id": chat_id, "is_bot": False, "first_name": f"Resident{chat_id}"}
        if language_code:
            user["language_code"] = language_code
        return user

    def message(
        self,
        chat_id: int,
        *,
        language_code: str | None = "en",
        chat_type: str = "private",
        key: str = "message",
        **content: Any,
    ) -> dict[str, Any]:
        """A message update (``content`` is the message's own fields: ``text``, ``voice``...)."""
        chat: dict[str, Any] = {"id": chat_id, "type": chat_type}
        if chat_type == "private":
            chat["first_name"] = f"Resident{chat_id}"
        else:
            chat["title"] = "Building chat"
        message = {
            "message_id": next(self._message_ids),
            "date": int(time.time()),
            "chat": chat,
            "from": self.user(abs(chat_id), language_code),
            **content,
        }
        text = content.get("text")
        if isinstance(text, str) and text.startswith("/"):
            command = text.split()[0]
            message["entities"] = [{"type": "bot_command", "offset": 0, "length": len(command)}]
        return {"update_id": next(self._update_ids), key: message}

    def text(self, chat_id: int, text: str, **kwargs: Any) -> dict[str, Any]:
        """Inject a text message; returns the update."""
        update = self.message(chat_id, text=text, **kwargs)
        self.inject(update)
        return update

    def add_file(self, data: bytes, path: str, *, size: int | None = None) -> dict[str, Any]:
        """Store a file the bot can fetch with ``getFile``; returns its ``file_id`` fields."""
        with self._lock:
            n = next(self._file_ids)
            file_id = f"file-{n}"
            self.files[file_id] = (f"{path.rsplit('.', 1)[0]}_{n}.{path.rsplit('.', 1)[-1]}", data)
        return {
            "file_id": file_id,
            "file_unique_id": f"u{file_id}",
            "file_size": len(data) if size is None else size,
        }

    def voice(
        self, chat_id: int, ogg: bytes, *, duration: int = 2, size: int | None = None, **kwargs: Any
    ) -> dict[str, Any]:
        """Inject a voice note (OGG/Opus bytes); returns the update."""
        voice = {
            **self.add_file(ogg, "voice/note.oga", size=size),
            "duration": duration,
            "mime_type": "audio/ogg",
        }
        update = self.message(chat_id, voice=voice, **kwargs)
        self.inject(update)
        return update

    def photo(
        self, chat_id: int, jpeg: bytes, *, size: int | None = None, **kwargs: Any
    ) -> dict[str, Any]:
        """Inject a photo (one size, as JPEG bytes); returns the update."""
        photo = [
            {**self.add_file(jpeg, "photos/photo.jpg", size=size), "width": 640, "height": 480}
        ]
        update = self.message(chat_id, photo=photo, **kwargs)
        self.inject(update)
        return update

    def video_note(
        self, chat_id: int, mp4: bytes, *, size: int | None = None, **kwargs: Any
    ) -> dict[str, Any]:
        """Inject a round video note (MP4 bytes); returns the update."""
        note = {
            **self.add_file(mp4, "video_notes/note.mp4", size=size),
            "length": 240,
            "duration": 3,
        }
        update = self.message(chat_id, video_note=note, **kwargs)
        self.inject(update)
        return update

    def document(
        self,
        chat_id: int,
        data: bytes,
        name: str,
        mime: str,
        *,
        size: int | None = None,
        **kwargs: Any,
    ) -> dict[str, Any]:
        """Inject a document; returns the update."""
        doc = {
            **self.add_file(data, f"documents/{name}", size=size),
            "file_name": name,
            "mime_type": mime,
        }
        update = self.message(chat_id, document=doc, **kwargs)
        self.inject(update)
        return update

    def press(
        self,
        chat_id: int,
        data: str,
        *,
        message_id: int | None = None,
        language_code: str | None = "en",
    ) -> dict[str, Any]:
        """Inject a callback query (an inline button press) on a message the bot sent."""
        update = self.press_update(
            chat_id, data, message_id=message_id, language_code=language_code
        )
        self.inject(update)
        return update

    def press_update(
        self,
        chat_id: int,
        data: str,
        *,
        message_id: int | None = None,
        language_code: str | None = "en",
    ) -> dict[str, Any]:
        """A callback query update (an inline button press), not injected."""
        if message_id is None:
            message_id = self.last_keyboard_message(chat_id)
        update = {
            "update_id": next(self._update_ids),
            "callback_query": {
                "id": f"cq-{next(self._message_ids)}",
                "from": self.user(chat_id, language_code),
                "chat_instance": f"ci-{chat_id}",
                "data": data,
                "message": {
                    "message_id": message_id,
                    "date": int(time.time()),
                    "chat": {"id": chat_id, "type": "private"},
                    "from": {"id": BOT_ID, "is_bot": True, "first_name": "billtalk"},
                    "text": "...",
                },
            },
        }
        return update

    # -- faults -------------------------------------------------------------------------

    def fail(
        self,
        method: str,
        status: int,
        *,
        times: int = 1,
        retry_after: int | None = None,
        delay_s: float = 0.0,
        chat_id: int | None = None,
        description: str = "",
        after: int = 0,
    ) -> None:
        """Make ``times`` calls of ``method`` (to ``chat_id``) fail with ``status``, after
        letting ``after`` matching calls through.

        With ``delay_s`` the failure comes late (a timeout when longer than the bot's
        read timeout): the server never processed the call.
        """
        with self._lock:
            self._faults.append(
                Fault(method, status, times, retry_after, delay_s, chat_id, description, after)
            )

    def _take_fault(self, method: str, params: dict[str, Any]) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.method != method or fault.times <= 0:
                    continue
                if fault.chat_id is not None and str(params.get("chat_id")) != str(fault.chat_id):
                    continue
                if fault.after > 0:
                    fault.after -= 1
                    continue
                fault.times -= 1
                return fault
        return None

    # -- reading what the bot did ---------------------------------------------------------

    def calls_of(self, method: str, chat_id: int | None = None) -> list[Call]:
        """The successful calls of ``method`` (to ``chat_id``), in order."""
        with self._lock:
            return [
                c
                for c in self.calls
                if c.method == method
                and c.status == 200
                and (chat_id is None or str(c.params.get("chat_id")) == str(chat_id))
            ]

    def sent(self, chat_id: int) -> list[Call]:
        """Everything that reached ``chat_id``: messages, edits, documents, photos, in order."""
        methods = {
            "sendMessage",
            "editMessageText",
            "editMessageReplyMarkup",
            "sendDocument",
            "sendPhoto",
            "sendVoice",
        }
        with self._lock:
            return [
                c
                for c in self.calls
                if c.method in methods
                and c.status == 200
                and str(c.params.get("chat_id")) == str(chat_id)
            ]

    def texts(self, chat_id: int) -> list[str]:
        """The texts of the messages sent to ``chat_id`` (``sendMessage`` only), in order."""
        return [str(c.params.get("text", "")) for c in self.calls_of("sendMessage", chat_id)]

    def last_keyboard_message(self, chat_id: int) -> int:
        """The id of the last message with an inline keyboard sent to ``chat_id``."""
        with self._lock:
            for call in reversed(self.calls):
                if (
                    call.method == "sendMessage"
                    and call.status == 200
                    and str(call.params.get("chat_id")) == str(chat_id)
                    and call.params.get("reply_markup")
                ):
                    return int(call.params["_message_id"])
        raise AssertionError(f"no keyboard was sent to {chat_id}")

    def buttons(self, chat_id: int) -> list[tuple[str, str]]:
        """``(text, callback_data)`` of the last inline keyboard sent to ``chat_id``."""
        with self._lock:
            for call in reversed(self.calls):
                if (
                    call.method == "sendMessage"
                    and call.status == 200
                    and str(call.params.get("chat_id")) == str(chat_id)
                    and call.params.get("reply_markup")
                ):
                    rows = call.params["reply_markup"].get("inline_keyboard", [])
                    return [(b["text"], b["callback_data"]) for row in rows for b in row]
        return []

    def wait_for(
        self, predicate: Callable[[], Any], timeout: float = 30.0, what: str = "condition"
    ) -> Any:
        """Block until ``predicate()`` is truthy; returns its value (AssertionError on timeout)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                value = predicate()
                if value:
                    return value
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"timed out waiting for {what}; calls: {self._summary()}")
                self._changed.wait(min(left, 0.05))

    async def until(
        self, predicate: Callable[[], Any], timeout: float = 30.0, what: str = "condition"
    ) -> Any:
        """:meth:`wait_for` for async tests (polls without blocking the caller's loop)."""
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}; calls: {self._summary()}")
            await asyncio.sleep(0.01)

    def _summary(self) -> list[tuple[str, Any]]:
        with self._lock:
            return [
                (c.method, c.params.get("text")) for c in self.calls if c.method != "getUpdates"
            ][-20:]

    # -- the HTTP side ------------------------------------------------------------------------

    async def _params(
        self, request: Request
    ) -> tuple[dict[str, Any], dict[str, tuple[str, bytes]]]:
        params: dict[str, Any] = dict(request.query_params)
        files: dict[str, tuple[str, bytes]] = {}
        ctype = request.headers.get("content-type", "")
        if ctype.startswith("application/json"):
            body = await request.body()
            if body:
                params.update(json.loads(body))
        elif ctype.startswith(("multipart/form-data", "application/x-www-form-urlencoded")):
            form = await request.form(max_part_size=64 * 1024 * 1024)
            for key, value in form.multi_items():
                if hasattr(value, "read"):
                    files[key] = (value.filename or key, await value.read())
                else:
                    params[key] = value
        for key in list(params):
            if key in _JSON_PARAMS and isinstance(params[key], str):
                with contextlib.suppress(ValueError):
                    params[key] = json.loads(params[key])
        return params, files

    def _record(self, call: Call) -> None:
        with self._changed:
            self.calls.append(call)
            self._changed.notify_all()
        for listener in self.listeners:
            listener(call)

    async def _api(self, request: Request) -> Response:
        method = request.path_params["method"]
        if request.path_params["token"] != self.token:
            return JSONResponse(
                {"ok": False, "error_code": 401, "description": "Unauthorized"}, status_code=401
            )
        params, files = await self._params(request)
        fault = self._take_fault(method, params)
        if fault is not None:
            if fault.delay_s:
                await asyncio.sleep(fault.delay_s)
            if fault.status:
                self._record(Call(method, params, files, status=fault.status))
                body: dict[str, Any] = {
                    "ok": False,
                    "error_code": fault.status,
                    "description": fault.description
                    or _DESCRIPTIONS.get(fault.status, "Internal Server Error"),
                }
                if fault.retry_after is not None:
                    body["parameters"] = {"retry_after": fault.retry_after}
                return JSONResponse(body, status_code=fault.status)
        handler = getattr(self, f"_m_{method}", None)
        if handler is None:
            return JSONResponse(
                {"ok": False, "error_code": 404, "description": "Not Found: method not found"},
                status_code=404,
            )
        call = Call(method, params, files)
        result = await handler(params, files, call)
        self._record(call)
        return JSONResponse({"ok": True, "result": result})

    async def _download(self, request: Request) -> Response:
        if request.path_params["token"] != self.token:
            return Response(status_code=401)
        path = request.path_params["path"]
        with self._lock:
            self.downloads.append(path)
            found = [data for p, data in self.files.values() if p == path]
        if not found:
            return Response(status_code=404)
        return Response(found[0], media_type="application/octet-stream")

    def _bot_message(self, params: dict[str, Any], **content: Any) -> dict[str, Any]:
        message_id = int(params.get("message_id") or next(self._message_ids))
        params["_message_id"] = message_id
        return {
            "message_id": message_id,
            "date": int(time.time()),
            "chat": {"id": int(params["chat_id"]), "type": "private"},
            "from": {
                "id": BOT_ID,
                "is_bot": True,
                "first_name": "billtalk",
                "username": BOT_USERNAME,
            },
            **content,
        }

    # Bot API methods: ``_m_<name>(params, files, call)`` returns the ``result``.

    async def _m_getMe(self, params: dict[str, Any], *_: Any) -> Any:
        return {
            "id": BOT_ID,
            "is_bot": True,
            "first_name": "billtalk",
            "username": BOT_USERNAME,
            "can_join_groups": False,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
        }

    async def _m_getUpdates(self, params: dict[str, Any], *_: Any) -> Any:
        offset = int(params.get("offset") or 0)
        timeout = float(params.get("timeout") or 0)
        limit = int(params.get("limit") or 100)
        deadline = time.monotonic() + timeout
        assert self._new_update is not None
        while True:
            with self._lock:
                if offset:
                    self._pending = [u for u in self._pending if u["update_id"] >= offset]
                ready = self._pending[:limit]
                if ready or time.monotonic() >= deadline:
                    return ready
                self._new_update.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._new_update.wait(), max(deadline - time.monotonic(), 0.001)
                )

    async def _m_setWebhook(self, params: dict[str, Any], *_: Any) -> Any:
        with self._lock:
            self.webhook = {
                "url": params.get("url"),
                "secret_token": params.get("secret_token"),
                "max_connections": params.get("max_connections"),
            }
            pending, self._pending = self._pending, []
        for update in pending:
            self._enqueue_webhook(update)
        return True

    async def _m_deleteWebhook(self, params: dict[str, Any], *_: Any) -> Any:
        with self._lock:
            self.webhook = None
        return True

    async def _m_getWebhookInfo(self, params: dict[str, Any], *_: Any) -> Any:
        with self._lock:
            return {
                "url": (self.webhook or {}).get("url") or "",
                "has_custom_certificate": False,
                "pending_update_count": len(self._pending),
            }

    async def _m_sendMessage(self, params: dict[str, Any], *_: Any) -> Any:
        content: dict[str, Any] = {"text": params.get("text", "")}
        if params.get("reply_markup"):
            content["reply_markup"] = params["reply_markup"]
        return self._bot_message(params, **content)

    async def _m_editMessageText(self, params: dict[str, Any], *_: Any) -> Any:
        content: dict[str, Any] = {"text": params.get("text", "")}
        if params.get("reply_markup"):
            content["reply_markup"] = params["reply_markup"]
        return self._bot_message(params, **content)

    async def _m_editMessageReplyMarkup(self, params: dict[str, Any], *_: Any) -> Any:
        return self._bot_message(params, text="...")

    async def _m_answerCallbackQuery(self, params: dict[str, Any], *_: Any) -> Any:
        return True

    async def _m_sendChatAction(self, params: dict[str, Any], *_: Any) -> Any:
        return True

    async def _m_setMyCommands(self, params: dict[str, Any], *_: Any) -> Any:
        return True

    async def _m_getFile(self, params: dict[str, Any], *_: Any) -> Any:
        file_id = str(params.get("file_id"))
        with self._lock:
            found = self.files.get(file_id)
        if found is None:
            raise ValueError(file_id)
        path, data = found
        return {
            "file_id": file_id,
            "file_unique_id": f"u{file_id}",
            "file_size": len(data),
            "file_path": path,
        }

    async def _m_sendDocument(self, params: dict[str, Any], files: dict[str, Any], *_: Any) -> Any:
        name = files.get("document", ("document", b""))[0]
        return self._bot_message(
            params, document={"file_id": "sent-doc", "file_unique_id": "sd", "file_name": name}
        )

    async def _m_sendPhoto(self, params: dict[str, Any], files: dict[str, Any], *_: Any) -> Any:
        return self._bot_message(
            params,
            photo=[{"file_id": "sent-photo", "file_unique_id": "sp", "width": 100, "height": 100}],
        )

    async def _m_sendVoice(self, params: dict[str, Any], files: dict[str, Any], *_: Any) -> Any:
        return self._bot_message(
            params, voice={"file_id": "sent-voice", "file_unique_id": "sv", "duration": 1}
        )

    # -- webhook delivery ----------------------------------------------------------------------

    @staticmethod
    def chat_of(update: dict[str, Any]) -> int | None:
        """The chat an update belongs to, if any."""
        for value in update.values():
            if isinstance(value, dict):
                holder = value.get("message", value)
                chat = holder.get("chat") if isinstance(holder, dict) else None
                if isinstance(chat, dict):
                    return int(chat["id"])
        return None

    def _enqueue_webhook(self, update: dict[str, Any]) -> None:
        """Queue a webhook delivery (on the server's loop). Like Telegram, a chat's next
        update is sent only once its previous one was answered (or given up)."""
        assert self._webhook_queue is not None
        chat = self.chat_of(update)
        if chat is not None and self.webhook_chat_order:
            if chat in self._chat_busy:
                self._chat_waiting.setdefault(chat, []).append(update)
                return
            self._chat_busy.add(chat)
        self._webhook_queue.put_nowait((update, 1))

    def _release_chat(self, update: dict[str, Any]) -> None:
        chat = self.chat_of(update)
        if chat is None or not self.webhook_chat_order:
            return
        waiting = self._chat_waiting.get(chat)
        if waiting:
            assert self._webhook_queue is not None
            self._webhook_queue.put_nowait((waiting.pop(0), 1))
        else:
            self._chat_busy.discard(chat)

    async def _webhook_worker(self) -> None:
        assert self._webhook_queue is not None
        rotation = self._rotation
        async with httpx.AsyncClient(timeout=self.webhook_timeout_s) as client:
            while True:
                update, attempt = await self._webhook_queue.get()
                with self._lock:
                    hook = dict(self.webhook or {})
                    targets = list(self.deliver_to or [hook.get("url")])
                if not hook:
                    with self._lock:
                        self._pending.append(update)
                    continue
                url = str(targets[next(rotation) % len(targets)])
                headers = {}
                if hook.get("secret_token"):
                    headers["X-Telegram-Bot-Api-Secret-Token"] = str(hook["secret_token"])
                status: int | None
                try:
                    response = await client.post(url, json=update, headers=headers)
                    status = response.status_code
                except httpx.HTTPError:
                    status = None
                with self._changed:
                    self.deliveries.append(Delivery(int(update["update_id"]), url, status, attempt))
                    self._changed.notify_all()
                if status != 200 and attempt < self.webhook_attempts:
                    await asyncio.sleep(0.05 * attempt)
                    self._webhook_queue.put_nowait((update, attempt + 1))
                else:
                    self._release_chat(update)


_DESCRIPTIONS = {
    400: "Bad Request",
    403: "Forbidden: bot was blocked by the user",
    429: "Too Many Requests: retry after",
    500: "Internal Server Error",
    502: "Bad Gateway",
}


def keyboard_texts(call: Call) -> list[str]:
    """The button texts of a call's inline keyboard."""
    markup = call.params.get("reply_markup") or {}
    return [b["text"] for row in markup.get("inline_keyboard", []) for b in row]


def all_texts(calls: Iterable[Call]) -> str:
    """Every text of ``calls`` joined (for assertions that some text never appeared)."""
    return "\n".join(
        str(c.params.get("text", "")) + str(c.params.get("caption", "")) for c in calls
    )
