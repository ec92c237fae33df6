"""Voice messages as text: the one place the dialogue transcribes speech.

A voice note (Telegram), an utterance (a speaker's audio) or a recording sent in
the terminal (``/attach note.wav``) arrives as an audio attachment. Outside a
verification or enrollment step, where the recording itself is the evidence,
the engine asks :class:`VoiceInput` what was said and answers it like text.
Channels never transcribe for themselves.

Decoding runs in a worker thread, so a long recording never stalls other
conversations on the event loop.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from billtalk.logs import get_logger
from bot.messages import Attachment, IncomingMessage
from bot.state import ConversationState

log = get_logger("bot.voice_input")

#: Attachment kinds that hold speech.
SPEECH_KINDS = frozenset({"voice", "audio"})


@dataclass(frozen=True)
class Heard:
    """What a recording said.

    Attributes:
        text: The transcript ("" when nothing usable was heard).
        confidence: The recogniser's confidence, 0-1.
        weak: Too unsure to act on: the resident is asked again.
        error: Why the audio could not be used (an ``AudioError`` code), else None.
        engine: The recogniser that decoded it.
        duration_s: The recording's length.
    """

    text: str
    confidence: float = 0.0
    weak: bool = False
    error: str | None = None
    engine: str = ""
    duration_s: float = 0.0

    def to_log(self) -> dict[str, Any]:
        """The conversation-log form (no audio, only what was heard)."""
        return {
            "text": self.text,
            "confidence": round(self.confidence, 3),
            "weak": self.weak,
            "error": self.error,
            "engine": self.engine,
            "duration_s": round(self.duration_s, 2),
        }


class VoiceInput:
    """Transcribes voice messages for the engine (pocketsphinx by default, ``speech``)."""

    @staticmethod
    def wants(message: IncomingMessage, state: ConversationState) -> bool:
        """Whether ``message`` is speech to transcribe (not verification or enrollment evidence)."""
        if not message.attachments or message.attachments[0].kind not in SPEECH_KINDS:
            return False
        if state.form_step == "verify" and state.verification:
            return False
        pin_setup = state.pin_setup or {}
        return not (
            state.active_form == "enrollment"
            or (state.active_form == "pin_setup" and pin_setup.get("for") == "biometrics")
        )

    async def transcribe(self, attachment: Attachment) -> Heard:
        """What ``attachment`` says (decoded off the event loop)."""
        return await asyncio.to_thread(self._transcribe, attachment.data)

    @staticmethod
    def _transcribe(data: bytes) -> Heard:
        from speech import AudioError, transcribe

        try:
            result = transcribe(data)
        except AudioError as exc:
            log.info("voice_unusable", code=exc.code)
            return Heard(text="", error=exc.code)
        return Heard(
            text=result.text,
            confidence=result.confidence,
            weak=result.weak,
            engine=result.engine,
            duration_s=result.duration_s,
        )
