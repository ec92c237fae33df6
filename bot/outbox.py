"""The push path: messages that reach a resident outside a turn.

A reminder, a pending payment that settled later, a staff reply from the
console, a step-up request from the speaker: anything the assistant says when
the resident did not just write goes through here, in two steps.

1. **Write.** The message is stored as a row of ``bot_outbox`` (channel, the
   channel's user, the rendered message) in the same transaction as whatever
   caused it (the conversation event that records it). A ``dedupe_key`` makes a
   second write of the same message for the same user a no-op.
2. **Send.** :class:`OutboxSender` claims due rows of the channels it serves and
   hands each to :meth:`Channel.send <bot.channels.base.Channel.send>`. A row is
   marked ``delivered`` only after the channel accepted the message. A
   :class:`~bot.channels.base.ChannelSendError` schedules a retry with
   exponential backoff (or the channel's ``retry_after``); after
   :attr:`OutboxSender.max_attempts` the row is ``failed``. A
   :class:`~bot.channels.base.ChannelUnreachable` (the user blocked the bot)
   marks the row ``unreachable`` and the channel link with it: it is never retried.

**Several workers.** A claim sets ``claimed_by`` / ``claimed_until`` on rows
selected with ``FOR UPDATE SKIP LOCKED`` on PostgreSQL (SQLite serialises
writers, and the claim's ``UPDATE ... WHERE status = 'pending'`` re-checks each
row), so two sender processes never take the same row. A worker that dies
mid-send leaves its claim to expire; the row is then sent again, which is the
one case of a possible duplicate (at-least-once at the channel edge, like every
messaging system without a channel-side idempotency key).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import DateTime, Integer, String, Text, UniqueConstraint, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from billtalk.logs import get_logger
from bot.channels.base import Channel, ChannelSendError, ChannelUnreachable
from bot.messages import OutgoingMessage, dump_message, load_message, utcnow
from bot.store import Base, ConversationRow, ConversationStore, LinkRow

log = get_logger("bot.outbox")

PENDING, DELIVERED, FAILED, UNREACHABLE = "pending", "delivered", "failed", "unreachable"


class OutboxRow(Base):
    """One message waiting to be (or already) sent to a channel user."""

    __tablename__ = "bot_outbox"
    __table_args__ = (
        UniqueConstraint("channel", "external_user_id", "dedupe_key", name="uq_bot_outbox_dedupe"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    conversation_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    resident_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    channel: Mapped[str] = mapped_column(String(32))
    external_user_id: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(32))
    message: Mapped[str] = mapped_column(Text)
    dedupe_key: Mapped[str | None] = mapped_column(String(200), nullable=True)
    status: Mapped[str] = mapped_column(String(16), default=PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    claimed_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    claimed_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)


@dataclass(frozen=True)
class Target:
    """Where a pushed message goes: one channel user, in one conversation if known."""

    channel: str
    external_user_id: str
    conversation_id: str | None = None
    resident_id: str | None = None


# -- writing --------------------------------------------------------------------------


def _queued(s: Session, target: Target, dedupe_key: str) -> bool:
    """Whether a row with ``dedupe_key`` was already queued for ``target``'s user."""
    return (
        s.scalar(
            select(OutboxRow.id).where(
                OutboxRow.channel == target.channel,
                OutboxRow.external_user_id == target.external_user_id,
                OutboxRow.dedupe_key == dedupe_key,
            )
        )
        is not None
    )


def add_row(
    s: Session,
    target: Target,
    message: OutgoingMessage,
    *,
    kind: str,
    dedupe_key: str | None,
    now: datetime,
) -> bool:
    """Add an outbox row in ``s``'s transaction; False if its dedupe key was already written."""
    if dedupe_key is not None and _queued(s, target, dedupe_key):
        return False
    s.add(
        OutboxRow(
            conversation_id=target.conversation_id,
            resident_id=target.resident_id,
            channel=target.channel,
            external_user_id=target.external_user_id,
            kind=kind,
            message=dump_message(message),
            dedupe_key=dedupe_key,
            status=PENDING,
            attempts=0,
            next_attempt_at=now,
            created_at=now,
        )
    )
    return True


