"""Conversations, their state, the turn log and events: one turn, one transaction.

A worker first takes the conversation's *lease* (a short conditional
``UPDATE``), so two workers handling messages of the same conversation at once
take turns instead of interleaving. The turn then runs without holding a
database lock (it calls the billing API, which may share the database), and ends
with one transaction that writes the new state and the log row together,
conditional on the version it read and the lease it holds. If either check fails
nothing is written and :class:`ConcurrentTurnError` is raised.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import (
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    bindparam,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.orm import Mapped, Session, mapped_column

from bot.store.links import LINK_COLUMNS
from bot.store.notice_log import NoticeAlreadyWrittenError, NoticeLog, NoticeWrite
from bot.store.schema import Base, _dumps


class ConversationRow(Base):
    __tablename__ = "bot_conversations"
    __table_args__ = (UniqueConstraint("channel", "external_user_id", name="uq_bot_conv_user"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    channel: Mapped[str] = mapped_column(String(32))
    external_user_id: Mapped[str] = mapped_column(String(128))
    resident_id: Mapped[str | None] = mapped_column(String(64), index=True, nullable=True)
    household_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    #: ``active`` or ``waiting_for_staff`` (human handoff).
    status: Mapped[str] = mapped_column(String(24), default="active")
    flagged: Mapped[bool] = mapped_column(Boolean, default=False)
    flag_reason: Mapped[str | None] = mapped_column(String(64), nullable=True)
    state: Mapped[str] = mapped_column(Text, default="{}")
    version: Mapped[int] = mapped_column(Integer, default=0)
    turns: Mapped[int] = mapped_column(Integer, default=0)
    lease_owner: Mapped[str | None] = mapped_column(String(36), nullable=True)
    lease_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class TurnRow(Base):
    __tablename__ = "bot_turns"
    __table_args__ = (UniqueConstraint("conversation_id", "turn", name="uq_bot_turn"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    conversation_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("bot_conversations.id", ondelete="CASCADE"), index=True
    )
    turn: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    channel: Mapped[str] = mapped_column(String(32))
    resident_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    household_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    session_id: Mapped[str] = mapped_column(String(36))
    text_raw: Mapped[str | None] = mapped_column(Text, nullable=True)
    text_masked: Mapped[str | None] = mapped_column(Text, nullable=True)
    button_payload: Mapped[str | None] = mapped_column(Text, nullable=True)
    language: Mapped[str | None] = mapped_column(String(8), nullable=True)
    intent: Mapped[str | None] = mapped_column(String(64), nullable=True)
    confidence: Mapped[float | None] = mapped_column(Float, nullable=True)
    ranking: Mapped[str] = mapped_column(Text, default="[]")
    entities: Mapped[str] = mapped_column(Text, default="[]")
    slots_before: Mapped[str] = mapped_column(Text, default="{}")
    slots_after: Mapped[str] = mapped_column(Text, default="{}")
    actions: Mapped[str] = mapped_column(Text, default="[]")
    replies: Mapped[str] = mapped_column(Text, default="[]")
    verification: Mapped[str] = mapped_column(Text, default="[]")
    payment_ids: Mapped[str] = mapped_column(Text, default="[]")
    latency_ms: Mapped[float] = mapped_column(Float, default=0.0)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    #: What the engine heard in a voice message (JSON: text, confidence, engine...).
    transcript: Mapped[str | None] = mapped_column(Text, nullable=True)


class EventRow(Base):
    """Something that happened in a conversation outside a resident's turn.

    Staff taking a conversation over or releasing it (with the staff id), and
    notices the assistant delivered on its own (a payment that settled later, an
    arrears reminder). ``after_turn`` places the event in the log: it happened
    after that many turns.
    """

    __tablename__ = "bot_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    conversation_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("bot_conversations.id", ondelete="CASCADE"), index=True
    )
    after_turn: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    event: Mapped[str] = mapped_column(String(32))
    #: Who caused it: ``staff:<id>`` or ``bot``.
    actor: Mapped[str | None] = mapped_column(String(80), nullable=True)
    data: Mapped[str] = mapped_column(Text, default="{}")


class ProcessedDeliveryRow(Base):
    """An inbound delivery (e.g. a Telegram update) already acted on: redeliveries are ignored."""

    __tablename__ = "bot_processed_deliveries"

    delivery_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    conversation_id: Mapped[str] = mapped_column(String(36))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    #: The turn's replies as a JSON list of :func:`bot.messages.dump_message` strings, so a
    #: channel whose worker died before sending them can send them after all.
    replies: Mapped[str | None] = mapped_column(Text, nullable=True)


#: The tables, for Core statements in the per-turn path (no ORM unit of work there).
CONVERSATIONS = cast(Table, ConversationRow.__table__)
TURNS = cast(Table, TurnRow.__table__)
DELIVERIES = cast(Table, ProcessedDeliveryRow.__table__)
_c = CONVERSATIONS.c
#: Statements of every turn, built once (their construction costs more CPU than running
#: them); the values are bound at execution. ``b_`` names are the WHERE clauses' parameters.
_ACQUIRE = (
    update(CONVERSATIONS)
    .where(
        _c.id == bindparam("b_id"),
        or_(_c.lease_until.is_(None), _c.lease_until < bindparam("b_now")),
    )
    .values(lease_owner=bindparam("b_owner"), lease_until=bindparam("b_until"))
    .returning(
        _c.id,
        _c.channel,
        _c.external_user_id,
        _c.resident_id,
        _c.household_id,
        _c.status,
        _c.flagged,
        _c.flag_reason,
        _c.state,
        _c.version,
        _c.turns,
    )
)
#: The lease with the channel user's link read in the same statement (``b_channel``,
#: ``b_external_id``): a turn whose conversation id is known needs no read of its own for it.
_ACQUIRE_LINKED = _ACQUIRE.returning(*LINK_COLUMNS)
_RELEASE = (
    update(CONVERSATIONS)
    .where(_c.id == bindparam("b_id"), _c.lease_owner == bindparam("b_owner"))
    .values(lease_owner=None, lease_until=None)
)
#: The new state, if the version and the lease still hold; the SET clause is the
#: columns given at execution.
_WRITE_BACK = update(CONVERSATIONS).where(
    _c.id == bindparam("b_id"),
    _c.version == bindparam("b_version"),
    _c.lease_owner == bindparam("b_owner"),
)
_INSERT_TURN = insert(TURNS)
_INSERT_DELIVERY = insert(DELIVERIES)
_DELIVERY = select(DELIVERIES).where(DELIVERIES.c.delivery_id == bindparam("b_id"))


class ConcurrentTurnError(RuntimeError):
    """Another worker changed the conversation (or took its lease) during this turn."""


class ConversationBusyError(RuntimeError):
    """The conversation's lease could not be taken in time."""


