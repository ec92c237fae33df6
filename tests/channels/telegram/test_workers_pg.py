"""Two webhook worker processes on PostgreSQL sharing one webhook's load.

The stand-in spreads updates over both workers (as a load balancer would) and
delivers a chat's updates concurrently. Every update must act exactly once
(a redelivery reaching the other worker included), each chat's turns must be
logged in the order its updates were sent, and each update gets one reply.
"""

from __future__ import annotations

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
        with db.connect() as conn:
            for chat in chats:
                logged = [
                    r[0]
                    for r in conn.execute(
                        text(
                            "SELECT t.text_raw FROM bot_turns t JOIN bot_conversations c "
                            "ON c.id = t.conversation_id WHERE c.channel = 'telegram' "
                            "AND c.external_user_id = :chat ORDER BY t.turn"
                        ),
                        {"chat": str(chat)},
                    )
                ]
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
