"""Fixtures for the Telegram tests: the Bot API stand-in and the real PTB application.

One seeded database, one engine (real NLU, real billing backend) and one running
bot per test module: the NLU model load is the slow part. Tests keep apart by
using their own chat ids (:func:`new_chat`).
"""

from __future__ import annotations

import itertools
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from tests.channels.telegram.botapi_standin import TOKEN, BotApiStandIn
from tests.conversations.conftest import Clock, nlu_model, seeded  # noqa: F401  (fixtures)

_chats = itertools.count(5_000_001)


def new_chat() -> int:
    """A chat id no other test uses."""
    return next(_chats)


def telegram_settings(standin: BotApiStandIn, **overrides: Any) -> Any:
    """Telegram settings pointing at the stand-in."""
    from bot.channels.telegram.settings import TelegramSettings

    values: dict[str, Any] = {
        "token": TOKEN,
        "api_url": standin.api_url,
        "file_url": standin.file_url,
        "poll_timeout_s": 1,
        "request_timeout_s": 3.0,
        "max_sends_per_s": 1000.0,
        "outbox_poll_s": 0.1,
        "notice_poll_s": 0,  # tests/channels/telegram/test_reminders.py turns it on
        "webhook_secret": "stand-in-webhook-secret",
    }
    values.update(overrides)
    return TelegramSettings(**values)


@pytest.fixture(scope="module")
def standin() -> Iterator[BotApiStandIn]:
    """The Bot API stand-in, serving on loopback."""
    with BotApiStandIn() as server:
        yield server


@pytest.fixture(scope="module")
def tg_db(seeded: Any, tmp_path_factory: pytest.TempPathFactory) -> str:  # noqa: F811
    """A copy of the seeded community for this module."""
    target = tmp_path_factory.mktemp("telegram") / "billtalk.db"
    shutil.copyfile(seeded.path, target)
    return f"sqlite:///{target}"


@pytest.fixture(scope="module")
def clock() -> Clock:
    """The engine's clock (settable: confirmations expire)."""
    return Clock()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def engine(tg_db: str, nlu_model: Any, clock: Clock) -> AsyncIterator[Any]:  # noqa: F811
    """The dialogue engine on the module's database (real backend and NLU)."""
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
        settings=DialogueSettings(),
        clock=clock,
    )
    yield engine
    await billing.aclose()
    engine.store.engine.dispose()


@pytest.fixture(scope="module")
def telegram_overrides() -> dict[str, Any]:
    """Telegram settings a test module changes for its runtime (override the fixture)."""
    return {}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def runtime(
    engine: Any, standin: BotApiStandIn, telegram_overrides: dict[str, Any]
) -> AsyncIterator[Any]:
    """The real PTB application polling the stand-in, with the outbox sender."""
    from bot.channels.telegram.app import TelegramRuntime

    rt = TelegramRuntime(engine, telegram_settings(standin, **telegram_overrides), polling=True)
    await rt.start()
    yield rt
    await rt.stop()


def link_code(seeded: Any, role: str = "payer") -> str:  # noqa: F811
    """The link code of a seeded household."""
    return str(seeded.roles[role]["link_code"])


def shared_faces() -> Path:
    """``../shared/data/faces``."""
    from tests.conftest import SHARED_DATA

    return SHARED_DATA / "faces"
