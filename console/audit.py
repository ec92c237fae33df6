"""The audit log of staff actions (login, take, reply, release, tag, annotate, unmask, export).

Each action is written to the console's own ``console_audit`` table, and actions
on a conversation also to the conversation's event log (``bot_events``, actor
``staff:<username>``), so they show in the transcript and in ``billtalk log
export``. The backend's hash-chained audit log (``backend.service_layer.audit``)
is not there yet; when it lands this is the one place to route entries into it.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from console.models import AuditRow


def record(
    engine: Engine,
    actor: str,
    action: str,
    target: str | None = None,
    data: dict[str, Any] | None = None,
    *,
    conversation_id: str | None = None,
) -> None:
    """Write one staff action to the audit log.

    Args:
        engine: The conversation database.
        actor: ``staff:<username>`` (or ``cli``).
        action: What was done (``login``, ``take``, ``reply``...).
        target: What it was done to (a conversation id, a username...).
        data: Details; never passwords, PINs, media or unmasked resident text.
        conversation_id: Also write a ``staff_<action>`` event into this conversation's log.
    """
    now = datetime.now(UTC)
    payload = json.dumps(data or {}, ensure_ascii=False, sort_keys=True, default=str)
    with Session(engine) as s, s.begin():
        s.add(AuditRow(at=now, actor=actor, action=action, target=target, data=payload))
    if conversation_id is not None:
        from bot.store import ConversationStore

        ConversationStore(engine).add_event(
            conversation_id, f"staff_{action}"[:32], actor=actor, data=data or {}, at=now
        )


def entries(engine: Engine, limit: int = 200) -> list[AuditRow]:
    """The latest audit entries, newest first."""
    with Session(engine) as s:
        return list(s.scalars(select(AuditRow).order_by(AuditRow.id.desc()).limit(limit)))
