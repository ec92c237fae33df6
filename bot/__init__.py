"""billtalk's dialogue engine and its channels.

What a channel needs is re-exported here::

    from bot import DialogueEngine, IncomingMessage, OutgoingMessage, Channel

    engine = await DialogueEngine.embedded()          # tests and the CLI
    replies = await engine.handle(IncomingMessage(channel="telegram",
                                                  external_user_id="42", text="balance"))

* :class:`DialogueEngine` handles one message and returns the replies; ``push``
  says something outside a turn (through :mod:`bot.outbox`).
* :class:`IncomingMessage` / :class:`OutgoingMessage` / :class:`Button` /
  :class:`Attachment` are the channel-neutral message model.
* :class:`Channel` and :class:`ChannelCapabilities` are what a channel implements;
  :class:`OutboxSender` delivers pushed messages through channels.

Names are imported on first use, so ``import speech`` stays light.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "DialogueEngine": "bot.engine",
    "IncomingMessage": "bot.messages",
    "OutgoingMessage": "bot.messages",
    "Button": "bot.messages",
    "Attachment": "bot.messages",
    "Channel": "bot.channels.base",
    "ChannelCapabilities": "bot.channels.base",
    "ChannelSendError": "bot.channels.base",
    "ChannelUnreachable": "bot.channels.base",
    "OutboxSender": "bot.outbox",
    "staff_reply": "bot.outbox",
}

__all__ = [
    "Attachment",
    "Button",
    "Channel",
    "ChannelCapabilities",
    "ChannelSendError",
    "ChannelUnreachable",
    "DialogueEngine",
    "IncomingMessage",
    "OutboxSender",
    "OutgoingMessage",
    "staff_reply",
]

if TYPE_CHECKING:
    from bot.channels.base import (
        Channel,
        ChannelCapabilities,
        ChannelSendError,
        ChannelUnreachable,
    )
    from bot.engine import DialogueEngine
    from bot.messages import Attachment, Button, IncomingMessage, OutgoingMessage
    from bot.outbox import OutboxSender, staff_reply


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'bot' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
