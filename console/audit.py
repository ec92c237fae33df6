"""The audit log of staff actions (login, take, reply, release, tag, annotate, unmask, export).

Each action is written to three places:

* the backend's tamper-evident, hash-chained audit log
  (``backend.service_layer.audit``, checked by ``billtalk audit verify``) as
  ``staff.<action>`` entries, when the billing database is linked with
  :func:`link_chain` (the web module and the CLI do);
* the console's own ``console_audit`` table (shown to admins on ``/console/audit``);
* for actions on a conversation, the conversation's event log (``bot_events``,
  actor ``staff:<username>``), so they show in the transcript and in
  ``billtalk log export``.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from console.models import AuditRow

# conversation engine -> billing engine whose hash-chained audit log also gets the entries
_CHAINS: dict[int, Engine] = {}


def link_chain(engine: Engine, billing_engine: Engine) -> None:
    """Also write staff actions recorded with ``engine`` to the backend's hash-chained log."""
    _CHAINS[id(engine)] = billing_engine


def _append_chain(
    engine: Engine, actor: str, action: str, target: str | None, data: dict[str, Any] | None
) -> None:
    chain = _CHAINS.get(id(engine))
    if chain is None:
        return
    try:
        from backend.service_layer import audit as backend_audit
    except ImportError:  # a build without the backend's audit log
        return
    backend_audit.append(
        chain, f"staff.{action}", actor=actor, subject=target or "", data=data or {}
    )


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
    _append_chain(engine, actor, action, target, data)
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
