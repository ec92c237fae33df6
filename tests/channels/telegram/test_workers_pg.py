"""Two webhook worker processes on PostgreSQL sharing one webhook's load.

The stand-in spreads updates over both workers (as a load balancer would) and
delivers a chat's updates concurrently. Every update must act exactly once
(a redelivery reaching the other worker included), each chat's turns must be
logged in the order its updates were sent, and each update gets one reply.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, text

from tests.channels.telegram.botapi_standin import BOT_ID, BotApiStandIn
from tests.channels.telegram.workers import SECRET, prepare_database, webhook_workers

TEXTS = [
    "how much do I owe?",
    "when is my water bill due?",
    "show my payment history",
    "why is my electricity bill so high?",
    "thanks",
]


@pytest.fixture
def own_postgres(postgres_url: str) -> Iterator[str]:
    """A PostgreSQL database of this test alone (the session's is shared with other tests)."""
    from sqlalchemy.engine import make_url

    from tests.conftest import POSTGRES_ADMIN_URL

    name = f"{make_url(postgres_url).database}_tg_workers"
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(postgres_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _done(db: Any) -> int:
    with db.connect() as conn:
        return int(
            conn.execute(
                text(
                    "SELECT count(*) FROM bot_telegram_updates"
                    " WHERE status = 'done' AND bot_id = :bot"
                ),
                {"bot": str(BOT_ID)},
            ).scalar()
            or 0
        )


def _wait(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


@pytest.mark.postgres
@pytest.mark.slow
def test_two_workers_on_postgresql_act_once_per_update_and_keep_each_chat_in_order(
    own_postgres: str, tmp_path: Path
) -> None:
    postgres_url = own_postgres
    seeded = prepare_database(postgres_url)
    households: list[dict[str, Any]] = list(seeded["households"])[:4]  # type: ignore[call-overload]
    db = create_engine(postgres_url)
    standin = BotApiStandIn(webhook_timeout_s=2.0)
    with standin, webhook_workers(standin, postgres_url, 2, tmp_path) as urls:
        standin.webhook = {"url": urls[0], "secret_token": SECRET}
        standin.deliver_to = urls
        chats = [7_100_001 + i for i in range(len(households))]
        for chat, household in zip(chats, households, strict=True):
            standin.text(chat, f"/start {household['link_code']}")
        standin.wait_for(
            lambda: all(any("linked" in t for t in standin.texts(c)) for c in chats),
            timeout=120,
            what="every chat linked",
        )
        # chat 2's first answer is slow: the stand-in gives up on that delivery, redelivers it
        # (to the other worker) and goes on with the chat's next update, which must wait
        standin.fail("sendMessage", 0, delay_s=3.0, chat_id=chats[1])
        # every chat's messages at once, interleaved across chats and workers
        for message in TEXTS:
            for chat in chats:
                standin.text(chat, message)
        # one update delivered twice: once to each worker
        twice = standin.message(chats[0], text="what do I owe for gas?")
        standin.inject(twice)
        standin.redeliver(twice)
        expected = len(chats) * (1 + len(TEXTS)) + 1
        _wait(lambda: _done(db) >= expected, 180, "every update handled")
        time.sleep(1.0)  # anything sent twice would arrive now
        assert _done(db) == expected

        for chat in chats:
            replies = standin.calls_of("sendMessage", chat)
            extra = 1 if chat == chats[0] else 0
            assert len(replies) == 1 + len(TEXTS) + extra, [c.params["text"] for c in replies]
        for chat in chats:
            logged = _turns(db, chat)
            assert logged[1 : 1 + len(TEXTS)] == TEXTS, logged
        used = {d.url for d in standin.deliveries if d.status == 200}
        assert used == set(urls), "both workers took updates"
        twice_deliveries = [d for d in standin.deliveries if d.update_id == twice["update_id"]]
        assert len(twice_deliveries) == 2
        timeouts = [d for d in standin.deliveries if d.status is None]
        assert timeouts, "the slow answer made the stand-in redeliver"
        # /healthz counts each worker's updates and NLU cache use: every update handled once,
        # and the same messages from four chats partly parsed from the cache
        stats = [httpx.get(u.replace("/telegram/webhook", "/healthz")).json() for u in urls]
        assert sum(s["updates_handled"] for s in stats) == expected, stats
        hits = sum(s["nlu_cache_hits"] for s in stats)
        parsed = hits + sum(s["nlu_cache_misses"] for s in stats)
        assert parsed >= len(chats) * len(TEXTS) and hits >= len(TEXTS), stats
    db.dispose()


def _children(pid: int) -> list[int]:
    """The child processes of ``pid`` (its voice decoder), from /proc."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            found += [int(c) for c in (task / "children").read_text().split()]
    return found


def _turns(db: Any, chat: int) -> list[str]:
    """The texts of the chat's logged turns, in order."""
    with db.connect() as conn:
        return [
            str(r[0])
            for r in conn.execute(
                text(
                    "SELECT t.text_raw FROM bot_turns t JOIN bot_conversations c "
                    "ON c.id = t.conversation_id WHERE c.channel = 'telegram' "
                    "AND c.external_user_id = :chat ORDER BY t.turn"
                ),
                {"chat": str(chat)},
            )
        ]


@pytest.mark.postgres
@pytest.mark.slow
def test_a_worker_killed_mid_decode_after_acknowledging_a_voice_note_leaves_it_to_a_live_one(
    own_postgres: str, tmp_path: Path
) -> None:
    """Worker A answers Telegram for a voice note once claimed, then is killed (SIGKILL, its
    decoder too) while decoding it. Telegram never redelivers an update it got 200 for: the
    live worker B finds the stale claim with its raw update in the ledger, takes it over and
    answers it, exactly once."""
    from tests.channels.telegram.helpers import ogg_note

    postgres_url = own_postgres
    seeded = prepare_database(postgres_url)
    household: dict[str, Any] = next(iter(seeded["households"]))  # type: ignore[call-overload]
    db = create_engine(postgres_url)
    # a long note (about 20 s of speech): seconds of decoding to be killed in
    ogg = ogg_note(" ".join(["how much do I owe for my water bill this month"] * 6), tmp_path)
    standin = BotApiStandIn(webhook_timeout_s=30.0)
    workers: list[subprocess.Popen[bytes]] = []
    with (
        standin,
        webhook_workers(
            standin,
            postgres_url,
            2,
            tmp_path,
            processes=workers,
            BILLTALK_TELEGRAM_STALE_CLAIM_S="4",
            BILLTALK_TELEGRAM_CLAIM_REFRESH_S="0.5",
        ) as urls,
    ):
        standin.webhook = {"url": urls[0], "secret_token": SECRET}
        standin.deliver_to = urls
        chat = 7_200_001
        standin.text(chat, f"/start {household['link_code']}")
        standin.wait_for(
            lambda: any("linked" in t for t in standin.texts(chat)), timeout=120, what="linked"
        )
        standin.deliver_to = [urls[0]]  # the note goes to worker A
        linked = len(standin.calls_of("sendMessage", chat))
        note = standin.voice(chat, ogg, duration=20)
        update_id = note["update_id"]
        standin.wait_for(
            lambda: standin.calls_of("sendChatAction", chat), timeout=60, what="decoding begun"
        )
        # killed holding the conversation's lease (taken before decoding): worker B's first
        # try finds it busy until the lease expires, and must leave the claim to try again
        _wait(lambda: _leased(db, chat), 60, "worker A's lease on the conversation")
        victim = workers[0]
        decoders = _children(victim.pid)
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=10)
        for pid in decoders:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        # killed after answering Telegram and before the turn was done
        [delivery] = [d for d in standin.deliveries if d.update_id == update_id]
        assert delivery.status == 200 and delivery.url == urls[0]
        assert len(standin.calls_of("sendMessage", chat)) == linked
        assert len(_turns(db, chat)) == 1  # the link only
        assert _status(db, update_id) == "processing"

        standin.deliver_to = [urls[1]]
        _wait(lambda: _status(db, update_id) == "done", 180, "the note taken over and answered")
        time.sleep(2.0)  # anything sent twice would arrive now
        turns = _turns(db, chat)
        assert len(turns) == 2, turns  # the note's turn, once
        replies = standin.calls_of("sendMessage", chat)[linked:]
        assert replies and all(r.at > delivery.at for r in replies)
        with db.connect() as conn:
            recorded = conn.execute(
                text("SELECT count(*) FROM bot_processed_deliveries WHERE delivery_id = :d"),
                {"d": f"telegram:{BOT_ID}:{update_id}"},
            ).scalar()
        assert recorded == 1
        assert [d.update_id for d in standin.deliveries].count(update_id) == 1  # no redelivery
        assert "telegram_update_taken_over" in (tmp_path / "worker-1.log").read_text()
        # the chat goes on with the live worker
        after = standin.text(chat, "how much do I owe?")
        _wait(lambda: _status(db, after["update_id"]) == "done", 60, "the next text")
        assert len(standin.calls_of("sendMessage", chat)) == linked + len(replies) + 1
    db.dispose()


def _leased(db: Any, chat: int) -> bool:
    """Whether a worker holds an unexpired lease on the chat's Telegram conversation."""
    with db.connect() as conn:
        return bool(
            conn.execute(
                text(
                    "SELECT count(*) FROM bot_conversations WHERE channel = 'telegram' "
                    "AND external_user_id = :chat AND lease_until > now()"
                ),
                {"chat": str(chat)},
            ).scalar()
        )


def _status(db: Any, update_id: int) -> str | None:
    with db.connect() as conn:
        found = conn.execute(
            text("SELECT status FROM bot_telegram_updates WHERE update_id = :u"),
            {"u": update_id},
        ).scalar()
    return None if found is None else str(found)
