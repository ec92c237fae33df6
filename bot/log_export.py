"""Export a conversation's log as JSON events resembling Rasa tracker events.

Each logged turn becomes, in order:

* ``{"event": "session_started"}`` when the turn opens a new session;
* ``{"event": "user", "text", "parse_data": {"intent", "entities",
  "intent_ranking"}, "timestamp", "input_channel", "metadata"}`` (the PII-masked
  text unless ``raw`` is asked for; a PIN is never there in either form);
* ``{"event": "slot", "name", "value"}`` for every slot the turn changed;
* ``{"event": "action", "name"}`` for every action run;
* ``{"event": "verification", ...}`` for every step-up attempt (kind, score,
  decision; never biometric data);
* ``{"event": "payment", "payment_id"}`` for payments made or looked at;
* ``{"event": "bot", "text", "data": {"buttons"}}`` for every reply;
* ``{"event": "error", "message"}`` if the turn failed.

Events outside a resident's turn follow the turn they came after:

* ``{"event": "pause", "metadata": {"staff_id"}}`` when staff take the
  conversation over, ``{"event": "resume", "metadata": {"staff_id"}}`` when they
  release it (Rasa's ``ConversationPaused`` / ``ConversationResumed``);
* ``{"event": "bot", "text", "metadata": {"notice_id", "kind", ...}}`` for a
  notice the assistant delivered on its own (a pending payment that settled,
  an arrears reminder).
"""

from __future__ import annotations

import json
from typing import Any

from bot.store import ConversationStore, EventRow

#: Stored event names -> Rasa tracker event names.
_RASA_NAMES = {"handoff_taken": "pause", "handoff_released": "resume", "notice": "bot"}


def _other_event(row: EventRow) -> dict[str, Any]:
    data = json.loads(row.data or "{}")
    out: dict[str, Any] = {"event": _RASA_NAMES.get(row.event, row.event)}
    out["timestamp"] = row.at.timestamp()
    metadata: dict[str, Any] = {"name": row.event, "after_turn": row.after_turn}
    if row.actor and row.actor.startswith("staff:"):
        metadata["staff_id"] = row.actor.removeprefix("staff:")
    if row.event == "notice":
        out["text"] = data.pop("text", None)
        out["data"] = {"buttons": [], "attachments": []}
    metadata.update(data)
    out["metadata"] = metadata
    return out


def export_conversation(
    store: ConversationStore, conversation_id: str, *, raw: bool = False
) -> dict[str, Any] | None:
    """The conversation and its events, or ``None`` if it does not exist."""
    conversation = store.get_conversation(conversation_id)
    if conversation is None:
        return None
    events: list[dict[str, Any]] = []
    others = store.events(conversation_id)
    session = None

    def flush(after: int) -> None:
        while others and others[0].after_turn <= after:
            events.append(_other_event(others.pop(0)))

    for turn in store.turns(conversation_id):
        flush(turn.turn - 1)
        ts = turn.at.timestamp()
        if turn.session_id != session:
            events.append({"event": "session_started", "timestamp": ts})
            session = turn.session_id
        parse_data = {
            "intent": {"name": turn.intent, "confidence": turn.confidence},
            "entities": json.loads(turn.entities),
            "intent_ranking": json.loads(turn.ranking),
        }
        events.append(
            {
                "event": "user",
                "timestamp": ts,
                "text": turn.text_raw if raw else turn.text_masked,
                "parse_data": parse_data,
                "input_channel": turn.channel,
                "metadata": {
                    "turn": turn.turn,
                    "resident_id": turn.resident_id,
                    "household_id": turn.household_id,
                    "language": turn.language,
                    "button_payload": turn.button_payload,
                    "latency_ms": turn.latency_ms,
                },
            }
        )
        before = json.loads(turn.slots_before)
        after = json.loads(turn.slots_after)
        for name in sorted(set(before) | set(after)):
            if before.get(name) != after.get(name):
                events.append(
                    {"event": "slot", "timestamp": ts, "name": name, "value": after.get(name)}
                )
        for action in json.loads(turn.actions):
            events.append({"event": "action", "timestamp": ts, "name": action})
        for attempt in json.loads(turn.verification):
            events.append({"event": "verification", "timestamp": ts, **attempt})
        for payment_id in json.loads(turn.payment_ids):
            events.append({"event": "payment", "timestamp": ts, "payment_id": payment_id})
        for reply in json.loads(turn.replies):
            events.append(
                {
                    "event": "bot",
                    "timestamp": ts,
                    "text": reply.get("text"),
                    "data": {
                        "buttons": reply.get("buttons", []),
                        "attachments": reply.get("attachments", []),
                    },
                    "metadata": {"templates": reply.get("keys", [])},
                }
            )
        if turn.error:
            events.append({"event": "error", "timestamp": ts, "message": turn.error})
    flush(2**62)
    return {
        "conversation_id": conversation.id,
        "sender_id": conversation.external_user_id,
        "channel": conversation.channel,
        "resident_id": conversation.resident_id,
        "household_id": conversation.household_id,
        "status": conversation.status,
        "flagged": conversation.flagged,
        "flag_reason": conversation.flag_reason,
        "events": events,
    }
