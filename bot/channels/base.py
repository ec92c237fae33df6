"""The one interface every channel implements.

A channel is a small adapter between a messaging surface (the terminal, Telegram,
a smart speaker) and the :class:`~bot.engine.DialogueEngine`:

* inbound, it turns what the resident sent into an
  :class:`~bot.messages.IncomingMessage` and calls ``engine.handle``;
* outbound, it shows the engine's :class:`~bot.messages.OutgoingMessage` in its
  own way, through :meth:`Channel.send`, whether the message is a turn's reply or
  a pushed one (a reminder, a staff reply) delivered by :class:`bot.outbox.OutboxSender`.

What a channel can show is declared once, in :class:`ChannelCapabilities`, and
:func:`render_for` shapes a message to fit: text-only channels get the choices
listed, voice channels get the spoken rendering.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal, Protocol, runtime_checkable

from bot.messages import OutgoingMessage

Markup = Literal["plain", "html", "markdown", "ssml"]


@dataclass(frozen=True)
class ChannelCapabilities:
    """What a channel can show.

    Attributes:
        buttons: Choices can be tapped (inline keyboards); otherwise they are listed
            in the text (or said aloud).
        files: Attachments (a PDF receipt, a chart) can be delivered.
        voice_out: The channel speaks: it uses :attr:`OutgoingMessage.spoken`.
        max_text_chars: The longest text one message may hold (``None``: no limit);
            longer text is split on line boundaries.
        markup: How text is marked up.
    """

    buttons: bool = True
    files: bool = True
    voice_out: bool = False
    max_text_chars: int | None = None
    markup: Markup = "plain"


class ChannelSendError(RuntimeError):
    """A send failed in a way that may succeed later (timeout, 5xx, rate limit).

    Attributes:
        retry_after_s: How long the channel asked us to wait, if it said.
    """

    def __init__(self, message: str, *, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class ChannelUnreachable(ChannelSendError):
    """The user can no longer be reached here (blocked the bot, left): never retried."""


@runtime_checkable
class Channel(Protocol):
    """A channel the engine can send to.

    Attributes:
        name: The channel's name, as in ``IncomingMessage.channel`` (``telegram``...).
        capabilities: What it can show.
    """

    name: str
    capabilities: ChannelCapabilities

    async def send(self, user: str, message: OutgoingMessage) -> None:
        """Deliver ``message`` to ``user`` (the channel's own user id).

        Returns only once the channel accepted the message.

        Raises:
            ChannelUnreachable: The user blocked the bot or is gone.
            ChannelSendError: Anything else that may work on a retry.
        """
        ...


def split_text(text: str, limit: int | None) -> list[str]:
    """``text`` in pieces of at most ``limit`` characters, split on line boundaries.

    A single line longer than ``limit`` is cut hard. An empty text gives ``[]``.
    """
    if not text:
        return []
    if limit is None or len(text) <= limit:
        return [text]
    pieces: list[str] = []
    current = ""
    for line in text.split("\n"):
        while len(line) > limit:
            if current:
                pieces.append(current)
                current = ""
            pieces.append(line[:limit])
            line = line[limit:]
        candidate = f"{current}\n{line}" if current else line
        if len(candidate) > limit:
            pieces.append(current)
            current = line
        else:
            current = candidate
    if current:
        pieces.append(current)
    return pieces


def render_for(message: OutgoingMessage, capabilities: ChannelCapabilities) -> OutgoingMessage:
    """``message`` shaped for a channel with ``capabilities``.

    * no buttons: the choices are appended to the text, numbered (``[1] Pay  [2] Cancel``);
    * no files: attachments are dropped (the engine already said how to get them);
    * voice out: the text is the spoken rendering, with no buttons or files.
    """
    if capabilities.voice_out:
        return replace(message, text=message.spoken or message.text, buttons=(), attachments=())
    if not capabilities.buttons and message.buttons:
        choices = "  ".join(f"[{n}] {b.title}" for n, b in enumerate(message.buttons, 1))
        message = replace(message, text=f"{message.text}\n{choices}" if message.text else choices)
    if not capabilities.files and message.attachments:
        message = replace(message, attachments=())
    return message
