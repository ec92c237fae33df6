"""What a form may use of the policy that runs it: a narrow collaborator, not the whole Policy.

The payment and enrollment forms are driven by :class:`bot.policy.Policy`, which
passes itself. The forms see only this protocol, so they never import the
policy (and the policy's imports of the forms are the only direction).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from actions.base import ActionContext
from bot.settings import DialogueSettings
from bot.store import ConversationStore
from bot.turn import Turn
from bot.verification_service import VerificationService


class PaymentFormHandle(Protocol):
    """The one thing another form may do to the payment form: drop a payment in flight."""

    def cancel(self, turn: Turn) -> None:
        """Clear the payment form's slots and step."""
        ...


class FormHost(Protocol):
    """The policy as the forms see it.

    Attributes:
        settings: The dialogue settings.
        store: The dialogue store (PINs, enrollment samples).
        verification: The step-up verification service.
        context: Builds the action context for a turn.
    """

    settings: DialogueSettings
    store: ConversationStore
    verification: VerificationService
    #: The action context (resident-scoped billing client) for a turn.
    context: Callable[[Turn], Awaitable[ActionContext]]

    @property
    def form(self) -> PaymentFormHandle:
        """The payment form, as other forms may touch it."""
        ...

    def payload(self, turn: Turn, name: str, **data: Any) -> str:
        """A button payload stamped with the session."""
        ...