@dataclass
class LoadedConversation:
    """A conversation row as read at the start of a turn."""

    conversation_id: str
    channel: str
    external_user_id: str
    resident_id: str | None
    household_id: str | None
    status: str
    flagged: bool
    flag_reason: str | None
    state: dict[str, Any]
    version: int
    turns: int
    #: The record of the delivery asked about in :meth:`ConversationLog.acquire`, read
    #: under the lease (``None``: not processed, or not asked).
    processed: ProcessedDeliveryRow | None = None
    #: The channel user's link ``(resident_id, household_id)`` if :meth:`ConversationLog.acquire`
    #: was asked for it (``None``: not linked, or not asked).
    link: tuple[str, str] | None = None


@dataclass
class TurnRecord:
    """One turn of the conversation log, as the engine hands it to the store."""

    at: datetime
    channel: str
    resident_id: str | None
    household_id: str | None
    session_id: str
    text_raw: str | None
    text_masked: str | None
    button_payload: str | None
    language: str | None
    intent: str | None
    confidence: float | None
    ranking: list[Any]
    entities: list[Any]
    slots_before: dict[str, Any]
    slots_after: dict[str, Any]
    actions: list[str]
    replies: list[dict[str, Any]]
    verification: list[dict[str, Any]]
    payment_ids: list[str]
    latency_ms: float
    error: str | None
    transcript: dict[str, Any] | None = None
    #: The channel's id of the inbound delivery (recorded with the turn, once).
    delivery_id: str | None = None
    #: The replies as sent to the channel (JSON), kept with the delivery id.
    delivery_replies: str | None = None


def _write_back(
    s: Session, loaded: LoadedConversation, owner: str, *, state: Any, at: datetime, **values: Any
) -> None:
    """Store a conversation's new state and release its lease, if the lease and version still hold.

    Raises:
        ConcurrentTurnError: the row's version or lease changed since it was acquired.
    """
    changed = s.execute(
        _WRITE_BACK,
        {
            "b_id": loaded.conversation_id,
            "b_version": loaded.version,
            "b_owner": owner,
            "state": _dumps(state),
            "version": loaded.version + 1,
            "lease_owner": None,
            "lease_until": None,
            "updated_at": at,
            **values,
        },
    ).rowcount  # type: ignore[attr-defined]
    if changed != 1:
        raise ConcurrentTurnError(loaded.conversation_id)


