"""The conversation store: migrations, leases, atomic turns, PINs, lockouts, links.

Runs on SQLite and on PostgreSQL (``database_url`` fixture).
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from billtalk.db import make_engine
from bot.store import (
    ConcurrentTurnError,
    ConversationBusyError,
    ConversationStore,
    NoticeAlreadyWrittenError,
    NoticeWrite,
    TurnRecord,
    ensure_schema,
)

NOW = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


@pytest.fixture
def store(database_url: str) -> ConversationStore:
    ensure_schema(database_url)
    return ConversationStore(make_engine(database_url))


def record(text: str = "hi") -> TurnRecord:
    return TurnRecord(
        at=NOW,
        channel="terminal",
        resident_id="r-1",
        household_id="hh-1",
        session_id="s",
        text_raw=text,
        text_masked=text,
        button_payload=None,
        language="en",
        intent="greet",
        confidence=0.9,
        ranking=[],
        entities=[],
        slots_before={},
        slots_after={},
        actions=["greet"],
        replies=[{"text": "hello"}],
        verification=[],
        payment_ids=[],
        latency_ms=1.0,
        error=None,
    )


def test_migrations_are_idempotent(database_url: str) -> None:
    ensure_schema(database_url)
    ensure_schema(database_url)


async def test_a_turn_writes_state_and_log_together(store: ConversationStore) -> None:
    user = uuid.uuid4().hex
    conv = store.conversation_id_for("terminal", user, "r-1", NOW)
    assert store.conversation_id_for("terminal", user, "r-1", NOW) == conv
    loaded = await store.acquire(conv, "w1", 30)
    store.commit_turn(
        loaded,
        "w1",
        {"n": 1},
        record(),
        status="active",
        flagged=False,
        flag_reason=None,
        resident_id="r-1",
        household_id="hh-1",
    )
    again = await store.acquire(conv, "w2", 30)
    assert again.state == {"n": 1} and again.version == 1 and again.turns == 1
    store.release(conv, "w2")
    assert [t.text_raw for t in store.turns(conv)] == ["hi"]


async def test_a_stale_version_writes_nothing(store: ConversationStore) -> None:
    conv = store.conversation_id_for("terminal", uuid.uuid4().hex, "r-1", NOW)
    loaded = await store.acquire(conv, "w1", 30)
    loaded.version = 7  # as if another worker had moved on
    with pytest.raises(ConcurrentTurnError):
        store.commit_turn(
            loaded,
            "w1",
            {"lost": True},
            record(),
            status="active",
            flagged=False,
            flag_reason=None,
            resident_id="r-1",
            household_id="hh-1",
        )
    store.release(conv, "w1")
    assert store.turns(conv) == []


async def test_the_lease_serialises_two_workers(store: ConversationStore) -> None:
    conv = store.conversation_id_for("terminal", uuid.uuid4().hex, "r-1", NOW)
    order: list[str] = []

    async def worker(name: str) -> None:
        loaded = await store.acquire(conv, name, 30)
        order.append(f"{name}:start:{loaded.version}")
        await asyncio.sleep(0.05)
        state = dict(loaded.state)
        state["count"] = state.get("count", 0) + 1
        store.commit_turn(
            loaded,
            name,
            state,
            record(name),
            status="active",
            flagged=False,
            flag_reason=None,
            resident_id="r-1",
            household_id="hh-1",
        )
        order.append(f"{name}:end")

    await asyncio.gather(worker("a"), worker("b"), worker("c"))
    final = await store.acquire(conv, "check", 30)
    assert final.state["count"] == 3 and final.version == 3
    starts = [o for o in order if ":start:" in o]
    assert sorted(int(s.rsplit(":", 1)[1]) for s in starts) == [0, 1, 2]
    for i in range(0, 6, 2):  # each start is followed by its own end
        assert order[i].split(":")[0] == order[i + 1].split(":")[0]


async def test_a_held_lease_times_out_for_waiters(store: ConversationStore) -> None:
    conv = store.conversation_id_for("terminal", uuid.uuid4().hex, "r-1", NOW)
    await store.acquire(conv, "w1", 30)
    with pytest.raises(ConversationBusyError):
        await store.acquire(conv, "w2", 30, wait_s=0.1)


def test_lockout_counts_and_expires(store: ConversationStore) -> None:
    rid = uuid.uuid4().hex
    lock = timedelta(minutes=15)
    for n in range(1, 5):
        assert store.record_failure(rid, "pin", NOW, 5, lock) == (n, None)
    failures, until = store.record_failure(rid, "pin", NOW, 5, lock)
    assert failures == 5 and until == NOW + lock
    assert store.locked_until(rid, "pin", NOW + timedelta(minutes=14)) is not None
    assert store.locked_until(rid, "face", NOW) is None
    assert store.locked_until(rid, "pin", NOW + timedelta(minutes=16)) is None
    assert store.record_failure(rid, "pin", NOW + timedelta(minutes=16), 5, lock) == (1, None)
    store.record_success(rid, "pin", NOW)
    assert store.locked_until(rid, "pin", NOW) is None


def test_links_and_pins(store: ConversationStore) -> None:
    user = uuid.uuid4().hex
    assert store.linked_resident("telegram", user) is None
    store.link("telegram", user, "r-1", "hh-1", NOW)
    assert store.linked_resident("telegram", user) == ("r-1", "hh-1")
    store.set_pin_hash("r-1", "$argon2id$x", NOW)
    assert store.get_pin_hash("r-1") == "$argon2id$x"


def _notice(mode: str = "poll") -> NoticeWrite:
    # random ids: the PostgreSQL database is shared by the session's tests
    return NoticeWrite(
        notice_id=uuid.uuid4().int % 2_000_000_000,
        kind="payment_succeeded",
        mode=mode,
        channel="telegram",
        language="en",
        text="Your payment has gone through.",
    )


async def test_a_notice_is_written_once_whoever_writes_it(store: ConversationStore) -> None:
    conv = store.conversation_id_for("telegram", uuid.uuid4().hex, "r-1", NOW)
    other = store.conversation_id_for("telegram", uuid.uuid4().hex, "r-2", NOW)
    notice = _notice()
    loaded = await store.acquire(conv, "w1", 30)
    store.commit_event(loaded, "w1", {"n": 1}, "notice", at=NOW, data={"x": 1}, notice=notice)
    written = store.notice_delivery(notice.notice_id)
    assert written is not None and written.conversation_id == conv and written.marked_at is None
    assert written.text == notice.text and written.mode == "poll"
    # a second write, into the same or another conversation, writes nothing at all
    for target in (conv, other):
        loaded = await store.acquire(target, "w2", 30)
        with pytest.raises(NoticeAlreadyWrittenError):
            store.commit_event(loaded, "w2", {"n": 2}, "notice", at=NOW, notice=notice)
        store.release(target, "w2")
        again = await store.acquire(target, "w3", 30)
        assert again.state == ({"n": 1} if target == conv else {})
        store.release(target, "w3")
    assert [e.event for e in store.events(conv)] == ["notice"]
    assert store.events(other) == []
    store.notice_marked(notice.notice_id, NOW)
    assert store.notice_delivery(notice.notice_id).marked_at is not None  # type: ignore[union-attr]


async def test_a_turn_telling_an_already_written_notice_writes_nothing(
    store: ConversationStore,
) -> None:
    conv = store.conversation_id_for("telegram", uuid.uuid4().hex, "r-1", NOW)
    other = store.conversation_id_for("telegram", uuid.uuid4().hex, "r-1", NOW)
    notice = _notice("turn")
    loaded = await store.acquire(conv, "w1", 30)
    commit = dict(
        status="active", flagged=False, flag_reason=None, resident_id="r-1", household_id="hh-1"
    )
    store.commit_turn(loaded, "w1", {"n": 1}, record(), notices=[notice], **commit)  # type: ignore[arg-type]
    assert store.notice_delivery(notice.notice_id).mode == "turn"  # type: ignore[union-attr]
    loaded = await store.acquire(other, "w2", 30)
    with pytest.raises(ConcurrentTurnError):
        store.commit_turn(loaded, "w2", {"n": 1}, record(), notices=[notice], **commit)  # type: ignore[arg-type]
    store.release(other, "w2")
    assert store.turns(other) == []
    assert store.notice_delivery(notice.notice_id).conversation_id == conv  # type: ignore[union-attr]


async def test_acquire_reads_the_delivery_record_under_the_lease(store: ConversationStore) -> None:
    conv = store.conversation_id_for("telegram", uuid.uuid4().hex, "r-1", NOW)
    delivery = f"telegram:1:{uuid.uuid4().hex}"
    loaded = await store.acquire(conv, "w1", 30, delivery_id=delivery)
    assert loaded.processed is None  # not processed yet
    done = record()
    done.delivery_id, done.delivery_replies = delivery, '["kept"]'
    store.commit_turn(
        loaded,
        "w1",
        {"n": 1},
        done,
        status="active",
        flagged=False,
        flag_reason=None,
        resident_id="r-1",
        household_id="hh-1",
    )
    again = await store.acquire(conv, "w2", 30, delivery_id=delivery)
    assert again.processed is not None and again.processed.replies == '["kept"]'
    assert again.processed.conversation_id == conv
    assert again.version == 1  # the turn's state was written once
    store.release(conv, "w2")
    plain = await store.acquire(conv, "w3", 30)  # no delivery asked: none read
    assert plain.processed is None and plain.state == {"n": 1}
