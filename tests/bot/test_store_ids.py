"""The store remembers conversation ids: no query per turn after the first."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import event

from billtalk.db import make_engine
from bot.store import ConversationStore, ensure_schema

NOW = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


def test_conversation_id_is_queried_once_then_remembered(database_url: str) -> None:
    ensure_schema(database_url)
    store = ConversationStore(make_engine(database_url))
    statements: list[str] = []
    event.listen(store.engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    first = store.conversation_id_for("tg", "u-cache", "r-1", NOW)
    assert statements, "the first lookup goes to the database"
    statements.clear()
    assert store.conversation_id_for("tg", "u-cache", "r-1", NOW) == first
    assert statements == []
    assert store.conversation_id_for("tg", "u-other", "r-1", NOW) != first


def test_a_second_store_finds_the_same_conversation(database_url: str) -> None:
    """Another worker process (another store) maps the user to the same row."""
    ensure_schema(database_url)
    one = ConversationStore(make_engine(database_url))
    two = ConversationStore(make_engine(database_url))
    assert one.conversation_id_for("tg", "u-shared", None, NOW) == two.conversation_id_for(
        "tg", "u-shared", None, NOW
    )


def test_the_cache_is_bounded(database_url: str) -> None:
    ensure_schema(database_url)
    store = ConversationStore(make_engine(database_url))
    store.id_cache_size = 3
    ids = [store.conversation_id_for("tg", f"u-b{i}", None, NOW) for i in range(5)]
    assert len(store._ids) <= 3
    assert [store.conversation_id_for("tg", f"u-b{i}", None, NOW) for i in range(5)] == ids