class Outbox:
    """Writes and reads the outbox of one dialogue database.

    Args:
        store: The dialogue store (its engine holds ``bot_outbox``).
        clock: The current time.
    """

    def __init__(self, store: ConversationStore, clock: Callable[[], datetime] = utcnow) -> None:
        self.store = store
        self.clock = clock

    def enqueue(
        self,
        target: Target,
        message: OutgoingMessage,
        *,
        kind: str,
        dedupe_key: str | None = None,
    ) -> bool:
        """Queue ``message`` for ``target``; False if ``dedupe_key`` was already queued there."""
        try:
            with self.store.session() as s:
                now = self.clock()
                return add_row(s, target, message, kind=kind, dedupe_key=dedupe_key, now=now)
        except IntegrityError:  # the same key, written concurrently by another worker
            return False

    def exists(self, target: Target, dedupe_key: str) -> bool:
        """Whether a row with ``dedupe_key`` was already queued for ``target``'s user."""
        with self.store.session() as s:
            return _queued(s, target, dedupe_key)

    def targets_of(self, resident_id: str) -> list[Target]:
        """Where a resident can be reached: each reachable channel link, else their conversations.

        A channel link (Telegram chat, paired speaker) is preferred; a resident
        with none is reached in the conversations they have (the terminal chat).
        """
        with self.store.session() as s:
            links = s.scalars(
                select(LinkRow).where(
                    LinkRow.resident_id == resident_id, LinkRow.unreachable_at.is_(None)
                )
            ).all()
            conversations = {
                (row.channel, row.external_user_id): row.id
                for row in s.scalars(
                    select(ConversationRow).where(ConversationRow.resident_id == resident_id)
                )
            }
        targets = [
            Target(
                link.channel,
                link.external_id,
                conversations.get((link.channel, link.external_id)),
                resident_id,
            )
            for link in links
        ]
        if targets:
            return targets
        return [
            Target(channel, user, conversation_id, resident_id)
            for (channel, user), conversation_id in conversations.items()
        ]

    def pending(self, channel: str, external_user_id: str | None = None) -> list[OutboxRow]:
        """Rows still to be sent on ``channel`` (to one user if given), oldest first."""
        with self.store.session() as s:
            query = select(OutboxRow).where(
                OutboxRow.channel == channel, OutboxRow.status == PENDING
            )
            if external_user_id is not None:
                query = query.where(OutboxRow.external_user_id == external_user_id)
            return list(s.scalars(query.order_by(OutboxRow.id)))


def staff_reply(
    store: ConversationStore,
    conversation_id: str,
    staff_id: str,
    text: str,
    *,
    now: datetime | None = None,
    dedupe_key: str | None = None,
) -> bool:
    """A staff member's message into a conversation: logged as staff, queued for its channel.

    The conversation's ``staff_message`` event and the outbox row are written in
    one transaction. Returns False if the conversation does not exist or the
    ``dedupe_key`` (e.g. a form's submission id) was already used.
    """
    now = now or datetime.now(UTC)
    try:
        with store.session() as s:
            row = s.get(ConversationRow, conversation_id)
            if row is None:
                return False
            language = json.loads(row.state or "{}").get("language", "en")
            message = OutgoingMessage(text=text, language=language, spoken=text, kind="staff")
            target = Target(row.channel, row.external_user_id, row.id, row.resident_id)
            if not add_row(s, target, message, kind="staff", dedupe_key=dedupe_key, now=now):
                return False
            store._add_event(
                s, conversation_id, "staff_message", now, f"staff:{staff_id}", {"text": text}
            )
        return True
    except IntegrityError:
        return False


# -- sending --------------------------------------------------------------------------