def _changed_status(
    loaded: LoadedConversation, status: str, flagged: bool, flag_reason: str | None
) -> dict[str, Any]:
    """The status columns a turn changed (staff may change the others meanwhile)."""
    out: dict[str, Any] = {}
    if status != loaded.status:
        out["status"] = status
    if flagged != loaded.flagged or flag_reason != loaded.flag_reason:
        out["flagged"], out["flag_reason"] = flagged, flag_reason
    return out


class ConversationLog(NoticeLog):
    """Conversations, turns and events (the notice log is written in the same transactions)."""

    #: How many channel users' conversation ids are remembered in-process.
    id_cache_size = 100_000

    def conversation_id_for(
        self, channel: str, external_user_id: str, resident_id: str | None, now: datetime
    ) -> str:
        """The conversation of this channel user, created if it does not exist."""
        key = (channel, external_user_id)
        cached = self._ids.get(key)
        if cached is not None:
            return cached
        conv_id = self._conversation_id_for(channel, external_user_id, resident_id, now)
        if len(self._ids) >= self.id_cache_size:
            self._ids.clear()
        self._ids[key] = conv_id
        return conv_id

    def known_conversation_id(self, channel: str, external_user_id: str) -> str | None:
        """The conversation id of this channel user if this process already knows it
        (no database read; ``None``: ask :meth:`conversation_id_for`)."""
        return self._ids.get((channel, external_user_id))

    def _conversation_id_for(
        self, channel: str, external_user_id: str, resident_id: str | None, now: datetime
    ) -> str:
        with self.session() as s:
            row = s.scalar(
                select(ConversationRow.id).where(
                    ConversationRow.channel == channel,
                    ConversationRow.external_user_id == external_user_id,
                )
            )
            if row is not None:
                return row
            conv_id = str(uuid.uuid4())
            s.add(
                ConversationRow(
                    id=conv_id,
                    channel=channel,
                    external_user_id=external_user_id,
                    resident_id=resident_id,
                    status="active",
                    flagged=False,
                    state="{}",
                    version=0,
                    turns=0,
                    created_at=now,
                    updated_at=now,
                )
            )
        return conv_id

    async def acquire(
        self,
        conversation_id: str,
        owner: str,
        lease_s: float,
        wait_s: float = 15.0,
        *,
        delivery_id: str | None = None,
        link: tuple[str, str] | None = None,
    ) -> LoadedConversation:
        """Take the conversation's lease and read it.

        Waits (polling) while another worker holds an unexpired lease. Each attempt
        is one statement (``UPDATE ... RETURNING``, in autocommit on PostgreSQL: one
        round trip) in a worker thread, so the event loop never waits for the database.
        With ``delivery_id``, the same worker-thread call then reads that delivery's
        record (:meth:`processed_delivery`) into ``processed``: a statement of its own,
        after the lease is held, so it sees every turn committed by earlier holders.
        With ``link`` (channel, external user id), the lease's statement also reads that
        user's link (:meth:`Links.linked_resident`) into ``link``: as fresh as a read of its
        own made just before the lease, without the round trip.

        Raises:
            ConversationBusyError: the lease was not free within ``wait_s``.
        """
        deadline = time.monotonic() + wait_s
        delay = 0.002
        while True:
            loaded = await asyncio.to_thread(
                self._try_acquire, conversation_id, owner, lease_s, delivery_id, link
            )
            if loaded is not None:
                return loaded
            if time.monotonic() > deadline:
                raise ConversationBusyError(conversation_id)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.05)

    def _try_acquire(
        self,
        conversation_id: str,
        owner: str,
        lease_s: float,
        delivery_id: str | None = None,
        link: tuple[str, str] | None = None,
    ) -> LoadedConversation | None:
        """Take the lease if it is free and return the row as read; ``None`` if it is held."""
        now = datetime.now(UTC)
        params = {
            "b_id": conversation_id,
            "b_now": now,
            "b_owner": owner,
            "b_until": now + timedelta(seconds=lease_s),
        }
        statement = _ACQUIRE
        if link is not None:
            statement = _ACQUIRE_LINKED
            params.update(b_channel=link[0], b_external_id=link[1])
        with self.single() as conn:
            row = conn.execute(statement, params).one_or_none()
        if row is None:
            return None
        linked = None
        if link is not None and row.link_resident_id is not None:
            linked = (row.link_resident_id, row.link_household_id)
        processed = None if delivery_id is None else self.processed_delivery(delivery_id)
        return LoadedConversation(
            conversation_id=row.id,
            channel=row.channel,
            external_user_id=row.external_user_id,
            resident_id=row.resident_id,
            household_id=row.household_id,
            status=row.status,
            flagged=bool(row.flagged),
            flag_reason=row.flag_reason,
            state=json.loads(row.state or "{}"),
            version=row.version,
            turns=row.turns,
            processed=processed,
            link=linked,
        )

    def release(self, conversation_id: str, owner: str) -> None:
        """Give the lease back without writing anything (the turn failed)."""
        with self.single() as conn:
            conn.execute(_RELEASE, {"b_id": conversation_id, "b_owner": owner})

    def commit_turn(
        self,
        loaded: LoadedConversation,
        owner: str,
        state: dict[str, Any],
        record: TurnRecord,
        *,
        status: str,
        flagged: bool,
        flag_reason: str | None,
        resident_id: str | None,
        household_id: str | None,
        notices: tuple[NoticeWrite, ...] | list[NoticeWrite] = (),
    ) -> None:
        """Write the new state and the turn's log row in one transaction, releasing the lease.

        ``notices`` the turn's replies told (a settled payment's outcome) are
        recorded in the same transaction.

        Raises:
            ConcurrentTurnError: the row's version or lease changed since :meth:`acquire`,
                or one of ``notices`` was written meanwhile (by another conversation).
        """
        with self.session() as s:
            _write_back(
                s,
                loaded,
                owner,
                state=state,
                at=record.at,
                turns=loaded.turns + 1,
                resident_id=resident_id,
                household_id=household_id,
                **_changed_status(loaded, status, flagged, flag_reason),
            )
            # Core inserts: the rows' ids are not needed back (no ORM flush, no RETURNING).
            s.execute(
                _INSERT_TURN,
                dict(
                    conversation_id=loaded.conversation_id,
                    turn=loaded.turns + 1,
                    at=record.at,
                    channel=record.channel,
                    resident_id=record.resident_id,
                    household_id=record.household_id,
                    session_id=record.session_id,
                    text_raw=record.text_raw,
                    text_masked=record.text_masked,
                    button_payload=record.button_payload,
                    language=record.language,
                    intent=record.intent,
                    confidence=record.confidence,
                    ranking=_dumps(record.ranking),
                    entities=_dumps(record.entities),
                    slots_before=_dumps(record.slots_before),
                    slots_after=_dumps(record.slots_after),
                    actions=_dumps(record.actions),
                    replies=_dumps(record.replies),
                    verification=_dumps(record.verification),
                    payment_ids=_dumps(record.payment_ids),
                    latency_ms=record.latency_ms,
                    error=record.error,
                    transcript=None if record.transcript is None else _dumps(record.transcript),
                ),
            )
            if record.delivery_id is not None:
                s.execute(
                    _INSERT_DELIVERY,
                    dict(
                        delivery_id=record.delivery_id,
                        conversation_id=loaded.conversation_id,
                        at=record.at,
                        replies=record.delivery_replies,
                    ),
                )
            for notice in notices:
                try:
                    self._add_notice(s, loaded.conversation_id, notice, record.at)
                except NoticeAlreadyWrittenError as exc:
                    raise ConcurrentTurnError(loaded.conversation_id) from exc

    def commit_event(
        self,
        loaded: LoadedConversation,
        owner: str,
        state: dict[str, Any],
        event: str,
        *,
        at: datetime,
        actor: str | None = None,
        data: dict[str, Any] | None = None,
        notice: NoticeWrite | None = None,
        also: Callable[[Session], object] | None = None,
    ) -> None:
        """Write a new state and an event (not a turn) in one transaction, releasing the lease.

        With ``notice``, the event tells that backend notice, recorded in the same
        transaction: if it was already written (into any conversation), nothing is.
        ``also`` writes more rows in the same transaction (the push path's outbox row).

        Raises:
            ConcurrentTurnError: the row's version or lease changed since :meth:`acquire`.
            NoticeAlreadyWrittenError: ``notice`` was already written.
        """
        with self.session() as s:
            _write_back(s, loaded, owner, state=state, at=at)
            if notice is not None:
                self._add_notice(s, loaded.conversation_id, notice, at)
            self._add_event(s, loaded.conversation_id, event, at, actor, data)
            if also is not None:
                also(s)

    def forget_delivery_replies(self, before: datetime) -> int:
        """Drop the stored replies of deliveries processed before ``before``; returns how many.

        The replies are kept only so that a delivery taken over from a dead worker is
        still answered; after a redelivery window has passed they are just a copy of the
        turn log (with receipt PDFs). The delivery's id stays: it is what makes a late
        redelivery act once.
        """
        with self.session() as s:
            result = s.execute(
                update(ProcessedDeliveryRow)
                .where(ProcessedDeliveryRow.at < before, ProcessedDeliveryRow.replies.is_not(None))
                .values(replies=None)
            )
            return int(getattr(result, "rowcount", 0) or 0)

    def processed_delivery(self, delivery_id: str) -> ProcessedDeliveryRow | None:
        """The record of an inbound delivery already acted on, or ``None``."""
        row = self.read_one(_DELIVERY, {"b_id": delivery_id})
        return None if row is None else ProcessedDeliveryRow(**row._mapping)

    def get_conversation(self, conversation_id: str) -> ConversationRow | None:
        """The conversation row, or ``None``."""
        with self.session() as s:
            return s.get(ConversationRow, conversation_id)

    def find_conversations(self, resident_id: str) -> list[ConversationRow]:
        """A resident's conversations, on every channel."""
        with self.session() as s:
            return list(
                s.scalars(
                    select(ConversationRow)
                    .where(ConversationRow.resident_id == resident_id)
                    .order_by(ConversationRow.created_at)
                )
            )

    def conversations_with_status(self, status: str) -> list[ConversationRow]:
        """Every conversation in ``status`` (e.g. ``waiting_for_staff``), least recent first."""
        with self.session() as s:
            return list(
                s.scalars(
                    select(ConversationRow)
                    .where(ConversationRow.status == status)
                    .order_by(ConversationRow.updated_at, ConversationRow.id)
                )
            )

    def last_turn(self, conversation_id: str) -> TurnRow | None:
        """The conversation's latest logged turn, or ``None``."""
        with self.session() as s:
            return s.scalars(
                select(TurnRow)
                .where(TurnRow.conversation_id == conversation_id)
                .order_by(TurnRow.turn.desc())
                .limit(1)
            ).first()

    def turns(self, conversation_id: str) -> list[TurnRow]:
        """The conversation's log, oldest first."""
        with self.session() as s:
            return list(
                s.scalars(
                    select(TurnRow)
                    .where(TurnRow.conversation_id == conversation_id)
                    .order_by(TurnRow.turn)
                )
            )

    def set_status(
        self,
        conversation_id: str,
        *,
        status: str,
        flagged: bool | None = None,
        event: str | None = None,
        actor: str | None = None,
        data: dict[str, Any] | None = None,
    ) -> bool:
        """Change a conversation's status (staff actions); whether it exists.

        With ``event``, an event row (who did it: ``actor``) is written in the
        same transaction.
        """
        now = datetime.now(UTC)
        values: dict[str, Any] = {"status": status, "updated_at": now}
        if flagged is not None:
            values["flagged"] = flagged
        with self.session() as s:
            found = (
                s.execute(
                    update(ConversationRow)
                    .where(ConversationRow.id == conversation_id)
                    .values(**values)
                    .execution_options(synchronize_session=False)
                ).rowcount  # type: ignore[attr-defined]
                == 1
            )
            if found and event is not None:
                self._add_event(s, conversation_id, event, now, actor, data)
            return found

    @staticmethod
    def _add_event(
        s: Session,
        conversation_id: str,
        event: str,
        at: datetime,
        actor: str | None,
        data: dict[str, Any] | None,
    ) -> None:
        turns = s.scalar(select(ConversationRow.turns).where(ConversationRow.id == conversation_id))
        s.add(
            EventRow(
                conversation_id=conversation_id,
                after_turn=int(turns or 0),
                at=at,
                event=event,
                actor=actor,
                data=_dumps(data or {}),
            )
        )

    def add_event(
        self,
        conversation_id: str,
        event: str,
        *,
        actor: str | None = None,
        data: dict[str, Any] | None = None,
        at: datetime | None = None,
    ) -> None:
        """Record an event outside a turn (placed after the turns logged so far)."""
        with self.session() as s:
            self._add_event(s, conversation_id, event, at or datetime.now(UTC), actor, data)

    def events(self, conversation_id: str) -> list[EventRow]:
        """The conversation's events outside turns, oldest first."""
        with self.session() as s:
            return list(
                s.scalars(
                    select(EventRow)
                    .where(EventRow.conversation_id == conversation_id)
                    .order_by(EventRow.id)
                )
            )

    def count_turns(self) -> int:
        """Number of logged turns in the database (for benchmarks and checks)."""
        with self.session() as s:
            return int(s.scalar(select(func.count()).select_from(TurnRow)) or 0)
