"""Conversation state: what the assistant remembers between turns.

The state is a plain dataclass serialised to JSON in the ``bot_conversations``
row. It holds the slots, the active form and its step, the pending payment
confirmation, the verification in progress, the interruption stack and the
clarification counters. It never holds a PIN or biometric data.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

#: Slots that survive a session reset (context the resident expects us to know;
#: a pending payment's outcome is still owed to them).
PERSISTENT_SLOTS = frozenset({"language", "pending_payment_id"})


#: Form steps at which the dialogue waits for a PIN said as digits.
PIN_STEPS = frozenset({"pin_code", "pin_new", "pin_repeat", "enroll_pin"})
#: Form steps that offer spoken choices (which bill: "water, electricity or gas?", which
#: payment method); a recogniser expects the step's own name.
CHOICE_STEPS = frozenset({"utility", "method"})


@dataclass
class ConversationState:
    """Everything remembered about one conversation.

    Attributes:
        session_id: Changes when a session idles out; buttons carry it so a button
            from an earlier session is recognised as stale.
        session_started_at: Start of the current session.
        last_activity_at: The last turn's time; drives the idle timeout.
        language: The language of the last message.
        slots: Named values (``utility``, ``amount``, ``method``, ``last_intent``...).
        active_form: The form being filled (``payment``, ``pin_setup``), if any.
        form_step: The question the form is waiting for (``utility``, ``amount``,
            ``method``, ``confirm``, ``verify_choice``, ``verify``...).
        pending_confirmation: The confirmation shown to the resident (token, hash,
            amount, utility, method, periods, step-up reasons), if any.
        verification: The challenge in progress (a :meth:`Challenge.to_dict`), if any.
        verified_token: The confirmation token that step-up verification unlocked.
        interrupted: Forms paused by an interruption, most recent last.
        slot_failures: Failed answers to the current question.
        misunderstandings: Messages not understood in a row.
        buttons: The buttons last offered (title, payload), for numbered presses.
        completed: Recently executed confirmation tokens and their payment ids, so a
            replayed Pay button answers "already paid" without paying twice.
        handoff: ``None``, or ``"waiting"`` while staff have the conversation.
        pin_setup: Internal marker for the PIN set-up flow (never the PIN itself;
            the first entry is kept as an argon2 hash only).
    """

    session_id: str
    session_started_at: datetime
    last_activity_at: datetime
    language: str = "en"
    slots: dict[str, Any] = field(default_factory=dict)
    active_form: str | None = None
    form_step: str | None = None
    pending_confirmation: dict[str, Any] | None = None
    verification: dict[str, Any] | None = None
    verified_token: str | None = None
    interrupted: list[dict[str, Any]] = field(default_factory=list)
    slot_failures: int = 0
    misunderstandings: int = 0
    buttons: list[dict[str, str]] = field(default_factory=list)
    completed: dict[str, str] = field(default_factory=dict)
    handoff: str | None = None
    pin_setup: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable form."""
        data = asdict(self)
        data["session_started_at"] = self.session_started_at.isoformat()
        data["last_activity_at"] = self.last_activity_at.isoformat()
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ConversationState:
        """Rebuild a state saved with :meth:`to_dict`."""
        values = dict(data)
        values["session_started_at"] = datetime.fromisoformat(values["session_started_at"])
        values["last_activity_at"] = datetime.fromisoformat(values["last_activity_at"])
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in values.items() if k in known})

    def clear_form(self) -> None:
        """Forget the active form, its confirmation and verification."""
        self.active_form = None
        self.form_step = None
        self.pending_confirmation = None
        self.verification = None
        self.verified_token = None
        self.slot_failures = 0
        self.pin_setup = None
        for name in ("pay_utility", "pay_amount", "pay_method", "pay_all"):
            self.slots.pop(name, None)

    def expecting(self, now: datetime, timeout_s: float) -> str | None:
        """The spoken answer this conversation waits for, for a recogniser to expect.

        ``"pin"`` after a PIN prompt (setting one up, or a PIN step-up), ``"yes_no"``
        after a payment confirmation, ``"utility"`` / ``"method"`` after the payment
        form asked which bill / which method (:data:`CHOICE_STEPS`), else None; None too
        once the session has idled out (``timeout_s`` since the last turn), because the
        question is then dropped.
        """
        if (now - self.last_activity_at).total_seconds() > timeout_s:
            return None
        if self.form_step in PIN_STEPS:
            return "pin"
        if self.form_step == "verify" and (self.verification or {}).get("kind") == "pin":
            return "pin"
        if self.form_step == "confirm" and self.pending_confirmation:
            return "yes_no"
        return self.form_step if self.form_step in CHOICE_STEPS else None

    def new_session(self, session_id: str, now: datetime) -> None:
        """Start a fresh session: the form, confirmation and buttons are dropped."""
        self.clear_form()
        self.interrupted = []
        self.buttons = []
        self.misunderstandings = 0
        self.slots = {k: v for k, v in self.slots.items() if k in PERSISTENT_SLOTS}
        self.session_id = session_id
        self.session_started_at = now
        self.last_activity_at = now
