"""The update ledger on SQLite and PostgreSQL: claims, redeliveries, stale take-over, order."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from sqlalchemy import event

from billtalk.db import make_engine
from bot.channels.telegram.ledger import Claim, UpdateLedger
from bot.store import ensure_schema


def test_claims_redeliveries_stale_claims_and_chat_order(database_url: str) -> None:
    ensure_schema(database_url)
    db = make_engine(database_url)
    ledger = UpdateLedger(db, "42", stale_claim_s=0.5)
    other_bot = UpdateLedger(db, "43")
    try:
        assert ledger.claim_update(100, "chat-1", "worker-a") == Claim(
            wait=False, fresh=True
        )  # claimed, nothing earlier
        assert ledger.claim_update(100, "chat-1", "worker-b") is None  # being processed elsewhere
        assert other_bot.claim_update(100, "chat-1", "worker-b") == Claim(
            wait=False, fresh=True
        )  # update ids are per bot
        assert ledger.claim_update(101, "chat-1", "worker-b") == Claim(
            wait=True, fresh=True
        )  # 100 of this chat in progress
        assert ledger.claim_update(102, "chat-2", "worker-b") == Claim(
            wait=False, fresh=True
        )  # another chat: no wait
        ledger.finish(100, "worker-a")
        assert ledger.status(100) == "done"
        assert ledger.claim_update(100, "chat-1", "worker-c") is None  # done: never again
        assert not ledger.earlier_in_progress(101, "chat-1")
        time.sleep(0.6)  # worker-b died holding 101: a redelivery takes it over
        assert ledger.claim_update(101, "chat-1", "worker-c") == Claim(
            wait=False, fresh=False
        )  # stale: taken over
        ledger.finish(101, "worker-b")  # the dead worker's late finish changes nothing
        assert ledger.status(101) == "processing"
        ledger.finish(101, "worker-c")
        assert ledger.status(101) == "done"
        assert ledger.count() == 2
        ledger.set_chat_language("chat-1", "zh")
        assert ledger.chat_language("chat-1") == "zh" and ledger.chat_language("chat-9") is None
        assert ledger.tell_group_once("-5") is True and ledger.tell_group_once("-5") is False
    finally:
        db.dispose()


def test_a_claim_tells_whether_it_is_the_updates_first(database_url: str) -> None:
    """Fresh: the claim inserted the update's row (no worker ever had it). A stale claim
    taken over is not fresh (its dead worker may have acted); a refused claim is None."""
    ensure_schema(database_url)
    db = make_engine(database_url)
    ledger = UpdateLedger(db, "62", stale_claim_s=0.3)
    try:
        assert ledger.claim_update(7, "chat-1", "a") == Claim(wait=False, fresh=True)
        assert ledger.claim_update(8, "chat-1", "a") == Claim(wait=True, fresh=True)
        assert ledger.claim_update(7, "chat-1", "b") is None  # in progress elsewhere
        time.sleep(0.4)
        assert ledger.claim_update(7, "chat-1", "b") == Claim(wait=False, fresh=False)
        ledger.finish(7, "b")
        assert ledger.claim_update(7, "chat-1", "c") is None  # done
        assert ledger.claim_update(9, None, "c") == Claim(wait=False, fresh=True)
    finally:
        db.dispose()


def test_prune_forgets_only_old_done_updates_of_its_own_bot(database_url: str) -> None:
    ensure_schema(database_url)
    db = make_engine(database_url)
    ledger, other_bot = UpdateLedger(db, "52"), UpdateLedger(db, "53")
    try:
        for update_id in (1, 2):
            assert ledger.claim_update(update_id, "chat-1", "w") is not None
        ledger.finish(1, "w")  # 2 stays "processing": its worker may be alive
        assert other_bot.claim_update(1, "chat-1", "w") == Claim(wait=False, fresh=True)
        other_bot.finish(1, "w")
        assert ledger.prune(datetime.now(UTC) - timedelta(hours=1)) == 0  # not old yet
        assert ledger.prune(datetime.now(UTC) + timedelta(hours=1)) == 1
        assert ledger.status(1) is None and ledger.status(2) == "processing"
        assert other_bot.status(1) == "done"
    finally:
        db.dispose()


def test_a_claim_brings_the_chat_language_chosen_through_another_worker(database_url: str) -> None:
    ensure_schema(database_url)
    db = make_engine(database_url)
    ledger, other_worker = UpdateLedger(db, "62"), UpdateLedger(db, "62")
    statements: list[str] = []
    event.listen(db, "before_cursor_execute", lambda *args: statements.append(args[2]))
    try:
        assert ledger.claim_update(1, "chat-1", "a") == Claim(wait=False, fresh=True)
        ledger.finish(1, "a")
        assert ledger.chat_language("chat-1") is None  # none chosen: remembered as such
        other_worker.set_chat_language("chat-1", "zh")
        assert ledger.claim_update(2, "chat-1", "a") == Claim(wait=False, fresh=True)
        statements.clear()
        language = ledger.chat_language("chat-1")
        if db.dialect.name == "postgresql":  # the claim read it: fresh, and no read of its own
            assert language == "zh" and statements == []
        else:  # SQLite: the process's cache until language_cache_s runs out
            assert language is None
            ledger._languages.clear()
            assert ledger.chat_language("chat-1") == "zh"
    finally:
        db.dispose()


def test_an_acknowledged_claim_keeps_its_update_until_done_for_one_live_worker_to_take_over(
    database_url: str,
) -> None:
    """A claim made with the raw update (its webhook request answered before the turn) is
    offered for takeover only once stale; renewing it keeps it from going stale; only one
    of two workers taking it over wins; done, the update is dropped from the row."""
    from sqlalchemy import select

    from bot.channels.telegram.ledger import updates_table

    ensure_schema(database_url)
    db = make_engine(database_url)
    ledger = UpdateLedger(db, "72", stale_claim_s=0.4)
    raw = '{"update_id": 5, "message": {"voice": {"file_id": "f"}}}'
    try:
        kept = Claim(wait=False, fresh=True, kept=True)
        assert ledger.claim_update(5, "chat-1", "dead", raw) == kept
        assert ledger.claim_update(6, "chat-1", "live", '{"update_id": 6}') is not None
        # not acknowledged early: no update kept
        assert ledger.claim_update(7, "chat-2", "dead") == Claim(wait=False, fresh=True)
        assert ledger.stale_payloads() == []  # fresh claims: their workers may be alive
        for _ in range(3):  # "live" renews its claim; "dead" does not
            time.sleep(0.2)
            assert ledger.refresh(["live", "nobody"]) == 1
        assert ledger.stale_payloads() == [(5, raw)]  # not 6 (renewed), not 7 (no update)
        assert ledger.earlier_in_progress(6, "chat-1") is False  # 5 is stale: 6 may go on
        # two live workers sweep at once: one takes the update over, the other is refused
        taken = [ledger.claim_update(5, "chat-1", owner) for owner in ("w1", "w2")]
        assert taken == [Claim(wait=False, fresh=False, kept=True), None]
        assert ledger.stale_payloads() == []  # w1's claim is fresh again
        time.sleep(0.5)  # w1 dies too, and "live" stopped renewing: both there to take over
        assert ledger.stale_payloads() == [(5, raw), (6, '{"update_id": 6}')]
        assert ledger.stale_payloads(limit=1) == [(5, raw)]
        assert ledger.claim_update(5, "chat-1", "w3") == Claim(wait=False, fresh=False, kept=True)
        # a stale claim without its update taken over (by a redelivery): nothing kept
        assert ledger.claim_update(7, "chat-2", "w4") == Claim(wait=False, fresh=False)
        ledger.finish(5, "w1")  # the dead worker's late finish changes nothing
        assert ledger.status(5) == "processing"
        ledger.finish(5, "w3")
        assert ledger.status(5) == "done"
        with db.connect() as conn:
            payloads = dict(
                conn.execute(
                    select(updates_table.c.update_id, updates_table.c.payload).where(
                        updates_table.c.bot_id == "72"
                    )
                ).all()
            )
        assert payloads == {5: None, 6: '{"update_id": 6}', 7: None}
        assert ledger.stale_payloads() == [(6, '{"update_id": 6}')]
    finally:
        db.dispose()
