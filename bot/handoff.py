"""Human handoff: staff take a conversation over and give it back.

While a conversation's status is ``waiting_for_staff`` the engine logs the
resident's messages but does not answer. A resident asks for a human (the
``human_handoff`` action) or staff take the conversation over
(:func:`take_over`); :func:`release` hands it back to the assistant. Both staff
actions are written to the conversation log with the staff member's id
(``handoff_taken`` / ``handoff_released`` events, exported as Rasa's ``pause`` /
``resume``).
"""

from __future__ import annotations

from typing import Any

from bot.store import ConversationStore

TAKEN = "handoff_taken"
RELEASED = "handoff_released"
WAITING = "waiting_for_staff"


def _actor(staff: str) -> str:
    staff = (staff or "").strip()
    if not staff:
        raise ValueError("staff is required")
    if len(staff) > 64 or not staff.isprintable():
        raise ValueError("staff must be a printable id of at most 64 characters")
    return f"staff:{staff}"


def take_over(store: ConversationStore, conversation_id: str, staff: str) -> bool:
    """Staff take the conversation over (the assistant goes quiet); whether it existed.

    Args:
        store: The dialogue store.
        conversation_id: The conversation to take over.
        staff: Who took it over (recorded in the log).
    """
    actor = _actor(staff)
    return store.set_status(conversation_id, status=WAITING, event=TAKEN, actor=actor)


def release(store: ConversationStore, conversation_id: str, staff: str) -> bool:
    """Give the conversation back to the assistant; whether it existed.

    Args:
        store: The dialogue store.
        conversation_id: The conversation to release.
        staff: Who released it (recorded in the log).
    """
    actor = _actor(staff)
    return store.set_status(
        conversation_id, status="active", flagged=False, event=RELEASED, actor=actor
    )


def waiting(store: ConversationStore, conversation_id: str) -> bool:
    """Whether the conversation is waiting for staff."""
    row = store.get_conversation(conversation_id)
    return bool(row and row.status == WAITING)


def staff_events(store: ConversationStore, conversation_id: str) -> list[dict[str, str]]:
    """The take-over and release events: ``{"event", "staff_id", "at"}``, oldest first."""
    return [
        {
            "event": e.event,
            "staff_id": (e.actor or "").removeprefix("staff:"),
            "at": e.at.isoformat(),
        }
        for e in store.events(conversation_id)
        if e.event in (TAKEN, RELEASED)
    ]


def waiting_conversations(store: ConversationStore) -> list[dict[str, Any]]:
    """The conversations waiting for staff, longest-waiting first, as plain dicts.

    Each has the conversation id, channel, resident and household, the flag and
    its reason, the number of turns, when it last changed, who took it over
    (``taken_by``: the staff id of the latest take-over, ``None`` when the
    resident asked for a human and nobody has taken it yet) and the PII-masked
    text of the resident's last message.
    """
    out: list[dict[str, Any]] = []
    for row in store.conversations_with_status(WAITING):
        last = store.last_turn(row.id)
        staff = staff_events(store, row.id)
        taken_by = staff[-1]["staff_id"] if staff and staff[-1]["event"] == TAKEN else None
        out.append(
            {
                "conversation_id": row.id,
                "channel": row.channel,
                "resident_id": row.resident_id,
                "household_id": row.household_id,
                "flagged": bool(row.flagged),
                "flag_reason": row.flag_reason,
                "turns": row.turns,
                "updated_at": row.updated_at.isoformat(),
                "taken_by": taken_by,
                "last_message": last.text_masked if last is not None else None,
            }
        )
    return out
