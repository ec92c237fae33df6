"""Human handoff: staff take a conversation over and give it back.

While a conversation's status is ``waiting_for_staff`` the engine logs the
resident's messages but does not answer. :func:`release` hands it back to the
assistant (the staff console calls it).
"""

from __future__ import annotations

from bot.store import ConversationStore


def release(store: ConversationStore, conversation_id: str, staff: str) -> bool:
    """Give the conversation back to the assistant; whether it existed.

    Args:
        store: The dialogue store.
        conversation_id: The conversation to release.
        staff: Who released it (recorded in the log).
    """
    if not staff:
        raise ValueError("staff is required")
    return store.set_status(conversation_id, status="active", flagged=False)


def waiting(store: ConversationStore, conversation_id: str) -> bool:
    """Whether the conversation is waiting for staff."""
    row = store.get_conversation(conversation_id)
    return bool(row and row.status == "waiting_for_staff")
