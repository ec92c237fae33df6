"""What every action receives and returns.

An action does one job (check the balance, explain a bill...). It talks to the
billing backend only through the resident-scoped :class:`BillingClient` in its
:class:`ActionContext`, and answers with :class:`~bot.responses.Reply` objects
(response keys and typed values), never with text: the dialogue renders them in
the resident's language.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any, Protocol

from actions import payloads
from actions.replies import Money, Reply, Term
from billtalk import vocabulary

UTILITIES = vocabulary.UTILITIES
METHODS = vocabulary.PAYMENT_METHODS


class Billing(Protocol):
    """The part of ``backend.client.BillingClient`` the actions use (all async)."""

    async def get_resident(self, resident_id: str) -> Any: ...
    async def get_balance(self, household_id: str) -> Any: ...
    async def list_bills(self, household_id: str, **kwargs: Any) -> list[Any]: ...
    async def get_bill(self, bill_id: str) -> Any: ...
    async def get_bills(self, bill_ids: Sequence[str]) -> list[Any]: ...
    async def preview_payment(self, household_id: str, **kwargs: Any) -> Any: ...
    async def create_payment(self, household_id: str, **kwargs: Any) -> Any: ...
    async def get_payment(self, payment_id: str) -> Any: ...
    async def list_payments(self, household_id: str, limit: int = 5) -> list[Any]: ...
    async def get_receipt(self, payment_id: str) -> Any: ...
    async def get_receipt_pdf(self, payment_id: str) -> bytes: ...
    async def submit_reading(self, household_id: str, **kwargs: Any) -> Any: ...
    async def usage(self, household_id: str, **kwargs: Any) -> Any: ...
    async def forecast(self, household_id: str, **kwargs: Any) -> Any: ...
    async def get_autopay(self, household_id: str) -> Mapping[str, Any]: ...
    async def set_autopay(self, household_id: str, **kwargs: Any) -> Any: ...
    async def late_fee_policy(self) -> Any: ...


@dataclass
class ActionContext:
    """Everything an action may use.

    Attributes:
        client: The billing client, scoped to the resident's household.
        resident: The resident (``backend.schemas.Resident``).
        language: ``en`` or ``zh``.
        entities: The message's entities, first value per entity name.
        slots: The conversation's slots (read-only for actions; return changes).
        text: The message text (for wording such as "turn off").
        today: The resident's current date.
        currency: The currency of every amount.
        supports_files: Whether the channel can deliver files (receipt PDFs).
        session: A short marker of the session, put into button payloads.
    """

    client: Billing
    resident: Any
    language: str
    entities: Mapping[str, Any]
    slots: Mapping[str, Any]
    text: str
    today: date
    currency: str = "CNY"
    supports_files: bool = True
    session: str = ""

    @property
    def household_id(self) -> str:
        """The resident's household (the only one an action may ask about)."""
        return str(self.resident.household_id)

    def money(self, amount: Decimal) -> Money:
        """An amount in this context's currency, for a reply."""
        return Money(Decimal(amount), self.currency)

    def utility(self, *, carry: bool = False) -> str | None:
        """The utility the message names; with ``carry``, else the one being talked about."""
        value = self.entities.get("utility")
        if value is None and carry:
            value = self.slots.get("context_utility")
        return str(value) if value in UTILITIES else None

    def payload(self, name: str, **data: Any) -> str:
        """A button payload (``/name{json}``) stamped with the session marker."""
        return payloads.encode(name, self.session, **data)


@dataclass
class ActionResult:
    """What an action did.

    Attributes:
        replies: What to say.
        slots: Slot changes (``None`` removes a slot).
        payment_ids: Payments created or looked at.
        flag: Flag the conversation for staff with this reason.
        handoff: Put the conversation in the staff queue (the bot goes quiet).
    """

    replies: list[Reply] = field(default_factory=list)
    slots: dict[str, Any] = field(default_factory=dict)
    payment_ids: list[str] = field(default_factory=list)
    flag: str | None = None
    handoff: bool = False


Action = Callable[[ActionContext], Awaitable[ActionResult]]


def utility_term(utility: str) -> Term:
    """A utility name for a reply."""
    return Term("utility", utility)


def method_term(method: str) -> Term:
    """A payment method name for a reply."""
    return Term("method", method)
