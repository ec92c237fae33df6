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
"""

from __future__ import annotations

import json
from typing import Any

from bot.store import ConversationStore


def export_conversation(
    store: ConversationStore, conversation_id: str, *, raw: bool = False
) -> dict[str, Any] | None:
    """The conversation and its events, or ``None`` if it does not exist."""
    conversation = store.get_conversation(conversation_id)
    if conversation is None:
        return None
    events: list[dict[str, Any]] = []
    session = None
    for turn in store.turns(conversation_id):
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
