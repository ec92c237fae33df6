"""The terminal chat: the engine on stdin/stdout (see CONTRACTS.md, "Terminal chat").

One resident message a line on stdin; the reply on stdout, with buttons as
``[1] Pay ¥120.00  [2] Cancel``; a line holding just a button's number presses
it (the engine keeps the last buttons in the conversation state). When stdin is
not a terminal, every reply ends with a line holding only ``--`` and the chat
ends at end of input.

Messages the assistant sends on its own (a pending payment that completed, a
bill reminder, a staff member's reply from the console) arrive through the push
path (``bot.outbox``): before every message is handled, the chat writes the
resident's due notices into the outbox and delivers the outbox rows of its own
conversation through :class:`TerminalChannel`, printed ahead of that message's
reply (in the same ``--`` block when stdin is not a terminal). In an interactive
terminal they are also polled while the prompt waits, and printed as they arrive.

A line starting with ``/attach `` sends a file instead of text
(``/attach selfie.jpg``, ``/attach note.ogg``): the kind (image, video, audio)
comes from the file's extension, so a developer can enroll or verify a face or
voice from the terminal. A file that can't be read is reported on stderr and
nothing is sent (the ``--`` line still ends the turn).
"""

from __future__ import annotations

import asyncio
import contextlib
import mimetypes
import sys
from pathlib import Path
from typing import TextIO

from bot.channels.base import ChannelCapabilities
from bot.engine import DialogueEngine
from bot.messages import Attachment, AttachmentKind, IncomingMessage, OutgoingMessage
from bot.outbox import OutboxSender

CHANNEL = "terminal"
SEPARATOR = "--"
ATTACH_PREFIX = "/attach "
#: Media kinds by the start of the file's media type.
_KINDS: dict[str, AttachmentKind] = {"image": "image", "video": "video", "audio": "audio"}


def read_attachment(path_text: str) -> Attachment:
    """The file named after ``/attach`` as an attachment.

    Raises:
        OSError: The file can't be read.
        ValueError: Its type is neither an image, a video nor audio.
    """
    path = Path(path_text.strip()).expanduser()
    mime, _ = mimetypes.guess_type(path.name)
    if path.suffix.lower() in (".ogg", ".oga", ".opus"):
        mime = "audio/ogg"
    kind = _KINDS.get((mime or "").split("/")[0])
    if kind is None:
        raise ValueError(f"{path.name}: not an image, video or audio file")
    return Attachment(kind=kind, data=path.read_bytes(), filename=path.name, mime_type=mime or "")


def format_reply(messages: list[OutgoingMessage]) -> str:
    """The text printed for one turn's replies."""
    lines: list[str] = []
    number = 0
    for message in messages:
        lines.append(message.text)
        if message.buttons:
            titles = []
            for button in message.buttons:
                number += 1
                titles.append(f"[{number}] {button.title}")
            lines.append("  ".join(titles))
    return "\n".join(lines)


class TerminalChannel:
    """The terminal as a :class:`~bot.channels.base.Channel`: sent messages are collected
    and printed by the chat loop (buttons as numbered choices)."""

    name = CHANNEL
    capabilities = ChannelCapabilities(buttons=False, files=False, markup="plain")

    def __init__(self) -> None:
        self.sent: list[OutgoingMessage] = []

    async def send(self, user: str, message: OutgoingMessage) -> None:
        """Collect ``message`` for printing."""
        self.sent.append(message)

    def take_text(self) -> str:
        """The collected messages' text, and forget them."""
        text = "\n".join(format_reply([m]) for m in self.sent)
        self.sent.clear()
        return text


async def pending_notices(engine: DialogueEngine, resident_id: str) -> str:
    """Everything pushed to this resident's terminal conversation since last asked; its text.

    The resident's due backend notices are written into the outbox first
    (``engine.deliver_notices``), then the outbox rows of the terminal
    conversation (notices, staff replies) are delivered here.
    """
    try:
        await engine.deliver_notices(channel=CHANNEL, resident_id=resident_id)
    except Exception as exc:  # a notice must never break the chat
        sys.stderr.write(f"billtalk chat: notices unavailable: {type(exc).__name__}\n")
    channel = TerminalChannel()
    try:
        sender = OutboxSender(engine.store, [channel], clock=engine.clock, only_user=resident_id)
        await sender.run_once()
    except Exception as exc:
        sys.stderr.write(f"billtalk chat: messages unavailable: {type(exc).__name__}\n")
    return channel.take_text()


async def _poll_notices(
    engine: DialogueEngine, resident_id: str, stdout: TextIO, every_s: float
) -> None:
    """While an interactive prompt waits: print notices as they arrive."""
    while True:
        await asyncio.sleep(every_s)
        text = await pending_notices(engine, resident_id)
        if text:
            stdout.write("\n" + text + "\n> ")
            stdout.flush()


async def run_chat(
    engine: DialogueEngine,
    resident_id: str,
    language: str,
    stdin: TextIO = sys.stdin,
    stdout: TextIO = sys.stdout,
    *,
    notice_poll_s: float = 5.0,
) -> None:
    """Chat until end of input (UTF-8 on both ends, whatever the locale)."""
    for stream in (stdin, stdout):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(encoding="utf-8")
    interactive = stdin.isatty()
    loop = asyncio.get_running_loop()
    while True:
        if interactive:
            notices = await pending_notices(engine, resident_id)
            if notices:
                stdout.write(notices + "\n")
            stdout.write("> ")
            stdout.flush()
            poller = asyncio.create_task(_poll_notices(engine, resident_id, stdout, notice_poll_s))
            try:
                line = await loop.run_in_executor(None, stdin.readline)
            finally:
                poller.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await poller
        else:
            line = await loop.run_in_executor(None, stdin.readline)
        if line == "":
            break
        notices = "" if interactive else await pending_notices(engine, resident_id)
        text = line.rstrip("\r\n")
        attachments: tuple[Attachment, ...] = ()
        if text.startswith(ATTACH_PREFIX):
            try:
                attachments = (read_attachment(text[len(ATTACH_PREFIX) :]),)
            except (OSError, ValueError) as exc:
                sys.stderr.write(f"billtalk chat: cannot attach: {exc}\n")
                if notices:
                    stdout.write(notices + "\n")
                if not interactive:
                    stdout.write(SEPARATOR + "\n")
                stdout.flush()
                continue
            text = ""
        replies = await engine.handle(
            IncomingMessage(
                channel=CHANNEL,
                external_user_id=resident_id,
                resident_id=resident_id,
                text=None if attachments else text,
                attachments=attachments,
                language=language,
                supports_files=False,
            )
        )
        output = "\n".join(part for part in (notices, format_reply(replies)) if part)
        if output:
            stdout.write(output + "\n")
        if not interactive:
            stdout.write(SEPARATOR + "\n")
        stdout.flush()
