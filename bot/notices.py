"""Proactive notices: the backend's outbox delivered into conversations.

The billing backend queues channel-agnostic notices (arrears reminders, and the
outcome of a payment that was left pending and settled later, by
reconciliation or a gateway webhook). :class:`NoticeCourier` delivers them:

* a channel polls :meth:`DialogueEngine.deliver_notices
  <bot.engine.DialogueEngine.deliver_notices>` (the terminal chat does before
  every prompt) and sends what it gets back;
* a resident's next message also picks up the outcome of their pending payment
  (:meth:`NoticeCourier.claim_payment_notice`), so it is never said twice.

**Exactly once.** A notice is first *written* into the conversation, under the
conversation's lease, as a ``notice`` event with the rendered text, together
with a row in ``bot_notice_deliveries`` keyed by the backend's notice id (the
state's ``pending_payment_id`` is cleared in the same transaction). The key
makes a second write of the same notice, by any worker, a no-op. Only then is
the notice marked delivered in the backend, and whoever's mark is accepted
(a second mark gets ``409``) hands it to the channel. A worker that dies
between the two steps leaves the notice pending in the backend: the next poll,
by any worker, finds it already written, only marks it, and hands the written
text to the channel. So the resident is told once, and nothing is lost short of
the channel's own send failing after the hand-over.

A resident's own turn may tell a settled payment's outcome itself
(:meth:`NoticeCourier.claim_payment_notice`): the turn's commit records the
notice (``turn`` mode) with the turn's log row, and the engine marks it after
the commit. A poll that finds a ``turn`` notice only marks it; the turn's reply
was the telling.

Which conversation: a payment's outcome goes to the conversation that is
waiting for it (its ``pending_payment_id``); anything else to the household's
most recently active conversation on the polling channel. Conversations with
staff (human handoff) get nothing until released.
"""

from __future__ import annotations

import dataclasses
import json
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol

from actions.base import utility_term
from actions.errors import BillingError, Conflict
from actions.pay_bill import settled_reply
from billtalk.logs import get_logger
from billtalk.settings import get_settings
from bot.messages import Button, OutgoingMessage
from bot.outbox import Target, add_row
from bot.reminders import community_now, digest_replies, in_quiet_hours
from bot.responses import Money, Reply
from bot.settings import DialogueSettings
from bot.state import ConversationState
from bot.store import ConversationRow, ConversationStore, NoticeAlreadyWrittenError, NoticeWrite


class NoticeHost(Protocol):
    """What the courier uses of the engine that owns it (the engine passes itself)."""

    store: ConversationStore
    settings: DialogueSettings
    billing: Any
    currency: str
    clock: Callable[[], datetime]

    async def scoped_client(self, resident_id: str) -> Any:
        """A billing client scoped to ``resident_id``'s household."""
        ...

    def render_replies(self, replies: list[Reply], language: str) -> list[OutgoingMessage]:
        """Replies rendered in ``language``."""
        ...


log = get_logger("bot.notices")

#: Arrears reminder kinds with their own template (``notice_<kind>``).
REMINDER_KINDS = frozenset({"due_soon", "due_today", "overdue_7", "overdue_30"})
PAYMENT_KINDS = frozenset({"payment_succeeded", "payment_failed"})
#: The conversation-log event of a delivered notice.
EVENT = "notice"


@dataclass(frozen=True)
class Delivery:
    """A notice delivered into a conversation: what the channel must now send."""

    conversation_id: str
    channel: str
    external_user_id: str
    resident_id: str | None
    notice_id: int
    kind: str
    messages: tuple[OutgoingMessage, ...]


