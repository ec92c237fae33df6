"""Helpers for driving the real PTB bot through the stand-in, one resident chat at a time."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.channels.telegram.botapi_standin import BotApiStandIn, Call

#: An amount written the way replies write money: digits, a point, two decimals.
AMOUNT = re.compile(r"\d+\.\d\d")


class TgChat:
    """One Telegram chat with the bot: inject an update, wait until it is handled, read.

    Args:
        runtime: The running bot (``TelegramRuntime``).
        standin: The Bot API stand-in.
        chat_id: The chat (and user) id.
        language_code: The Telegram user's ``language_code``.
    """

    def __init__(
        self, runtime: Any, standin: BotApiStandIn, chat_id: int, language_code: str = "en"
    ) -> None:
        self.runtime = runtime
        self.standin = standin
        self.chat_id = chat_id
        self.language_code = language_code

    async def do(
        self, inject: Callable[[], dict[str, Any] | int], timeout: float = 60.0
    ) -> list[Call]:
        """Run ``inject`` (which injects one update, returning it or its id); wait until it
        was handled; the calls to this chat it caused."""
        before = len(self.standin.sent(self.chat_id))
        update = inject()
        update_id = int(update if isinstance(update, int) else update["update_id"])
        ledger = self.runtime.adapter.ledger
        await self.standin.until(
            lambda: ledger.status(update_id) == "done", timeout, what=f"update {update_id} handled"
        )
        return self.standin.sent(self.chat_id)[before:]

    async def send(self, text: str, **kwargs: Any) -> str:
        """Send ``text``; the text of everything the bot sent back."""
        kwargs.setdefault("language_code", self.language_code)
        calls = await self.do(lambda: self.standin.text(self.chat_id, text, **kwargs))
        return joined(calls)

    async def press(self, title_fragment: str) -> str:
        """Press the button of the last keyboard whose text contains ``title_fragment``."""
        for title, data in self.standin.buttons(self.chat_id):
            if title_fragment.lower() in title.lower():
                return await self.press_data(data)
        raise AssertionError(f"no button {title_fragment!r} in {self.titles()}")

    async def press_data(self, data: str, message_id: int | None = None) -> str:
        """Press a button by its callback data."""
        calls = await self.do(
            lambda: self.standin.press(
                self.chat_id, data, message_id=message_id, language_code=self.language_code
            )
        )
        return joined(calls)

    def titles(self) -> list[str]:
        """The texts of the last keyboard's buttons."""
        return [t for t, _ in self.standin.buttons(self.chat_id)]


def joined(calls: list[Call]) -> str:
    """The texts of ``calls`` (messages and edits), one per line."""
    return "\n".join(str(c.params.get("text", "")) for c in calls if c.params.get("text"))


def ogg_note(text: str, tmp: Path, voice: str = "en-us") -> bytes:
    """``text`` said by espeak-ng, as an OGG/Opus voice note (as Telegram sends them)."""
    from speech.audio import encode_audio, load_audio

    wav = tmp / f"note-{abs(hash(text))}.wav"
    subprocess.run(
        ["espeak-ng", "-v", voice, "-s", "140", "-w", str(wav), text],
        check=True,
        capture_output=True,
    )
    samples = load_audio(wav.read_bytes(), trim=False).samples
    return encode_audio(samples, "ogg")


def silent_ogg() -> bytes:
    """Two seconds of silence as OGG/Opus."""
    import numpy as np

    from speech.audio import encode_audio

    return encode_audio(np.zeros(32_000, dtype=np.float32), "ogg")
