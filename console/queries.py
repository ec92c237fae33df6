"""What the console reads: the conversation list (filters, keyset pages), transcripts, inbox.

Staff see only conversations of households in their buildings (accounts with
``*`` see every conversation, including ones not yet linked to a household).
The list is ordered by last activity, newest first, and paged by keyset
(``updated_at``, ``id``): a page costs the same however deep it is.
"""

from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass, fields
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import (
    ARRAY,
    Engine,
    String,
    any_,
    exists,
    false,
    func,
    literal,
    or_,
    select,
    text,
    tuple_,
)
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement, TextClause

from bot.store import ConversationRow, EventRow, TurnRow
from console.accounts import Staff
from console.models import AnnotationRow, NoteRow, ReviewRow, TagRow

WAITING = "waiting_for_staff"
OUTCOMES = ("paid", "fallback", "handoff", "stepup_failed", "error")
FALLBACK_INTENTS = ("nlu_fallback", "out_of_scope")
#: Turn-level outcome tests, exactly the predicates of the partial indexes of
#: ``console/migrations/versions/0002_turn_filter_indexes.py``.
OUTCOME_SQL = {
    "paid": "bot_turns.payment_ids <> '[]'",
    "fallback": (
        "(bot_turns.intent IN ('nlu_fallback', 'out_of_scope') "
        "OR bot_turns.actions LIKE '%\"fallback\"%')"
    ),
    "stepup_failed": 'bot_turns.verification LIKE \'%"decision": "reject"%\'',
    "error": "bot_turns.error IS NOT NULL",
}


class FilterError(ValueError):
    """A filter value in the URL is not valid."""


@dataclass(frozen=True)
class Filters:
    """The conversation list's filters, as they appear in the URL query string."""

    channel: str = ""
    language: str = ""
    intent: str = ""
    conf_below: float | None = None
    conf_above: float | None = None
    outcome: str = ""
    date_from: date | None = None
    date_to: date | None = None
    tag: str = ""
    reviewed: str = ""  # "", "yes", "no"
    household: str = ""
    unit: str = ""
    status: str = ""  # "", "waiting"

    @classmethod
    def from_query(cls, q: dict[str, str]) -> Filters:
        """Parse the URL's query parameters (unknown ones are ignored).

        Raises:
            FilterError: a value of the wrong shape.
        """

        def num(name: str) -> float | None:
            raw = (q.get(name) or "").strip()
            if not raw:
                return None
            try:
                value = float(raw)
            except ValueError as exc:
                raise FilterError(f"{name} must be a number between 0 and 1") from exc
            if not 0.0 <= value <= 1.0:
                raise FilterError(f"{name} must be a number between 0 and 1")
            return value

        def day(name: str) -> date | None:
            raw = (q.get(name) or "").strip()
            if not raw:
                return None
            try:
                return date.fromisoformat(raw)
            except ValueError as exc:
                raise FilterError(f"{name} must be a date YYYY-MM-DD") from exc

        def word(name: str) -> str:
            return (q.get(name) or "").strip()[:64]

        outcome = word("outcome")
        if outcome and outcome not in OUTCOMES:
            raise FilterError(f"outcome must be one of {', '.join(OUTCOMES)}")
        reviewed = word("reviewed")
        if reviewed not in ("", "yes", "no"):
            raise FilterError("reviewed must be yes or no")
        status = word("status")
        if status not in ("", "waiting"):
            raise FilterError("status must be waiting")
        return cls(
            channel=word("channel"),
            language=word("language"),
            intent=word("intent"),
            conf_below=num("conf_below"),
            conf_above=num("conf_above"),
            outcome=outcome,
            date_from=day("date_from"),
            date_to=day("date_to"),
            tag=word("tag"),
            reviewed=reviewed,
            household=word("household"),
            unit=word("unit"),
            status=status,
        )

    def as_query(self) -> dict[str, str]:
        """The non-empty filters as URL query parameters."""
        out: dict[str, str] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None or value == "":
                continue
            out[f.name] = value.isoformat() if isinstance(value, date) else str(value)
        return out


@dataclass(frozen=True)
class Scope:
    """Which households a staff member may see (``None``: every conversation)."""

    buildings: tuple[str, ...] | None

    @classmethod
    def of(cls, staff: Staff) -> Scope:
        """The scope of a staff account."""
        return cls(None if staff.all_buildings else staff.buildings)


