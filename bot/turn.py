"""One turn in the making: the message, the state, and what the turn has done so far."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from actions.base import ActionContext, ActionResult
from bot.messages import IncomingMessage
from bot.responses import Reply
from bot.state import ConversationState
from bot.store import NoticeWrite
from nlu.language import has_letters


@dataclass
class Turn:
    """Mutable record of one turn, filled by the policy and logged by the engine."""

    message: IncomingMessage
    state: ConversationState
    now: datetime
    today: date
    conversation_id: str
    resident_id: str | None
    household_id: str | None
    language: str
    status: str = "active"
    flagged: bool = False
    flag_reason: str | None = None
    parse: dict[str, Any] | None = None
    intent: str | None = None
    confidence: float | None = None
    entities: dict[str, Any] = field(default_factory=dict)
    replies: list[Reply] = field(default_factory=list)
    actions: list[str] = field(default_factory=list)
    verification: list[dict[str, Any]] = field(default_factory=list)
    payment_ids: list[str] = field(default_factory=list)
    #: Backend notices this turn's replies tell (recorded with the turn, marked after it).
    notices: list[NoticeWrite] = field(default_factory=list)
    #: The text is a secret (a PIN): it is masked entirely in the log.
    secret: bool = False
    error: str | None = None
    #: What the engine heard in a voice message (text, confidence, engine), logged.
    transcript: dict[str, Any] | None = None
    #: The message was refused as unusable: the buttons offered before stay valid.
    keep_buttons: bool = False
    _context: ActionContext | None = None
    _client: Any = None

    def read(self, text: str, parse: dict[str, Any]) -> None:
        """Take in the NLU's ``parse`` of ``text``: the parse and the turn's language.

        The parse's language becomes the conversation's only when ``text`` has letters
        to tell it by: digits alone (a PIN, an amount, a link code) keep the language.
        """
        self.parse = parse
        if has_letters(text):
            self.language = parse.get("language") or self.language
        self.state.language = self.language

    def say(self, key: str, **params: Any) -> None:
        """Queue a reply with no buttons."""
        self.replies.append(Reply(key, params))

    def add(self, reply: Reply) -> None:
        """Queue a reply."""
        self.replies.append(reply)

    def flag(self, reason: str) -> None:
        """Flag the conversation for staff."""
        self.flagged = True
        self.flag_reason = reason

    def apply(self, name: str, result: ActionResult) -> None:
        """Record an action's result: replies, slot changes, payments, flags."""
        self.actions.append(name)
        self.replies.extend(result.replies)
        for key, value in result.slots.items():
            if value is None:
                self.state.slots.pop(key, None)
            else:
                self.state.slots[key] = value
        self.payment_ids.extend(result.payment_ids)
        if result.flag:
            self.flag(result.flag)
        if result.handoff:
            self.status = "waiting_for_staff"
