"""What staff do to a conversation: take, reply, release, resolve, tag, note, mark reviewed.

Each action is audited (``console.audit``). Taking a conversation over silences
the assistant in it (``bot.handoff.take_over``); a reply goes to the resident's
channel through the engine's push path (``bot.outbox.staff_reply``), which logs
it in the conversation as staff.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, delete, select
from sqlalchemy.orm import Session

from bot import handoff
from bot.store import ConversationStore
from console import audit
from console.accounts import Staff
from console.models import NoteRow, ReviewRow, TagRow

_TAG = re.compile(r"^[\w .:-]{1,40}$", re.UNICODE)
#: The longest reply or note staff may send.
MAX_TEXT = 2000


class ActionError(ValueError):
    """A staff action was refused (clear message)."""


def _actor(staff: Staff) -> str:
    return f"staff:{staff.username}"


def _review(s: Session, conversation_id: str) -> ReviewRow:
    row = s.get(ReviewRow, conversation_id)
    if row is None:
        row = ReviewRow(
            conversation_id=conversation_id, reviewed=False, updated_at=datetime.now(UTC)
        )
        s.add(row)
    return row


def take(engine: Engine, staff: Staff, conversation_id: str) -> None:
    """Assign the conversation to ``staff`` and silence the assistant in it."""
    handoff.take_over(ConversationStore(engine), conversation_id, staff.username)
    with Session(engine) as s, s.begin():
        row = _review(s, conversation_id)
        row.assigned_to = staff.username
        row.resolved_at = None
        row.updated_at = datetime.now(UTC)
    audit.record(engine, _actor(staff), "take", conversation_id)


def release(engine: Engine, staff: Staff, conversation_id: str, *, resolved: bool = False) -> None:
    """Give the conversation back to the assistant (``resolved``: the matter is closed too)."""
    handoff.release(ConversationStore(engine), conversation_id, staff.username)
    now = datetime.now(UTC)
    with Session(engine) as s, s.begin():
        row = _review(s, conversation_id)
        row.assigned_to = None
        row.resolved_at = now if resolved else None
        row.updated_at = now
    action = "resolve" if resolved else "release"
    audit.record(
        engine,
        _actor(staff),
        action,
        conversation_id,
        conversation_id=conversation_id if resolved else None,
    )


def reply(
    engine: Engine, staff: Staff, conversation_id: str, text: str, submission: str = ""
) -> Any:
    """Send ``text`` to the resident on the conversation's channel (logged as staff).

    ``submission`` identifies the form submission: the same form sent twice
    (a double click, a retried POST) is delivered once.

    Raises:
        ActionError: empty or too long text, or the push path is not available.
    """
    text = (text or "").strip()
    if not text:
        raise ActionError("the reply is empty")
    if len(text) > MAX_TEXT:
        raise ActionError(f"the reply is longer than {MAX_TEXT} characters")
    try:
        from bot.outbox import staff_reply
    except ImportError as exc:  # the engine's push path is missing from this build
        raise ActionError("replies cannot be delivered: the outbox is not available") from exc
    dedupe = f"console:{submission[:64]}" if submission else None
    result = staff_reply(
        ConversationStore(engine), conversation_id, staff.username, text, dedupe_key=dedupe
    )
    audit.record(engine, _actor(staff), "reply", conversation_id, {"chars": len(text)})
    return result


def add_tag(engine: Engine, staff: Staff, conversation_id: str, tag: str) -> str:
    """Tag the conversation (a tag it already has is kept once); the tag.

    Raises:
        ActionError: a malformed tag.
    """
    tag = (tag or "").strip().lower()
    if not _TAG.fullmatch(tag):
        raise ActionError("a tag is 1-40 letters, digits, spaces or . : _ -")
    with Session(engine) as s, s.begin():
        exists = s.scalar(
            select(TagRow.id).where(TagRow.conversation_id == conversation_id, TagRow.tag == tag)
        )
        if exists is None:
            s.add(
                TagRow(
                    conversation_id=conversation_id,
                    tag=tag,
                    added_by=staff.username,
                    at=datetime.now(UTC),
                )
            )
    audit.record(engine, _actor(staff), "tag", conversation_id, {"tag": tag})
    return tag


def remove_tag(engine: Engine, staff: Staff, conversation_id: str, tag: str) -> None:
    """Remove a tag from the conversation."""
    with Session(engine) as s, s.begin():
        s.execute(
            delete(TagRow).where(TagRow.conversation_id == conversation_id, TagRow.tag == tag)
        )
    audit.record(engine, _actor(staff), "untag", conversation_id, {"tag": tag})


def add_note(engine: Engine, staff: Staff, conversation_id: str, text: str) -> None:
    """Add a private note (staff only; never sent to the resident).

    Raises:
        ActionError: empty or too long.
    """
    text = (text or "").strip()
    if not text or len(text) > MAX_TEXT:
        raise ActionError(f"a note has 1-{MAX_TEXT} characters")
    with Session(engine) as s, s.begin():
        s.add(
            NoteRow(
                conversation_id=conversation_id,
                author=staff.username,
                text=text,
                at=datetime.now(UTC),
            )
        )
    audit.record(engine, _actor(staff), "note", conversation_id, {"chars": len(text)})


def set_reviewed(engine: Engine, staff: Staff, conversation_id: str, reviewed: bool) -> None:
    """Mark the conversation reviewed (or not)."""
    with Session(engine) as s, s.begin():
        row = _review(s, conversation_id)
        row.reviewed = reviewed
        row.reviewed_by = staff.username if reviewed else None
        row.updated_at = datetime.now(UTC)
    audit.record(engine, _actor(staff), "reviewed" if reviewed else "unreviewed", conversation_id)
