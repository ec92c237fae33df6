"""The terminal chat: the engine on stdin/stdout (see CONTRACTS.md, "Terminal chat").

One resident message a line on stdin; the reply on stdout, with buttons as
``[1] Pay ¥120.00  [2] Cancel``; a line holding just a button's number presses
it (the engine keeps the last buttons in the conversation state). When stdin is
not a terminal, every reply ends with a line holding only ``--`` and the chat
ends at end of input.
"""

from __future__ import annotations

import asyncio
import sys
from typing import TextIO

from bot.engine import DialogueEngine
from bot.messages import IncomingMessage, OutgoingMessage

CHANNEL = "terminal"
SEPARATOR = "--"


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


async def run_chat(
    engine: DialogueEngine,
    resident_id: str,
    language: str,
    stdin: TextIO = sys.stdin,
    stdout: TextIO = sys.stdout,
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
            stdout.write("> ")
            stdout.flush()
        line = await loop.run_in_executor(None, stdin.readline)
        if line == "":
            break
        text = line.rstrip("\r\n")
        replies = await engine.handle(
            IncomingMessage(
                channel=CHANNEL,
                external_user_id=resident_id,
                resident_id=resident_id,
                text=text,
                language=language,
                supports_files=False,
            )
        )
        output = format_reply(replies)
        if output:
            stdout.write(output + "\n")
        if not interactive:
            stdout.write(SEPARATOR + "\n")
        stdout.flush()
