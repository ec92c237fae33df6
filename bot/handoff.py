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

from bot.store import ConversationStore

TAKEN = "handoff_taken"
RELEASED = "handoff_released"


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
    return store.set_status(conversation_id, status="waiting_for_staff", event=TAKEN, actor=actor)


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
    return bool(row and row.status == "waiting_for_staff")


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