class Reader:
    """Queries over the conversation log and the console's tables.

    Args:
        engine: The conversation database (bot and console tables).
        billing_engine: The billing database (households, buildings): the same
            engine when both live in one database.
    """

    #: Seconds the filter form's choices are cached.
    facet_ttl_s = 60.0

    def __init__(self, engine: Engine, billing_engine: Engine | None = None) -> None:
        self.engine = engine
        self.billing_engine = billing_engine or engine
        self.same_database = billing_engine is None or str(billing_engine.url) == str(engine.url)
        self._facets: tuple[float, dict[str, list[str]]] | None = None
        self._scopes: dict[tuple[str, ...], tuple[float, list[str]]] = {}

    # -- scope ---------------------------------------------------------------------

    def _households_in(self, buildings: tuple[str, ...]) -> list[str]:
        from backend.adapters.orm import Household

        with Session(self.billing_engine) as s:
            return list(
                s.scalars(
                    select(Household.household_id).where(Household.building_id.in_(buildings))
                )
            )

    def scope_households(self, scope: Scope) -> list[str] | None:
        """The household ids a scope may see (``None``: every one), cached a minute."""
        if scope.buildings is None:
            return None
        now = time.monotonic()
        hit = self._scopes.get(scope.buildings)
        if hit is None or now - hit[0] > self.facet_ttl_s:
            hit = (now, self._households_in(scope.buildings))
            self._scopes[scope.buildings] = hit
        return hit[1]

    def _scope_clause(self, scope: Scope) -> ColumnElement[bool] | None:
        """The households a scope may see, as a literal list of ids (cached a minute).

        A list of constants lets PostgreSQL test each conversation with a hashed
        lookup while it walks the list's index in order, instead of a join per row.
        """
        ids = self.scope_households(scope)
        if ids is None or scope.buildings is None:
            return None
        if not ids:
            return false()
        if len(ids) > 20_000 and self.same_database:  # very large scopes: a subquery
            from backend.adapters.orm import Household

            return ConversationRow.household_id.in_(
                select(Household.household_id).where(Household.building_id.in_(scope.buildings))
            )
        if self.engine.dialect.name == "postgresql":  # one array parameter, not thousands
            return ConversationRow.household_id == any_(literal(ids, ARRAY(String)))
        return ConversationRow.household_id.in_(ids)

    def household_of_unit(self, unit: str) -> str | None:
        """The household id of a unit number, or ``None``."""
        from backend.adapters.orm import Household

        with Session(self.billing_engine) as s:
            return s.scalar(select(Household.household_id).where(Household.unit == unit))

    def units(self, household_ids: list[str]) -> dict[str, str]:
        """Unit numbers of households (``household_id -> unit``)."""
        from backend.adapters.orm import Household

        ids = [h for h in set(household_ids) if h]
        if not ids:
            return {}
        with Session(self.billing_engine) as s:
            return dict(
                s.execute(
                    select(Household.household_id, Household.unit).where(
                        Household.household_id.in_(ids)
                    )
                ).all()
            )

    def visible(self, scope: Scope, conversation_id: str) -> ConversationRow | None:
        """The conversation if it exists and ``scope`` may see it, else ``None``."""
        q = select(ConversationRow).where(ConversationRow.id == conversation_id)
        clause = self._scope_clause(scope)
        if clause is not None:
            q = q.where(clause)
        with Session(self.engine) as s:
            return s.scalar(q)

    # -- the list ------------------------------------------------------------------

    def _where(self, f: Filters, scope: Scope) -> list[ColumnElement[bool]]:
        c = ConversationRow
        where: list[ColumnElement[bool]] = []
        clause = self._scope_clause(scope)
        if clause is not None:
            where.append(clause)
        if f.channel:
            where.append(c.channel == f.channel)
        if f.household:
            where.append(c.household_id == f.household)
        if f.unit:
            where.append(c.household_id == (self.household_of_unit(f.unit) or "-"))
        if f.status == "waiting":
            where.append(c.status == WAITING)
        if f.date_from:
            start = datetime(f.date_from.year, f.date_from.month, f.date_from.day, tzinfo=UTC)
            where.append(c.updated_at >= start)
        if f.date_to:
            end = datetime(f.date_to.year, f.date_to.month, f.date_to.day, tzinfo=UTC)
            where.append(c.created_at < end + timedelta(days=1))
        if f.tag:
            where.append(exists().where(TagRow.conversation_id == c.id, TagRow.tag == f.tag))
        if f.reviewed == "yes":
            where.append(
                exists().where(ReviewRow.conversation_id == c.id, ReviewRow.reviewed.is_(True))
            )
        elif f.reviewed == "no":
            where.append(
                ~exists().where(ReviewRow.conversation_id == c.id, ReviewRow.reviewed.is_(True))
            )
        turn: list[ColumnElement[bool] | TextClause] = []
        t = TurnRow
        if f.language:
            turn.append(t.language == f.language)
        if f.intent:
            turn.append(t.intent == f.intent)
        if f.conf_below is not None:
            turn.append(t.confidence < f.conf_below)
        if f.conf_above is not None:
            turn.append(t.confidence > f.conf_above)
        # The outcome tests are written as constants (not bound parameters), the very
        # predicates of the console's partial indexes, so every plan may use them.
        if f.outcome in OUTCOME_SQL:
            turn.append(text(OUTCOME_SQL[f.outcome]))
        if turn:
            where.append(exists().where(t.conversation_id == c.id, *turn))
        if f.outcome == "handoff":
            asked = select(t.conversation_id).where(text("intent = 'human_handoff'"))
            where.append(or_(c.status == WAITING, c.flag_reason == "handoff", c.id.in_(asked)))
        return where

    def conversations(
        self, f: Filters, scope: Scope, *, after: str | None = None, limit: int = 50
    ) -> tuple[list[dict[str, Any]], str | None]:
        """One page of conversations matching ``f``, newest activity first.

        Args:
            after: The cursor of the previous page (``None``: the first page).

        Returns:
            ``(rows, next_cursor)``; ``next_cursor`` is ``None`` on the last page.

        Raises:
            FilterError: a malformed cursor.
        """
        c = ConversationRow
        q = select(
            c.id,
            c.channel,
            c.resident_id,
            c.household_id,
            c.status,
            c.turns,
            c.created_at,
            c.updated_at,
            c.flag_reason,
        ).where(*self._where(f, scope))
        if after:
            at, cid = decode_cursor(after)
            q = q.where(tuple_(c.updated_at, c.id) < tuple_(literal(at), literal(cid)))
        q = q.order_by(c.updated_at.desc(), c.id.desc()).limit(limit + 1)
        with Session(self.engine) as s:
            rows = [dict(r._mapping) for r in s.execute(q)]
            more = len(rows) > limit
            rows = rows[:limit]
            ids = [r["id"] for r in rows]
            tags: dict[str, list[str]] = {}
            reviewed: set[str] = set()
            if ids:
                for cid, tag in s.execute(
                    select(TagRow.conversation_id, TagRow.tag)
                    .where(TagRow.conversation_id.in_(ids))
                    .order_by(TagRow.tag)
                ):
                    tags.setdefault(cid, []).append(tag)
                reviewed = set(
                    s.scalars(
                        select(ReviewRow.conversation_id).where(
                            ReviewRow.conversation_id.in_(ids), ReviewRow.reviewed.is_(True)
                        )
                    )
                )
        for r in rows:
            r["tags"] = tags.get(r["id"], [])
            r["reviewed"] = r["id"] in reviewed
        cursor = encode_cursor(rows[-1]["updated_at"], rows[-1]["id"]) if more and rows else None
        return rows, cursor

    def conversation_ids(self, f: Filters, scope: Scope, limit: int = 100_000) -> list[str]:
        """Ids of every conversation matching ``f`` (for exports), newest first."""
        c = ConversationRow
        q = (
            select(c.id)
            .where(*self._where(f, scope))
            .order_by(c.updated_at.desc(), c.id.desc())
            .limit(limit)
        )
        with Session(self.engine) as s:
            return list(s.scalars(q))

    def facets(self) -> dict[str, list[str]]:
        """Values seen in the log, for the filter form's choices (cached for a minute).

        Reading the distinct intents scans the whole log, so the answer is kept
        for :attr:`facet_ttl_s` seconds; a new intent or tag shows up within that.
        """
        now = time.monotonic()
        if self._facets is not None and now - self._facets[0] < self.facet_ttl_s:
            return self._facets[1]
        with Session(self.engine) as s:
            channels = sorted(s.scalars(select(ConversationRow.channel).distinct()))
            intents = sorted(i for i in s.scalars(select(TurnRow.intent).distinct()) if i)
            tags = sorted(s.scalars(select(TagRow.tag).distinct()))
        value = {"channels": channels, "intents": intents, "tags": tags}
        self._facets = (now, value)
        return value

    def forget_facets(self) -> None:
        """Drop the cached filter choices (after a new tag)."""
        self._facets = None

    # -- one conversation -----------------------------------------------------------

    def turns(
        self,
        conversation_id: str,
        *,
        before: int | None = None,
        after: int | None = None,
        limit: int = 50,
    ) -> list[TurnRow]:
        """A page of the conversation's turns, oldest first.

        ``before``: the ``limit`` turns before that turn number (the latest when
        ``None``); ``after``: every turn after that number (live updates).
        """
        with Session(self.engine) as s:
            q = select(TurnRow).where(TurnRow.conversation_id == conversation_id)
            if after is not None:
                return list(s.scalars(q.where(TurnRow.turn > after).order_by(TurnRow.turn)))
            if before is not None:
                q = q.where(TurnRow.turn < before)
            rows = list(s.scalars(q.order_by(TurnRow.turn.desc()).limit(limit)))
        return rows[::-1]

    def events(self, conversation_id: str, *, after_id: int = 0) -> list[EventRow]:
        """The conversation's events (staff actions, notices, staff replies), oldest first."""
        with Session(self.engine) as s:
            return list(
                s.scalars(
                    select(EventRow)
                    .where(EventRow.conversation_id == conversation_id, EventRow.id > after_id)
                    .order_by(EventRow.id)
                )
            )

    def review(self, conversation_id: str) -> ReviewRow | None:
        """The console's state of a conversation (reviewed, assignment), or ``None``."""
        with Session(self.engine) as s:
            return s.get(ReviewRow, conversation_id)

    def tags(self, conversation_id: str) -> list[str]:
        """The conversation's tags, sorted."""
        with Session(self.engine) as s:
            return list(
                s.scalars(
                    select(TagRow.tag)
                    .where(TagRow.conversation_id == conversation_id)
                    .order_by(TagRow.tag)
                )
            )

    def notes(self, conversation_id: str) -> list[NoteRow]:
        """The conversation's private notes, oldest first."""
        with Session(self.engine) as s:
            return list(
                s.scalars(
                    select(NoteRow)
                    .where(NoteRow.conversation_id == conversation_id)
                    .order_by(NoteRow.id)
                )
            )

    def annotations_for(self, turn_ids: list[int]) -> dict[int, AnnotationRow]:
        """Annotations of these turns, by turn id."""
        if not turn_ids:
            return {}
        with Session(self.engine) as s:
            return {
                a.turn_id: a
                for a in s.scalars(select(AnnotationRow).where(AnnotationRow.turn_id.in_(turn_ids)))
            }

    # -- handoff inbox ----------------------------------------------------------------

    def inbox(self, scope: Scope, now: datetime | None = None) -> list[dict[str, Any]]:
        """Conversations waiting for a person, longest waiting first, with the wait in seconds.

        The wait is counted from when the conversation started waiting (the
        latest handoff event or, failing that, its last change).
        """
        now = now or datetime.now(UTC)
        c = ConversationRow
        q = select(c.id, c.channel, c.resident_id, c.household_id, c.turns, c.updated_at).where(
            c.status == WAITING
        )
        clause = self._scope_clause(scope)
        if clause is not None:
            q = q.where(clause)
        with Session(self.engine) as s:
            rows = [dict(r._mapping) for r in s.execute(q)]
            ids = [r["id"] for r in rows]
            since: dict[str, datetime] = {}
            assigned: dict[str, str | None] = {}
            last: dict[str, str | None] = {}
            if ids:
                for cid, at in s.execute(
                    select(TurnRow.conversation_id, func.min(TurnRow.at))
                    .where(TurnRow.conversation_id.in_(ids), TurnRow.intent == "human_handoff")
                    .group_by(TurnRow.conversation_id)
                ):
                    since[cid] = at
                for cid, at in s.execute(
                    select(EventRow.conversation_id, func.min(EventRow.at))
                    .where(
                        EventRow.conversation_id.in_(ids),
                        EventRow.event.in_(("handoff_taken",)),
                    )
                    .group_by(EventRow.conversation_id)
                ):
                    since.setdefault(cid, at)
                for rv in s.scalars(select(ReviewRow).where(ReviewRow.conversation_id.in_(ids))):
                    assigned[rv.conversation_id] = rv.assigned_to
                for cid, masked in s.execute(
                    select(TurnRow.conversation_id, TurnRow.text_masked).where(
                        TurnRow.conversation_id.in_(ids),
                        tuple_(TurnRow.conversation_id, TurnRow.turn).in_(
                            select(TurnRow.conversation_id, func.max(TurnRow.turn))
                            .where(TurnRow.conversation_id.in_(ids))
                            .group_by(TurnRow.conversation_id)
                        ),
                    )
                ):
                    last[cid] = masked
        for r in rows:
            start = _aware(since.get(r["id"]) or r["updated_at"])
            r["waiting_since"] = start
            r["waiting_s"] = max(0, int((now - start).total_seconds()))
            r["assigned_to"] = assigned.get(r["id"])
            r["last_message"] = last.get(r["id"])
        rows.sort(key=lambda r: (r["waiting_since"], r["id"]))
        return rows


def _aware(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def encode_cursor(at: datetime, conversation_id: str) -> str:
    """An opaque cursor for keyset paging."""
    raw = json.dumps([_aware(at).isoformat(), conversation_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """The ``(updated_at, id)`` a cursor stands for.

    Raises:
        FilterError: the cursor is malformed.
    """
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        at, cid = json.loads(raw)
        return datetime.fromisoformat(at), str(cid)
    except (ValueError, TypeError) as exc:
        raise FilterError("bad page cursor") from exc


__all__ = ["FilterError", "Filters", "Reader", "Scope"]
