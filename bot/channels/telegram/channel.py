"""Sending to Telegram: the :class:`~bot.channels.base.Channel` of the Telegram bot.

One :class:`~bot.messages.OutgoingMessage` becomes:

* its text, split at 4,096 characters on line boundaries (Telegram's limit), in
  one or more ``sendMessage`` calls; the buttons go with the last piece as an
  inline keyboard whose ``callback_data`` is the button's short id (at most 64
  bytes; the payload stays on the server, in the conversation state);
* each attachment: a PDF receipt by ``sendDocument``, a PNG chart by ``sendPhoto``.

Errors are mapped for the outbox: ``403 Forbidden`` (the user blocked the bot)
raises :class:`~bot.channels.base.ChannelUnreachable`; any other error or a
timeout raises :class:`~bot.channels.base.ChannelSendError`. A 429 is waited
out and retried by PTB's ``AIORateLimiter`` first. The pieces of a message
already accepted are remembered for a while, so a retried message does not
send its first pieces twice.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from typing import Any

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, InputFile, Message
from telegram.error import Forbidden, RetryAfter, TelegramError

from bot.channels.base import ChannelCapabilities, ChannelSendError, ChannelUnreachable, split_text
from bot.channels.telegram.masking import mask_token
from bot.messages import Attachment, Button, OutgoingMessage

NAME = "telegram"
MAX_TEXT = 4096
MAX_CALLBACK_BYTES = 64
CAPABILITIES = ChannelCapabilities(
    buttons=True, files=True, voice_out=False, max_text_chars=MAX_TEXT, markup="plain"
)


def keyboard(buttons: tuple[Button, ...] | list[Button]) -> InlineKeyboardMarkup | None:
    """The inline keyboard of ``buttons`` (two a row), or ``None`` without buttons.

    Raises:
        ValueError: A button id is longer than Telegram's 64 bytes of callback data.
    """
    if not buttons:
        return None
    cells = []
    for button in buttons:
        data = _button_id(button)
        if len(data.encode()) > MAX_CALLBACK_BYTES:
            raise ValueError(f"button id longer than {MAX_CALLBACK_BYTES} bytes: {data[:16]}...")
        cells.append(InlineKeyboardButton(button.title, callback_data=data))
    rows = [cells[i : i + 2] for i in range(0, len(cells), 2)]
    return InlineKeyboardMarkup(rows)


def _button_id(button: Button) -> str:
    bid = getattr(button, "id", None)
    return str(bid) if bid else button.payload


def map_error(exc: BaseException) -> ChannelSendError:
    """The outbox's view of a failed Bot API call."""
    text = mask_token(f"{type(exc).__name__}: {exc}")
    if isinstance(exc, Forbidden):
        return ChannelUnreachable(text)
    if isinstance(exc, RetryAfter):
        retry = exc.retry_after
        seconds = retry.total_seconds() if hasattr(retry, "total_seconds") else float(retry)
        return ChannelSendError(text, retry_after_s=seconds)
    return ChannelSendError(text)


class TelegramChannel:
    """The Telegram channel's sending side (implements :class:`bot.channels.Channel`).

    Args:
        bot: The PTB bot (``application.bot``), with its rate limiter.
        remember_s: How long the pieces of a partly sent message are remembered.
    """

    name = NAME
    capabilities = CAPABILITIES

    def __init__(self, bot: Any, *, remember_s: float = 600.0) -> None:
        self.bot = bot
        self._remember_s = remember_s
        self._progress: OrderedDict[tuple[str, str], tuple[int, float]] = OrderedDict()

    async def send(self, user: str, message: OutgoingMessage) -> None:
        """Deliver ``message`` to the chat ``user``; returns once Telegram accepted all of it.

        Raises:
            ChannelUnreachable: The user blocked the bot (403).
            ChannelSendError: Anything else (5xx, timeout, 429 after the rate limiter's
                retries); sending the same message again skips the pieces already sent.
        """
        await self.send_message(user, message)

    async def send_message(self, user: str, message: OutgoingMessage) -> list[Message]:
        """:meth:`send`, returning the Telegram messages that were sent now."""
        key = (str(user), _digest(message))
        done, _ = self._progress.get(key, (0, 0.0))
        sent: list[Message] = []
        for index, step in enumerate(_steps(message)):
            if index < done:
                continue
            try:
                sent.append(await self._send_step(user, step))
            except TelegramError as exc:
                self._remember(key, index)
                raise map_error(exc) from None
        self._progress.pop(key, None)
        return sent

    async def _send_step(self, user: str, step: tuple[str, Any]) -> Message:
        kind, value = step
        if kind == "text":
            text, markup = value
            return await self.bot.send_message(chat_id=int(user), text=text, reply_markup=markup)
        attachment: Attachment = value
        upload = InputFile(attachment.data, filename=attachment.filename or None)
        if attachment.kind == "image" and attachment.mime_type in ("image/png", "image/jpeg"):
            return await self.bot.send_photo(chat_id=int(user), photo=upload)
        return await self.bot.send_document(chat_id=int(user), document=upload)

    def _remember(self, key: tuple[str, str], index: int) -> None:
        now = time.monotonic()
        self._progress[key] = (index, now)
        while self._progress:
            first, (_, at) = next(iter(self._progress.items()))
            if now - at <= self._remember_s and len(self._progress) <= 10_000:
                break
            self._progress.pop(first)


def _steps(message: OutgoingMessage) -> list[tuple[str, Any]]:
    pieces = split_text(message.text, MAX_TEXT) or ([" "] if message.buttons else [])
    markup = keyboard(message.buttons)
    steps: list[tuple[str, Any]] = [
        ("text", (piece, markup if i == len(pieces) - 1 else None))
        for i, piece in enumerate(pieces)
    ]
    steps.extend(("file", a) for a in message.attachments)
    return steps


def _digest(message: OutgoingMessage) -> str:
    h = hashlib.sha256(message.text.encode())
    for button in message.buttons:
        h.update(_button_id(button).encode())
    for attachment in message.attachments:
        h.update(hashlib.sha256(attachment.data).digest())
    return h.hexdigest()[:32]


__all__ = ["CAPABILITIES", "NAME", "TelegramChannel", "keyboard", "map_error"]