class OutboxSender:
    """Delivers due outbox rows of some channels through their :class:`Channel`.

    Args:
        store: The dialogue store.
        channels: The channels this sender serves, by name.
        clock: The current time.
        claim_s: How long a claimed row is this worker's before another may retry it.
        max_attempts: Sends tried before a row is marked ``failed``.
        backoff_s: The first retry's delay; doubled each attempt, capped at ``max_backoff_s``.
        only_user: Only rows for this channel user (the terminal chat serves one resident).
    """

    def __init__(
        self,
        store: ConversationStore,
        channels: dict[str, Channel] | Sequence[Channel],
        *,
        clock: Callable[[], datetime] = utcnow,
        claim_s: float = 60.0,
        max_attempts: int = 8,
        backoff_s: float = 2.0,
        max_backoff_s: float = 600.0,
        only_user: str | None = None,
    ) -> None:
        self.store = store
        self.channels = (
            dict(channels) if isinstance(channels, dict) else {c.name: c for c in channels}
        )
        self.clock = clock
        self.claim_s = claim_s
        self.max_attempts = max_attempts
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.only_user = only_user
        self.worker = uuid.uuid4().hex[:16]

    def claim(self, limit: int = 50) -> list[OutboxRow]:
        """Take up to ``limit`` due rows for this worker (never a row another worker holds)."""
        now = self.clock()
        with self.store.session() as s:
            query = (
                select(OutboxRow)
                .where(
                    OutboxRow.status == PENDING,
                    OutboxRow.channel.in_(list(self.channels)),
                    OutboxRow.next_attempt_at <= now,
                    (OutboxRow.claimed_until.is_(None)) | (OutboxRow.claimed_until < now),
                )
                .order_by(OutboxRow.id)
                .limit(limit)
            )
            if self.only_user is not None:
                query = query.where(OutboxRow.external_user_id == self.only_user)
            if s.get_bind().dialect.name == "postgresql":
                query = query.with_for_update(skip_locked=True)
            candidates = list(s.scalars(query))
            claimed: list[OutboxRow] = []
            until = now + timedelta(seconds=self.claim_s)
            for row in candidates:
                taken = s.execute(
                    update(OutboxRow)
                    .where(
                        OutboxRow.id == row.id,
                        OutboxRow.status == PENDING,
                        (OutboxRow.claimed_until.is_(None)) | (OutboxRow.claimed_until < now),
                    )
                    .values(claimed_by=self.worker, claimed_until=until)
                    .execution_options(synchronize_session=False)
                ).rowcount  # type: ignore[attr-defined]
                if taken == 1:
                    claimed.append(row)
            return claimed

    async def run_once(self, limit: int = 50) -> int:
        """Send what is due now; the number of rows delivered.

        Rows of one channel user are sent in order; a failure stops that user's
        later rows until the next run (so a retry never overtakes them).
        """
        rows = await asyncio.to_thread(self.claim, limit)
        delivered = 0
        blocked: set[tuple[str, str]] = set()
        for row in rows:
            key = (row.channel, row.external_user_id)
            if key in blocked:
                await asyncio.to_thread(self._unclaim, row.id)
                continue
            if await self._send(row):
                delivered += 1
            else:
                blocked.add(key)
        return delivered

    async def run(self, stop: asyncio.Event, every_s: float = 1.0) -> None:
        """Send due rows until ``stop`` is set, looking again every ``every_s`` seconds."""
        while not stop.is_set():
            try:
                sent = await self.run_once()
            except Exception:  # the loop must outlive a database hiccup
                log.exception("outbox_run_failed")
                sent = 0
            if sent:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=every_s)

    async def _send(self, row: OutboxRow) -> bool:
        channel = self.channels[row.channel]
        try:
            await channel.send(row.external_user_id, load_message(row.message))
        except ChannelUnreachable as exc:
            log.warning("outbox_unreachable", channel=row.channel, row=row.id)
            await asyncio.to_thread(self._unreachable, row, str(exc))
            return False
        except ChannelSendError as exc:
            await asyncio.to_thread(self._retry_later, row, str(exc), exc.retry_after_s)
            return False
        except Exception as exc:  # an adapter bug: retried like a send error, and logged
            log.exception("outbox_send_crashed", channel=row.channel, row=row.id)
            await asyncio.to_thread(self._retry_later, row, type(exc).__name__, None)
            return False
        await asyncio.to_thread(self._delivered, row.id)
        return True

    def _delivered(self, row_id: int) -> None:
        with self.store.session() as s:
            s.execute(
                update(OutboxRow)
                .where(OutboxRow.id == row_id)
                .values(status=DELIVERED, delivered_at=self.clock(), claimed_until=None)
                .execution_options(synchronize_session=False)
            )

    def _unclaim(self, row_id: int) -> None:
        with self.store.session() as s:
            s.execute(
                update(OutboxRow)
                .where(OutboxRow.id == row_id, OutboxRow.claimed_by == self.worker)
                .values(claimed_until=None, claimed_by=None)
                .execution_options(synchronize_session=False)
            )

    def _retry_later(self, row: OutboxRow, error: str, retry_after_s: float | None) -> None:
        attempts = row.attempts + 1
        delay = retry_after_s
        if delay is None:
            delay = min(self.backoff_s * 2 ** (attempts - 1), self.max_backoff_s)
        status = FAILED if attempts >= self.max_attempts else PENDING
        log.warning(
            "outbox_send_failed", channel=row.channel, row=row.id, attempts=attempts, status=status
        )
        with self.store.session() as s:
            s.execute(
                update(OutboxRow)
                .where(OutboxRow.id == row.id)
                .values(
                    attempts=attempts,
                    status=status,
                    last_error=error[:500],
                    next_attempt_at=self.clock() + timedelta(seconds=delay),
                    claimed_until=None,
                    claimed_by=None,
                )
                .execution_options(synchronize_session=False)
            )

    def _unreachable(self, row: OutboxRow, error: str) -> None:
        now = self.clock()
        with self.store.session() as s:
            s.execute(
                update(OutboxRow)
                .where(OutboxRow.id == row.id)
                .values(status=UNREACHABLE, last_error=error[:500], claimed_until=None)
                .execution_options(synchronize_session=False)
            )
            s.execute(
                update(LinkRow)
                .where(LinkRow.channel == row.channel, LinkRow.external_id == row.external_user_id)
                .values(unreachable_at=now)
                .execution_options(synchronize_session=False)
            )


def pending_count(store: ConversationStore, channels: Iterable[str] | None = None) -> int:
    """How many rows still wait to be sent (on ``channels``, if given)."""
    with store.session() as s:
        query = select(func.count()).select_from(OutboxRow).where(OutboxRow.status == PENDING)
        if channels is not None:
            query = query.where(OutboxRow.channel.in_(list(channels)))
        return int(s.scalar(query) or 0)


__all__ = [
    "Outbox",
    "OutboxRow",
    "OutboxSender",
    "Target",
    "add_row",
    "dump_message",
    "load_message",
    "pending_count",
    "staff_reply",
]
