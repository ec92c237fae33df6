"""Channels: the adapters between a messaging surface and the dialogue engine.

Each channel implements :class:`Channel` (``bot/channels/base.py``). The terminal
chat is :mod:`bot.channels.terminal`; Telegram and the smart speaker live in
their own subpackages and are imported only by their commands.
"""

from bot.channels.base import (
    Channel,
    ChannelCapabilities,
    ChannelSendError,
    ChannelUnreachable,
    render_for,
    split_text,
)

__all__ = [
    "Channel",
    "ChannelCapabilities",
    "ChannelSendError",
    "ChannelUnreachable",
    "render_for",
    "split_text",
]
