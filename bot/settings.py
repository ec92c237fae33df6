"""Settings of the dialogue engine (``BILLTALK_DIALOGUE_*`` environment variables)."""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic_settings import BaseSettings, SettingsConfigDict


class DialogueSettings(BaseSettings):
    """Knobs of the dialogue engine.

    Every value can be set from the environment with the ``BILLTALK_DIALOGUE_``
    prefix, e.g. ``BILLTALK_DIALOGUE_SESSION_TIMEOUT_S=300``.
    """

    model_config = SettingsConfigDict(
        env_prefix="BILLTALK_DIALOGUE_", env_file=".env", extra="ignore", frozen=True
    )

    #: Database for conversation state and the log; empty = ``BILLTALK_DATABASE_URL``.
    database_url: str = ""
    #: A session idles out after this many seconds; a pending confirmation is dropped.
    session_timeout_s: int = 600
    #: A payment confirmation (and its Pay button) is valid for this many seconds.
    confirmation_ttl_s: int = 300
    # Whether a payment needs step-up verification (the amount threshold, the
    # daily limit, the risk rules) is decided by the backend's one step-up policy
    # (BILLTALK_BILLING_STEP_UP_THRESHOLD, BILLTALK_BILLING_DAILY_LIMIT; see
    # backend/domain/stepup.py): the dialogue asks through the payment preview.
    #: Failed verifications (per resident and kind) before the kind is locked.
    lockout_failures: int = 5
    #: How long a locked verification kind stays locked.
    lockout_minutes: int = 15
    #: Below this NLU confidence a message counts as not understood.
    fallback_threshold: float = 0.45
    #: When the top two intents are closer than this, the resident is asked to choose.
    ambiguity_margin: float = 0.08
    #: Messages longer than this are refused without being parsed.
    max_message_chars: int = 2000
    #: Failed answers to one question before the assistant explains and offers to cancel.
    max_slot_failures: int = 2
    #: Misunderstood messages in a row before a human is offered.
    max_misunderstandings: int = 2
    #: Seconds a worker may hold a conversation's turn lease before another may take it.
    lease_s: float = 30.0
    #: Flood control: messages one channel user may send per window before the engine
    #: answers once "slow down" and drops the rest of the window unread (0: no limit).
    #: Counted in Redis when ``BILLTALK_REDIS_URL`` is set, else in the engine's process.
    messages_per_window: int = 30
    #: The flood-control window, in seconds.
    message_window_s: int = 60
    #: NLU parses remembered per engine (exact text and reference date; least recently used
    #: dropped): a repeated message ("balance", a command's words) skips the encoder. 0: off.
    nlu_cache_size: int = 1024
    #: Where voice notes are decoded: "thread" (a worker thread of this process) or
    #: "process" (a pool of lower-priority child processes, so decoding does not take the
    #: cores from text turns); empty: the channel runtime's choice (the Telegram runtime:
    #: process; everything else: thread). See bot/voice_input.py.
    voice_decoding: Literal["", "thread", "process"] = ""
    #: Child processes that decode voice notes, with process decoding (per engine process).
    voice_processes: int = 1
    #: How much lower the decoding processes' CPU priority is (an ``os.nice`` increment).
    voice_nice: int = 10
    #: Whether the decoding processes run in Linux's ``SCHED_IDLE`` class (only on cores
    #: nothing of normal priority wants: a waking text turn preempts a decode at once).
    voice_idle: bool = True


@lru_cache(maxsize=1)
def get_dialogue_settings() -> DialogueSettings:
    """The process's dialogue settings, read once from the environment."""
    return DialogueSettings()
