"""Exactly-once handling of Telegram updates, across redeliveries and worker processes.

Telegram redelivers a webhook update that was not answered in time, and with
several API workers behind one webhook the same update (or two updates of one
chat) can reach two processes at once. Every update is *claimed* in the
``bot_telegram_updates`` table (primary key: bot id and ``update_id``) before
the turn and marked ``done`` right after the turn's replies were sent:

* a second claim of a ``done`` update, or of one another worker is processing,
  is refused: the update is acknowledged and nothing is done;
* a claim left ``processing`` longer than ``stale_claim_s`` (its worker died)
  is taken over; a live worker refreshes the claims it holds (:meth:`UpdateLedger.refresh`),
  so a long turn's claim never turns stale;
* an update acknowledged to Telegram before its turn was done (a voice note or other
  media: see :mod:`bot.channels.telegram.webhook`) keeps its raw JSON in the claim row
  (``payload``) until it is done: Telegram will not redeliver it, so when its worker dies
  a live worker finds it (:meth:`UpdateLedger.stale_payloads`) and takes it over;
* an update waits while an earlier update of the same chat is still being
  processed by any worker, so a later turn never overtakes an earlier one.

The same table holds each chat's preferences (language chosen with ``/lang``,
whether a group was already told the bot answers in private chats only) in
``bot_telegram_chats``.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Engine,
    Index,
    MetaData,
    String,
    Table,
    Text,
    bindparam,
    delete,
    exists,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from billtalk.db import SingleStatement

metadata = MetaData()

updates_table = Table(
    "bot_telegram_updates",
    metadata,
    Column("bot_id", String(32), primary_key=True),
    Column("update_id", BigInteger, primary_key=True, autoincrement=False),
    Column("chat_id", String(32), nullable=True),
    Column("status", String(12), nullable=False),
    Column("owner", String(36), nullable=True),
    Column("claimed_at", DateTime(timezone=True), nullable=False),
    Column("done_at", DateTime(timezone=True), nullable=True),
    #: The raw update (JSON) of a claim acknowledged before its turn was done; NULL once done.
    Column("payload", Text, nullable=True),
)
#: Claims acknowledged and not yet done: few rows, so a partial index (the takeover sweep).
_ACKED_UNFINISHED = (updates_table.c.status == "processing") & updates_table.c.payload.isnot(None)
Index(
    "ix_bot_telegram_updates_acked",
    updates_table.c.bot_id,
    updates_table.c.claimed_at,
    postgresql_where=_ACKED_UNFINISHED,
    sqlite_where=_ACKED_UNFINISHED,
)

chats_table = Table(
    "bot_telegram_chats",
    metadata,
    Column("bot_id", String(32), primary_key=True),
    Column("chat_id", String(32), primary_key=True),
    Column("language", String(8), nullable=True),
    Column("group_told", Boolean, nullable=False, default=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

PROCESSING = "processing"
DONE = "done"

_u = updates_table.c
#: Whether an earlier update of the chat is being processed and its claim is not stale
#: (never for an update without a chat: ``chat_id = NULL`` holds for no row). Built once,
#: like the statements below: every update runs them.
_EARLIER = exists().where(
    _u.bot_id == bindparam("b_bot"),
    _u.chat_id == bindparam("b_chat"),
    _u.update_id < bindparam("b_update"),
    _u.status == PROCESSING,
    _u.claimed_at >= bindparam("b_stale"),
)
#: The language chosen with ``/lang`` in the chat (NULL: none).
_CHAT_LANGUAGE = (
    select(chats_table.c.language)
    .where(chats_table.c.bot_id == bindparam("b_bot"), chats_table.c.chat_id == bindparam("b_chat"))
    .scalar_subquery()
)
#: PostgreSQL's claim in one statement: the insert (a CTE), :data:`_EARLIER` and the chat's
#: language (read here, so the turn needs no read of its own on the event loop). The look
#: sees the claims committed before the statement began (the SELECT it replaces, run after
#: the INSERT in one transaction, saw those committed before it began: the same race with
#: another worker, a few hundred microseconds wider).
_CLAIM_PG = select(
    select(func.count())
    .select_from(
        postgresql_insert(updates_table)
        .values(
            bot_id=bindparam("b_bot"),
            update_id=bindparam("b_update"),
            chat_id=bindparam("b_chat"),
            status=PROCESSING,
            owner=bindparam("b_owner"),
            claimed_at=bindparam("b_now"),
            payload=bindparam("b_payload"),
        )
        .on_conflict_do_nothing()
        .returning(_u.update_id)
        .cte("claimed")
    )
    .scalar_subquery(),
    _EARLIER,
    _CHAT_LANGUAGE,
)
_FINISH = (
    update(updates_table)
    .where(
        _u.bot_id == bindparam("b_bot"),
        _u.update_id == bindparam("b_update"),
        _u.owner == bindparam("b_owner"),
    )
    .values(status=DONE, done_at=bindparam("b_now"), payload=None)
)


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Claim:
    """An update claimed by :meth:`UpdateLedger.claim_update`.

    Attributes:
        wait: An earlier update of the same chat is still in progress in some worker:
            :meth:`UpdateLedger.wait_for_turn` before acting.
        fresh: This claim inserted the update's row: no worker had claimed the update
            before (within the ledger's memory, see :meth:`UpdateLedger.prune`), so no
            turn can have been recorded for it. ``False`` for a stale claim taken over
            (its worker may have acted before it died).
        kept: The claim row holds the raw update (it was acknowledged to Telegram before
            its turn was done): a live worker's sweep takes it over once stale, so a turn
            that could not begin may leave the claim unfinished for a later attempt.
    """

    wait: bool
    fresh: bool
    kept: bool = False


class UpdateLedger:
    """Claims and completes updates of one bot in the dialogue database.

    Args:
        db: The dialogue database (its tables are created by ``bot/migrations``).
        bot_id: The bot's id (the token's number before ``:``): updates are per bot.
        stale_claim_s: A ``processing`` claim older than this may be taken over.
    """

    def __init__(self, db: Engine, bot_id: str, *, stale_claim_s: float = 120.0) -> None:
        self.db = db
        self.bot_id = bot_id
        self.stale_claim_s = stale_claim_s
        self.language_cache_s = 30.0
        self._languages: dict[str, tuple[str | None, float]] = {}
        #: One statement, one round trip on PostgreSQL (autocommit); a transaction on SQLite.
        self._single = SingleStatement(db)

    def claim_update(
        self, update_id: int, chat_id: str | None, owner: str, payload: str | None = None
    ) -> Claim | None:
        """Claim an update for ``owner``: ``None`` if it is done or being processed elsewhere
        (drop it), else the :class:`Claim`.

        ``payload`` is the raw update (JSON) when it is acknowledged to Telegram before its
        turn is done: kept with a fresh claim until :meth:`finish`, for a live worker to take
        it over (:meth:`stale_payloads`). A stale claim taken over keeps the row's payload.

        One statement on PostgreSQL (a taken-over stale claim: one more transaction), one
        transaction on SQLite.
        """
        now = _now()
        values = {
            "bot_id": self.bot_id,
            "update_id": update_id,
            "chat_id": chat_id,
            "status": PROCESSING,
            "owner": owner,
            "claimed_at": now,
            "payload": payload,
        }
        if self.db.dialect.name == "postgresql":  # one statement, one round trip
            with self._single() as conn:
                taken, earlier, language = conn.execute(
                    _CLAIM_PG,
                    {
                        "b_bot": self.bot_id,
                        "b_update": update_id,
                        "b_chat": chat_id,
                        "b_owner": owner,
                        "b_now": now,
                        "b_stale": self._stale(now),
                        "b_payload": payload,
                    },
                ).one()
            if chat_id is not None:  # fresh for this update's turn (see chat_language)
                self._remember_language(chat_id, language)
            if taken:
                return Claim(wait=bool(earlier), fresh=True, kept=payload is not None)
            return self._take_over_stale(update_id, chat_id, owner, now)
        with self.db.begin() as conn:
            if self.db.dialect.name == "sqlite":
                inserted = conn.execute(
                    sqlite_insert(updates_table)
                    .values(**values)
                    .on_conflict_do_nothing()
                    .returning(updates_table.c.update_id)
                ).scalar()
                taken = 0 if inserted is None else 1
            else:
                try:
                    with conn.begin_nested():
                        conn.execute(insert(updates_table).values(**values))
                    taken = 1
                except IntegrityError:
                    taken = 0
            if taken == 1:
                wait = chat_id is not None and self._earlier(conn, update_id, chat_id)
                return Claim(wait=wait, fresh=True, kept=payload is not None)
        return self._take_over_stale(update_id, chat_id, owner, now)

    def _take_over_stale(
        self, update_id: int, chat_id: str | None, owner: str, now: datetime
    ) -> Claim | None:
        stale = now - timedelta(seconds=self.stale_claim_s)
        with self.db.begin() as conn:
            taken = conn.execute(
                update(updates_table)
                .where(
                    updates_table.c.bot_id == self.bot_id,
                    updates_table.c.update_id == update_id,
                    updates_table.c.status == PROCESSING,
                    updates_table.c.claimed_at < stale,
                )
                .values(owner=owner, claimed_at=now)
                # the column itself: SQLite's RETURNING gave ``payload IS NOT NULL`` true
                # for a NULL payload (3.40)
                .returning(updates_table.c.payload)
            ).first()
        if taken is None:
            return None
        wait = chat_id is not None and self.earlier_in_progress(update_id, chat_id)
        return Claim(wait=wait, fresh=False, kept=taken[0] is not None)

    def finish(self, update_id: int, owner: str) -> None:
        """Mark a claimed update done (its turn ran and its replies were sent)."""
        with self._single() as conn:
            conn.execute(
                _FINISH,
                {"b_bot": self.bot_id, "b_update": update_id, "b_owner": owner, "b_now": _now()},
            )

    def refresh(self, owners: list[str]) -> int:
        """Renew the claims that ``owners`` hold (their turns are running in this worker), so
        none of them turns stale while its worker lives; returns how many were renewed."""
        if not owners:
            return 0
        with self.db.begin() as conn:
            result = conn.execute(
                update(updates_table)
                .where(
                    _u.bot_id == self.bot_id,
                    _u.status == PROCESSING,
                    _u.owner.in_(owners),
                )
                .values(claimed_at=_now())
            )
            return int(result.rowcount or 0)

    def stale_payloads(self, limit: int = 20) -> list[tuple[int, str]]:
        """Acknowledged updates whose claim went stale (their worker died before the turn
        was done): ``(update_id, raw update JSON)``, oldest first. Telegram will not redeliver
        them; claiming one again (:meth:`claim_update`) takes it over, one worker only."""
        with self._single() as conn:
            rows = conn.execute(
                select(_u.update_id, _u.payload)
                .where(
                    _u.bot_id == self.bot_id,
                    _u.status == PROCESSING,
                    _u.payload.isnot(None),
                    _u.claimed_at < self._stale(_now()),
                )
                .order_by(_u.update_id)
                .limit(limit)
            ).all()
        return [(int(update_id), str(payload)) for update_id, payload in rows]

    def abandon(self, update_id: int, owner: str) -> None:
        """Give a claim back (the turn failed before acting): a redelivery may process it."""
        with self.db.begin() as conn:
            conn.execute(
                delete(updates_table).where(
                    updates_table.c.bot_id == self.bot_id,
                    updates_table.c.update_id == update_id,
                    updates_table.c.owner == owner,
                    updates_table.c.status == PROCESSING,
                )
            )

    def earlier_in_progress(self, update_id: int, chat_id: str) -> bool:
        """Whether an earlier update of ``chat_id`` is still being processed (and not stale)."""
        with self._single() as conn:
            return self._earlier(conn, update_id, chat_id)

    def _earlier(self, conn: Connection, update_id: int, chat_id: str) -> bool:
        params = {
            "b_bot": self.bot_id,
            "b_chat": chat_id,
            "b_update": update_id,
            "b_stale": self._stale(_now()),
        }
        return bool(conn.execute(select(_EARLIER), params).scalar())

    def _stale(self, now: datetime) -> datetime:
        """Claims made before this are stale (their worker is presumed dead)."""
        return now - timedelta(seconds=self.stale_claim_s)

    async def wait_for_turn(self, update_id: int, chat_id: str, timeout_s: float) -> None:
        """Wait (polling) until no earlier update of the chat is in progress, or ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        delay = 0.005
        while (
            await asyncio.to_thread(self.earlier_in_progress, update_id, chat_id)
            and time.monotonic() < deadline
        ):
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.1)

    def status(self, update_id: int) -> str | None:
        """The recorded status of an update (``processing``, ``done``), or ``None``."""
        with self._single() as conn:
            return conn.execute(
                select(updates_table.c.status).where(
                    updates_table.c.bot_id == self.bot_id,
                    updates_table.c.update_id == update_id,
                )
            ).scalar()

    def count(self, status: str = DONE) -> int:
        """How many updates of this bot have ``status``."""
        with self.db.connect() as conn:
            return int(
                conn.execute(
                    select(func.count())
                    .select_from(updates_table)
                    .where(updates_table.c.bot_id == self.bot_id, updates_table.c.status == status)
                ).scalar()
                or 0
            )

    def prune(self, before: datetime) -> int:
        """Forget updates of this bot marked done before ``before``; returns how many.

        Telegram keeps an undelivered update for at most 24 hours, so a ``done`` row
        older than that can never be redelivered. Claims still ``processing`` are kept
        (a redelivery may take them over).
        """
        with self.db.begin() as conn:
            result = conn.execute(
                delete(updates_table).where(
                    updates_table.c.bot_id == self.bot_id,
                    updates_table.c.status == DONE,
                    updates_table.c.done_at < before,
                )
            )
            return int(result.rowcount or 0)

    # -- chat preferences ---------------------------------------------------------------

    def chat_language(self, chat_id: str) -> str | None:
        """The language chosen with ``/lang`` in this chat, if any.

        Cached in the process for :attr:`language_cache_s` (a choice made through
        another worker shows here within that time). On PostgreSQL each claim reads it
        afresh in its own statement, so a turn finds it here without a read.
        """
        now = time.monotonic()
        cached = self._languages.get(chat_id)
        if cached is not None and cached[1] > now:
            return cached[0]
        with self._single() as conn:
            language = conn.execute(
                select(_CHAT_LANGUAGE), {"b_bot": self.bot_id, "b_chat": chat_id}
            ).scalar()
        self._remember_language(chat_id, language)
        return language

    def _remember_language(self, chat_id: str, language: str | None) -> None:
        if len(self._languages) > 100_000:
            self._languages.clear()
        self._languages[chat_id] = (language, time.monotonic() + self.language_cache_s)

    def set_chat_language(self, chat_id: str, language: str) -> None:
        """Remember the language chosen with ``/lang``."""
        self._upsert(chat_id, language=language)
        self._remember_language(chat_id, language)

    def tell_group_once(self, chat_id: str) -> bool:
        """``True`` the first time it is called for a group chat, ``False`` after."""
        with self.db.begin() as conn:
            told = conn.execute(
                update(chats_table)
                .where(
                    chats_table.c.bot_id == self.bot_id,
                    chats_table.c.chat_id == chat_id,
                    chats_table.c.group_told.is_(False),
                )
                .values(group_told=True, updated_at=_now())
            ).rowcount
            if told:
                return True
            exists = conn.execute(
                select(func.count())
                .select_from(chats_table)
                .where(chats_table.c.bot_id == self.bot_id, chats_table.c.chat_id == chat_id)
            ).scalar()
        if exists:
            return False
        try:
            with self.db.begin() as conn:
                conn.execute(
                    insert(chats_table).values(
                        bot_id=self.bot_id, chat_id=chat_id, group_told=True, updated_at=_now()
                    )
                )
            return True
        except IntegrityError:
            return False

    def _upsert(self, chat_id: str, **values: object) -> None:
        with self.db.begin() as conn:
            changed = conn.execute(
                update(chats_table)
                .where(chats_table.c.bot_id == self.bot_id, chats_table.c.chat_id == chat_id)
                .values(updated_at=_now(), **values)
            ).rowcount
            if not changed:
                conn.execute(
                    insert(chats_table).values(
                        bot_id=self.bot_id,
                        chat_id=chat_id,
                        group_told=False,
                        updated_at=_now(),
                        **values,
                    )
                )


__all__ = ["DONE", "PROCESSING", "Claim", "UpdateLedger", "chats_table", "updates_table"]
