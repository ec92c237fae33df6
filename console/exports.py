"""Conversation exports (JSON lines, CSV): one row per turn, masked unless unmasked."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from bot.store import ConversationRow, TurnRow

_CHUNK = 500


def export_rows(
    engine: Engine, conversation_ids: list[str], *, unmasked: bool
) -> list[dict[str, Any]]:
    """Every turn of these conversations, in conversation then turn order.

    The resident's text is the masked copy unless ``unmasked`` (a supervisor
    gave a reason, audited by the caller). Verification attempts keep only their
    kind, decision and score.
    """
    return list(_iter_rows(engine, conversation_ids, unmasked=unmasked))


def _iter_rows(engine: Engine, ids: list[str], *, unmasked: bool) -> Iterator[dict[str, Any]]:
    with Session(engine) as s:
        for i in range(0, len(ids), _CHUNK):
            chunk = ids[i : i + _CHUNK]
            convs = {
                c.id: c
                for c in s.scalars(select(ConversationRow).where(ConversationRow.id.in_(chunk)))
            }
            turns = s.scalars(
                select(TurnRow)
                .where(TurnRow.conversation_id.in_(chunk))
                .order_by(TurnRow.conversation_id, TurnRow.turn)
            )
            for tr in turns:
                conv = convs.get(tr.conversation_id)
                yield {
                    "conversation_id": tr.conversation_id,
                    "channel": tr.channel,
                    "household_id": tr.household_id,
                    "status": conv.status if conv else None,
                    "turn": tr.turn,
                    "at": tr.at.isoformat(),
                    "language": tr.language,
                    "text": tr.text_raw if unmasked else tr.text_masked,
                    "intent": tr.intent,
                    "confidence": tr.confidence,
                    "entities": json.loads(tr.entities or "[]"),
                    "actions": json.loads(tr.actions or "[]"),
                    "replies": [
                        r.get("text") for r in json.loads(tr.replies or "[]") if isinstance(r, dict)
                    ],
                    "verification": [
                        {
                            "kind": v.get("kind"),
                            "decision": v.get("decision"),
                            "score": v.get("score"),
                        }
                        for v in json.loads(tr.verification or "[]")
                    ],
                    "payment_ids": json.loads(tr.payment_ids or "[]"),
                    "latency_ms": tr.latency_ms,
                    "error": tr.error,
                    "masked": not unmasked,
                }
