"""Fixtures for the conversation tests: a seeded billing database and the real NLU.

The demo community is seeded once per session into a template SQLite file and
copied for each test, so every story starts from the same data. The NLU model
is loaded once per session. Stories refer to residents by role:

* ``payer``: a household with several utilities due, and a saved method;
* ``other``: another household with bills due (for isolation stories);
* ``clear``: a household with nothing due.
"""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

SEED_TODAY = date(2026, 11, 20)
START = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


@dataclass
class Clock:
    """A settable clock for the engine (idle timeouts, confirmation expiry)."""

    now: datetime = START

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@dataclass
class SeededCommunity:
    """The template database and who is who in it."""

    path: Path
    seed: dict[str, Any]
    roles: dict[str, dict[str, Any]] = field(default_factory=dict)


def _checkpoint(path: Path) -> None:
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()


@pytest.fixture(scope="session")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> SeededCommunity:
    """Seed the demo community once into a template database."""
    from backend.client import BillingClient
    from backend.demo import seed
    from bot.store import ensure_schema

    folder = tmp_path_factory.mktemp("community")
    path = folder / "template.db"
    url = f"sqlite:///{path}"
    result = seed(url, households=6, seed=7, months=3, today=SEED_TODAY)
    ensure_schema(url)

    async def balances() -> dict[str, Any]:
        client = BillingClient.embedded(url)
        try:
            return {
                h["household_id"]: await client.get_balance(h["household_id"])
                for h in result["households"]
            }
        finally:
            await client.aclose()

    dues = asyncio.run(balances())
    community = SeededCommunity(path, result)
    with_dues = []
    for h in result["households"]:
        b = dues[h["household_id"]]
        due_utilities = [u for u, a in b.by_utility.items() if a > 0]
        info = {
            **h,
            "resident_id": h["resident_ids"][0],
            "total": b.total_due,
            "by_utility": b.by_utility,
        }
        if b.total_due == 0 and "clear" not in community.roles:
            community.roles["clear"] = info
        elif len(due_utilities) >= 3:
            with_dues.append(info)
    assert len(with_dues) >= 2, "the demo seed must give two households with several bills due"
    community.roles["payer"], community.roles["other"] = with_dues[0], with_dues[1]
    _checkpoint(path)
    return community


@pytest.fixture(scope="session")
def nlu_model() -> Any:
    """The real NLU model (the shipped default, trained if missing), loaded once."""
    import nlu

    if hasattr(nlu, "ensure_default_model"):
        nlu.ensure_default_model()
    return nlu.load_model()


@pytest.fixture
def community_db(seeded: SeededCommunity, tmp_path: Path) -> str:
    """A fresh copy of the seeded database for one test."""
    target = tmp_path / "billtalk.db"
    shutil.copyfile(seeded.path, target)
    return f"sqlite:///{target}"


@pytest.fixture
def clock() -> Clock:
    """The engine's clock, starting on the seed's 'today'."""
    return Clock()


@pytest.fixture
def make_engine(community_db: str, nlu_model: Any, clock: Clock) -> Iterator[Callable[..., Any]]:
    """Build a dialogue engine on the test's database (real backend, real NLU)."""
    from backend.client import BillingClient
    from billtalk.db import make_engine as make_db
    from bot.engine import DialogueEngine
    from bot.settings import DialogueSettings
    from bot.store import ConversationStore

    created: list[Any] = []

    def build(**settings: Any) -> DialogueEngine:
        from backend.settings import BillingSettings

        # The step-up policy (threshold, daily limit) is the backend's: stories set it
        # there. The stories don't depend on whether a risk model was trained in var/.
        policy = {k: settings.pop(k) for k in ("step_up_threshold", "daily_limit") if k in settings}
        store = ConversationStore(make_db(community_db))
        billing = BillingClient.embedded(
            community_db, billing_settings=BillingSettings(**policy, risk_model_enabled=False)
        )
        engine = DialogueEngine(
            store,
            billing,
            nlu_model,
            settings=DialogueSettings(**settings),
            clock=clock,
        )
        created.append(engine)
        return engine

    yield build
    for engine in created:
        engine.store.engine.dispose()


def money(value: str | Decimal) -> Decimal:
    """A Decimal amount from a story."""
    return Decimal(str(value))