class NoticeCourier:
    """Delivers the backend's notices for one engine (:class:`NoticeHost`)."""

    def __init__(self, engine: NoticeHost) -> None:
        self.engine = engine

    # -- polling --------------------------------------------------------------------

    async def deliver(
        self,
        *,
        channel: str | None = None,
        resident_id: str | None = None,
        limit: int = 50,
    ) -> list[Delivery]:
        """Deliver pending notices into conversations (see the module docstring).

        Args:
            channel: Only into conversations on this channel.
            resident_id: Only this resident's household's notices, into this
                resident's conversations.
            limit: At most this many notices are looked at.
        """
        engine = self.engine
        if resident_id is not None:
            client = await engine.scoped_client(resident_id)
        else:
            client = engine.billing
        notices = await client.pending_notices(limit=limit)
        out: list[Delivery] = []
        settings = get_settings()
        quiet = in_quiet_hours(engine.clock(), settings.quiet_hours, settings.timezone)
        digested: set[str] = set()
        for notice in notices:
            reminder = str(notice.kind) in REMINDER_KINDS
            if reminder and quiet:
                continue  # reminders wait for the end of the quiet hours (still pending)
            residents = [resident_id] if resident_id is not None else list(notice.resident_ids)
            target = self._target(notice, residents, channel)
            if target is None:
                continue
            if reminder and target.id in digested:
                # One digest per resident: it already tells this bill (from the balance).
                await self.mark_delivered(notice.notice_id, target.channel)
                continue
            if reminder:
                digested.add(target.id)
            delivery = await self._deliver_one(notice, target)
            if delivery is not None:
                out.append(delivery)
        return out

    def _target(
        self, notice: Any, residents: list[str], channel: str | None
    ) -> ConversationRow | None:
        store = self.engine.store
        rows = [row for rid in residents for row in store.find_conversations(rid)]
        payment_id = getattr(notice, "payment_id", None)
        if payment_id:
            # The whole household: the payer may be another resident, on another channel.
            household = [
                row
                for rid in (getattr(notice, "resident_ids", None) or residents)
                for row in store.find_conversations(rid)
            ]
            waiting = [r for r in household if _pending_payment(r) == payment_id]
            if waiting:
                row = waiting[0]
                ok = (channel is None or row.channel == channel) and (row.resident_id in residents)
                return row if ok and row.status != "waiting_for_staff" else None
        rows = [
            r
            for r in rows
            if (channel is None or r.channel == channel)
            and r.status != "waiting_for_staff"
            and r.resident_id is not None
        ]
        if not rows:
            return None
        return max(rows, key=lambda r: r.updated_at)

    async def _deliver_one(self, notice: Any, row: ConversationRow) -> Delivery | None:
        engine = self.engine
        written = engine.store.notice_delivery(notice.notice_id)
        if written is None:
            await self._write(notice, row)
            written = engine.store.notice_delivery(notice.notice_id)
            if written is None:  # pragma: no cover - the write either wrote or found it
                return None
        # A crash before this line leaves the notice written and pending in the backend:
        # the next poll (any worker) comes straight here.
        if not await self.mark_delivered(notice.notice_id, written.channel):
            return None  # another worker's mark was accepted: it hands it over
        if written.mode != "poll":
            return None  # told in the resident's turn
        conversation = engine.store.get_conversation(written.conversation_id)
        if conversation is None:  # pragma: no cover - rows are not deleted
            return None
        buttons: tuple[Button, ...] = ()
        if written.kind in REMINDER_KINDS:  # the digest's pay button, as written into the state
            state = json.loads(conversation.state or "{}")
            buttons = tuple(
                Button(b["title"], b["payload"], b.get("id", ""))
                for b in state.get("buttons") or []
                if str(b.get("payload", "")).startswith("/pay_all")
            )
        return Delivery(
            conversation_id=conversation.id,
            channel=conversation.channel,
            external_user_id=conversation.external_user_id,
            resident_id=conversation.resident_id,
            notice_id=notice.notice_id,
            kind=written.kind,
            messages=(
                OutgoingMessage(
                    text=written.text or "", buttons=buttons, language=written.language
                ),
            ),
        )

    async def _write(self, notice: Any, row: ConversationRow) -> None:
        """Write the notice into ``row``'s conversation (no-op if it was written already)."""
        engine = self.engine
        owner = uuid.uuid4().hex
        loaded = await engine.store.acquire(row.id, owner, engine.settings.lease_s)
        try:
            now = engine.clock()
            state = (
                ConversationState.from_dict(loaded.state)
                if loaded.state
                else ConversationState(uuid.uuid4().hex, now, now)
            )
            payment_id = getattr(notice, "payment_id", None)
            if payment_id and state.slots.get("pending_payment_id") == payment_id:
                state.slots.pop("pending_payment_id", None)
            replies = await self.replies(notice, state)
            messages = engine.render_replies(replies, state.language)
            text = "\n".join(m.text for m in messages)
            buttons = tuple(
                dataclasses.replace(b, id=secrets.token_urlsafe(9)[:12])
                for b in messages[0].buttons
            )
            if state.active_form is not None or state.buttons:
                # Mid-conversation: the buttons on screen stay the ones that count (a
                # reminder must never turn "1" into another payment); text only.
                buttons = ()
            if buttons:  # the digest's pay button: pressed by id, or by number in the terminal
                state.buttons = [
                    {"id": b.id, "title": b.title, "payload": b.payload} for b in buttons
                ]
            engine.store.commit_event(
                loaded,
                owner,
                state.to_dict(),
                EVENT,
                at=now,
                actor="bot",
                data={
                    "notice_id": notice.notice_id,
                    "kind": notice.kind,
                    "payment_id": payment_id,
                    "bill_id": getattr(notice, "bill_id", None),
                    "channel": row.channel,
                    "text": text,
                    "templates": [r.key for r in replies],
                },
                notice=NoticeWrite(
                    notice_id=notice.notice_id,
                    kind=str(notice.kind),
                    mode="poll",
                    channel=row.channel,
                    language=messages[0].language,
                    text=text,
                ),
                also=lambda s: add_row(
                    s,
                    Target(row.channel, row.external_user_id, row.id, row.resident_id),
                    OutgoingMessage(
                        text=text,
                        buttons=buttons,
                        language=messages[0].language,
                        spoken=messages[0].spoken,
                        kind="notice",
                    ),
                    kind="notice",
                    dedupe_key=f"notice:{notice.notice_id}",
                    now=now,
                ),
            )
        except NoticeAlreadyWrittenError:
            engine.store.release(row.id, owner)  # another worker wrote it: just mark it
        except BaseException:
            engine.store.release(row.id, owner)
            log.exception("notice_delivery_failed", notice_id=notice.notice_id)
            raise

    async def mark_delivered(self, notice_id: int, channel: str) -> bool:
        """Tell the backend a written notice was delivered; whether this call's mark was accepted.

        ``False`` when it was already marked (``409``): by another worker, which
        then hands the notice to the channel.
        """
        try:
            await self.engine.billing.mark_notice_delivered(notice_id, channel=channel)
        except Conflict:
            return False
        self.engine.store.notice_marked(notice_id, self.engine.clock())
        return True

    # -- within a turn --------------------------------------------------------------

    async def claim_payment_notice(
        self, client: Any, payment_id: str, channel: str, language: str
    ) -> NoticeWrite | None:
        """The outcome notice of a settled payment, for the resident's own turn to tell.

        Nothing is written or marked here: the turn's commit records the returned
        notice with its log row (``commit_turn(notices=...)``), and the engine marks
        it delivered after that commit (:meth:`mark_delivered`).

        Args:
            client: The resident-scoped billing client (lists the household's notices).
            payment_id: The settled payment.
            channel: The turn's channel.
            language: The turn's language.

        Returns:
            The notice to record, or ``None`` when the turn must not tell it: it was
            already delivered, or written into a conversation by a poller (which
            hands it over).
        """
        try:
            notices = await client.pending_notices(limit=200)
        except BillingError:
            return None
        notice = next((n for n in notices if getattr(n, "payment_id", None) == payment_id), None)
        if notice is None or self.engine.store.notice_delivery(notice.notice_id) is not None:
            return None
        return NoticeWrite(
            notice_id=notice.notice_id,
            kind=str(notice.kind),
            mode="turn",
            channel=channel,
            language=language if language in ("en", "zh") else "en",
        )

    async def mark_told_in_turn(self, notices: list[NoticeWrite]) -> None:
        """After a turn's commit: mark the notices it told delivered in the backend.

        A failure is only logged: the notice stays pending in the backend, and the
        next poll finds it written (``turn`` mode) and only marks it.
        """
        for notice in notices:
            try:
                await self.mark_delivered(notice.notice_id, notice.channel)
            except Exception:
                log.exception("notice_mark_failed", notice_id=notice.notice_id)

    # -- rendering ------------------------------------------------------------------

    async def replies(self, notice: Any, state: ConversationState | None = None) -> list[Reply]:
        """The replies that tell a notice, in the resident's language.

        An arrears reminder is told as the household's digest (``bot.reminders``):
        what is overdue or due soon now, with computed days, the total and one
        pay button; the per-bill wording is only a fallback.
        """
        engine = self.engine
        currency = engine.currency
        kind = str(notice.kind)
        if kind in REMINDER_KINDS and getattr(notice, "household_id", None):
            today = community_now(engine.clock(), get_settings().timezone).date()
            try:
                digest = await digest_replies(
                    engine.billing,
                    str(notice.household_id),
                    today,
                    currency,
                    state.session_id if state is not None else "",
                )
            except BillingError:
                digest = None
            if digest:
                return digest
        if kind in PAYMENT_KINDS and getattr(notice, "payment_id", None):
            try:
                payment = await engine.billing.get_payment(notice.payment_id)
            except BillingError:
                payment = None
            if payment is not None:
                return [settled_reply(payment, currency)]
        if kind in REMINDER_KINDS and getattr(notice, "bill_id", None):
            try:
                bill = await engine.billing.get_bill(notice.bill_id)
            except BillingError:
                bill = None
            if bill is not None:
                return [
                    Reply(
                        f"notice_{kind}",
                        {
                            "utility": utility_term(bill.utility),
                            "amount": Money(Decimal(notice.amount_due), currency),
                            "due_date": notice.due_date,
                        },
                    )
                ]
        return [Reply("notice_generic", {"message": str(notice.message)})]


def _pending_payment(row: ConversationRow) -> str | None:
    try:
        state = json.loads(row.state or "{}")
    except ValueError:
        return None
    value = (state.get("slots") or {}).get("pending_payment_id")
    return str(value) if value else None
