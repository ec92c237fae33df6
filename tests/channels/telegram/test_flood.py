"""Flood control through the real PTB bot: one user floods, everyone else is still answered.

The dialogue engine counts each channel user's messages (``billtalk.ratelimit``:
in Redis, or in the engine's process). Over the limit, the flooder gets exactly
one polite "slow down" per window and nothing else; every flooded update is still
recorded as handled in the update ledger (so Telegram does not redeliver it).
Both limiter backends run the same test.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from billtalk.ratelimit import MemoryLimiter, RedisLimiter
from tests.channels.telegram.conftest import new_chat
from tests.channels.telegram.helpers import TgChat

pytestmark = pytest.mark.asyncio(loop_scope="module")

REDIS_URL = "redis://127.0.0.1:6379/0"
LIMIT = 5
WINDOW_S = 60  # the in-process limiter's window (its clock is the test's)
#: Redis counts in real time: a short window keeps the wait for the next one short. A flood
#: is handled in about a second, so a window with 6 s left holds it with room to spare.
REDIS_WINDOW_S = 10
REDIS_ROOM_S = 6
SLOW_DOWN = "faster than I can read"


class FakeClock:
    """Seconds for the in-process limiter (so the next window comes when the test says)."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module", params=["memory", "redis"])
def backend(request: pytest.FixtureRequest) -> tuple[str, Any, FakeClock | None]:
    """The limiter under test: in-process (with a settable clock) or Redis (own prefix)."""
    if request.param == "memory":
        clock = FakeClock()
        return "memory", MemoryLimiter(clock=clock), clock
    limiter = RedisLimiter(REDIS_URL, prefix=f"billtalk:test-flood:{uuid.uuid4().hex}:")
    limiter.redis.ping()  # Redis is part of the test environment: fail loudly if absent
    return "redis", limiter, None


def _window_s(backend: tuple[str, Any, Any]) -> int:
    return WINDOW_S if backend[0] == "memory" else REDIS_WINDOW_S


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def engine(
    tg_db: str, nlu_model: Any, clock: Any, backend: tuple[str, Any, Any]
) -> AsyncIterator[Any]:
    """The engine with a tight message limit and the backend's limiter."""
    from backend.client import BillingClient
    from billtalk.db import make_engine as make_db
    from bot.engine import DialogueEngine
    from bot.settings import DialogueSettings
    from bot.store import ConversationStore

    billing = BillingClient.embedded(tg_db)
    engine = DialogueEngine(
        ConversationStore(make_db(tg_db)),
        billing,
        nlu_model,
        settings=DialogueSettings(messages_per_window=LIMIT, message_window_s=_window_s(backend)),
        clock=clock,
        limiter=backend[1],
    )
    yield engine
    await billing.aclose()
    engine.store.engine.dispose()


async def _away_from_window_edge() -> None:
    """Wait until the real clock's current window has room for a whole flood (Redis)."""
    while time.time() % REDIS_WINDOW_S > REDIS_WINDOW_S - REDIS_ROOM_S:
        await asyncio.sleep(0.2)


async def _flood(runtime: Any, standin: Any, chat_id: int, n: int) -> list[int]:
    """Inject ``n`` texts from ``chat_id`` at once; wait until the ledger has all as done."""
    ledger = runtime.adapter.ledger
    ids = [int(standin.text(chat_id, f"spam {i}")["update_id"]) for i in range(n)]
    await standin.until(
        lambda: all(ledger.status(u) == "done" for u in ids),
        60,
        what="every flooded update recorded as handled",
    )
    return ids


async def test_a_flooding_user_gets_one_polite_reply_and_others_are_still_answered(
    runtime: Any, standin: Any, seeded: Any, backend: tuple[str, Any, FakeClock | None]
) -> None:
    name, _limiter, fake = backend
    if fake is None:
        await _away_from_window_edge()
    flooder = new_chat()
    other = TgChat(runtime, standin, new_chat())
    resident = seeded.roles["payer"]["resident_id"]
    code = (await runtime.engine.billing.create_link_code(resident)).code
    assert "linked" in await other.send(f"/start {code}")
    flooded_before = runtime.engine.flooded

    flood = asyncio.create_task(_flood(runtime, standin, flooder, LIMIT + 40))
    answer = await other.send("how much do I owe?")  # while the flood is being handled
    ids = await flood
    assert any(ch.isdigit() for ch in answer), f"{name}: the other resident's balance: {answer!r}"

    texts = standin.texts(flooder)
    polite = [t for t in texts if SLOW_DOWN in t]
    assert len(polite) == 1, f"{name}: {texts}"
    # the first LIMIT messages were real turns (the unlinked chat is asked for its link code)
    assert len(texts) == LIMIT + 1 and texts[-1] == polite[0]
    assert all("link" in t.lower() for t in texts[:LIMIT])
    assert runtime.engine.flooded - flooded_before == 40
    assert all(runtime.adapter.ledger.status(u) == "done" for u in ids)
    # no reply storm: nothing more arrives for the dropped updates
    await asyncio.sleep(0.5)
    assert len(standin.texts(flooder)) == LIMIT + 1

    # the next window: the flooder is heard again, and again told once at most
    if fake is not None:
        fake.now += WINDOW_S
    else:
        await asyncio.sleep(REDIS_WINDOW_S - time.time() % REDIS_WINDOW_S + 0.2)
    await _flood(runtime, standin, flooder, LIMIT + 10)
    texts = standin.texts(flooder)
    assert len(texts) == 2 * (LIMIT + 1), f"{name}: {texts}"
    assert len([t for t in texts if SLOW_DOWN in t]) == 2


STICKER = {
    "file_id": "s1",
    "file_unique_id": "s1",
    "width": 512,
    "height": 512,
    "is_animated": False,
    "is_video": False,
    "type": "regular",
}


async def test_messages_the_channel_answers_itself_count_too(
    runtime: Any, standin: Any, backend: tuple[str, Any, FakeClock | None]
) -> None:
    """Stickers never reach the engine; a flood of them still gets one "slow down", no storm."""
    name, _limiter, fake = backend
    if fake is None:
        await _away_from_window_edge()
    chat = new_chat()
    ledger = runtime.adapter.ledger
    ids = [standin.inject(standin.message(chat, sticker=STICKER)) for _ in range(LIMIT + 15)]
    await standin.until(lambda: all(ledger.status(u) == "done" for u in ids), 60, what="stickers")
    texts = standin.texts(chat)
    assert len(texts) == LIMIT + 1, f"{name}: {texts}"
    assert all("can't read that kind" in t for t in texts[:LIMIT])
    assert SLOW_DOWN in texts[-1]
