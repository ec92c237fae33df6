"""Voice messages as text: the one place the dialogue transcribes speech.

A voice note (Telegram), an utterance (a speaker's audio) or a recording sent in
the terminal (``/attach note.wav``) arrives as an audio attachment. Outside a
verification or enrollment step, where the recording itself is the evidence,
the engine asks :class:`VoiceInput` what was said and answers it like text.
Channels never transcribe for themselves.

Decoding never runs on the event loop. Two places, chosen by
``BILLTALK_DIALOGUE_VOICE_DECODING``:

* ``thread``: a worker thread of this process (the terminal, tests, the speaker).
  A decode (~100 ms of CPU for a short note) then competes with every text turn
  of the process for the GIL and the cores.
* ``process``: a small pool of child processes (``BILLTALK_DIALOGUE_VOICE_PROCESSES``,
  default 1), started with ``spawn`` (never ``fork``: the parent holds threads and
  connections) at a lower CPU priority (``BILLTALK_DIALOGUE_VOICE_NICE``, default
  +10, and Linux's ``SCHED_IDLE`` class unless ``BILLTALK_DIALOGUE_VOICE_IDLE=false``),
  each loading the recogniser once. Text turns then keep the cores while voice
  notes queue. The pool starts with the first note (which waits ~1 s longer, once),
  so a runtime that never sees one pays nothing. A child that dies (crash, OOM kill)
  breaks the pool: the notes it held are answered "please send it again", and the
  next note gets a fresh pool. ``spawn`` re-imports the main module in each child,
  so a script that starts the engine must guard its entry (``if __name__ == ...``).

Unset, it is ``thread`` unless a channel runtime asks for processes
(:meth:`VoiceInput.prefer_processes`): the Telegram runtime does, in polling and
webhook mode. Audio never reaches a log in either place.
"""

from __future__ import annotations

import asyncio
import multiprocessing
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any, Literal

from billtalk.logs import get_logger
from billtalk.priority import lower_process
from bot.messages import Attachment, IncomingMessage
from bot.state import ConversationState

log = get_logger("bot.voice_input")

#: Attachment kinds that hold speech.
SPEECH_KINDS = frozenset({"voice", "audio"})
#: ``Heard.error`` when the decoding process died on the recording (not the audio's fault).
DECODER_FAILED = "decoder_failed"

Decoding = Literal["thread", "process"]


@dataclass(frozen=True)
class Heard:
    """What a recording said.

    Attributes:
        text: The transcript ("" when nothing usable was heard).
        confidence: The recogniser's confidence, 0-1.
        weak: Too unsure to act on: the resident is asked again.
        error: Why the audio could not be used (an ``AudioError`` code, or
            :data:`DECODER_FAILED`), else None.
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


def decode(data: bytes) -> Heard:
    """Transcribe encoded audio here and now (in whatever thread or process calls it)."""
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


def _child_init(nice: int, idle: bool = True) -> None:
    """A decoding child's start: lower its priority, load the recogniser once.

    With ``idle`` the child joins Linux's ``SCHED_IDLE`` class: it runs only on a core
    nothing else of normal priority wants, and a text turn's thread that wakes up
    preempts it at once. A nice increment alone still leaves it a weighted share of a
    busy core (nice +10 against its parent: about a tenth) and may let it finish its
    time slice first. The price: while normal work keeps every core busy, notes wait
    (with the nice increment alone they still crept on). Where the class is not
    available the nice increment still applies.
    """
    lower_process(nice, idle)  # every thread it has (a library may start some at import)
    from speech.recognize import warm_up

    warm_up()


class VoiceInput:
    """Transcribes voice messages for the engine (pocketsphinx by default, ``speech``).

    Args:
        decoding: ``"thread"`` or ``"process"`` (see the module docstring); None reads
            ``BILLTALK_DIALOGUE_VOICE_DECODING`` (unset: thread until
            :meth:`prefer_processes`).
        processes: Child processes in the pool (process decoding).
        nice: How much lower the children's CPU priority is (``os.nice`` increment).
        idle: Whether the children also run in the ``SCHED_IDLE`` scheduling class (Linux):
            only on cores no normal-priority thread wants.
    """

    def __init__(
        self,
        decoding: Decoding | None = None,
        *,
        processes: int = 1,
        nice: int = 10,
        idle: bool = True,
    ) -> None:
        self._explicit = decoding is not None
        self.decoding: Decoding = decoding or "thread"
        self.processes = max(1, processes)
        self.nice = nice
        self.idle = idle
        self._pool: ProcessPoolExecutor | None = None
        #: Pools replaced after a child died (for logs and tests).
        self.restarts = 0
        #: Notes handed to the decoding processes and not answered yet.
        self.in_flight = 0

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

    def prefer_processes(self) -> None:
        """A server runtime's default: decode in child processes unless the setting says thread."""
        if not self._explicit:
            self.decoding = "process"

    async def transcribe(self, attachment: Attachment) -> Heard:
        """What ``attachment`` says (decoded off the event loop)."""
        if self.decoding == "thread":
            return await asyncio.to_thread(decode, attachment.data)
        self.in_flight += 1
        try:
            return await self._in_child(attachment.data)
        finally:
            self.in_flight -= 1

    async def _in_child(self, data: bytes) -> Heard:
        pool = self._ensure_pool()
        try:
            future: Future[Heard] = pool.submit(decode, data)
        except BrokenProcessPool:  # a child died before this note (idle): a fresh pool
            self._replace(pool)
            pool = self._ensure_pool()
            future = pool.submit(decode, data)
        try:
            return await asyncio.wrap_future(future)
        except BrokenProcessPool:
            # The child died on this note or on one queued with it. No retry: a note that
            # kills the decoder would kill the next pool too. The audio is not logged.
            self._replace(pool)
            log.warning("voice_decoder_died", restarts=self.restarts)
            return Heard(text="", error=DECODER_FAILED)

    def _ensure_pool(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                max_workers=self.processes,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_child_init,
                initargs=(self.nice, self.idle),
            )
        return self._pool

    def _replace(self, broken: ProcessPoolExecutor) -> None:
        """Drop a broken pool (once, however many notes it failed); the next note starts one."""
        if self._pool is broken:
            self._pool = None
            self.restarts += 1
            broken.shutdown(wait=False, cancel_futures=True)

    def child_pids(self) -> list[int]:
        """The decoding children's process ids (empty before the first note)."""
        processes = getattr(self._pool, "_processes", None) or {}
        return sorted(processes)

    def close(self) -> None:
        """Stop the decoding processes (queued notes are cancelled); a no-op for threads."""
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
