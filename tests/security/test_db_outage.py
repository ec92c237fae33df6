"""The billing database goes away mid-conversation: "try again shortly", nothing half-written.

The billing API runs on PostgreSQL; between two turns of a payment the database
refuses connections and every open one is terminated. The resident is told the
billing system is unreachable and to try again; nothing is recorded. When the
database is back, the same Pay button pays exactly once.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url

from backend.adapters import orm
from tests.conftest import POSTGRES_ADMIN_URL
from tests.conversations.conftest import nlu_model  # noqa: F401  (fixture)


@pytest.fixture
def billing_pg(postgres_url: str) -> Iterator[tuple[str, str]]:
    """A seeded billing database of the test's own: (url, database name)."""
    from backend.demo import seed

    name = f"billtalk_outage_{uuid.uuid4().hex[:10]}"
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(False)
    try:
        seed(url, households=4, seed=7, months=3, today=date(2026, 11, 20))
        yield url, name
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'))
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _outage(name: str, down: bool) -> None:
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {str(not down).lower()}'))
        if down:
            conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = :n AND pid <> pg_backend_pid()"
                ),
                {"n": name},
            )
    admin.dispose()


def test_database_outage_mid_payment(
    billing_pg: tuple[str, str],
    nlu_model: Any,  # noqa: F811
    tmp_path: Path,
) -> None:
    from backend.client import BillingClient
    from backend.settings import BillingSettings
    from billtalk.db import make_engine
    from bot.engine import DialogueEngine
    from bot.messages import IncomingMessage
    from bot.store import ConversationStore, ensure_schema

    url, name = billing_pg
    bot_url = f"sqlite:///{tmp_path / 'bot.db'}"
    ensure_schema(bot_url)
    billing = BillingClient.embedded(
        url, billing_settings=BillingSettings(risk_model_enabled=False)
    )
    engine = DialogueEngine(ConversationStore(make_engine(bot_url)), billing, nlu_model)
    db = create_engine(url, pool_pre_ping=True)
    with db.connect() as conn:
        resident, household = conn.execute(
            select(orm.Resident.resident_id, orm.Resident.household_id)
            .join(orm.Bill, orm.Bill.household_id == orm.Resident.household_id)
            .where(orm.Bill.utility == "water", orm.Bill.status != "paid")
            .limit(1)
        ).one()

    def say(text_: str | None = None, payload: str | None = None) -> str:
        msg = IncomingMessage(
            channel="terminal",
            external_user_id=resident,
            resident_id=resident,
            text=text_,
            button_payload=payload,
        )
        replies = asyncio.run(engine.handle(msg))
        say.last = replies  # type: ignore[attr-defined]
        return "\n".join(r.text for r in replies)

    def payments() -> int:
        with db.connect() as conn:
            return int(
                conn.scalar(
                    select(func.count())
                    .select_from(orm.Payment)
                    .where(orm.Payment.household_id == household, orm.Payment.source == "resident")
                )
                or 0
            )

    assert "Please confirm" in say("pay 10 for water")
    pay = say.last[-1].buttons[0].payload  # type: ignore[attr-defined]
    _outage(name, down=True)
    try:
        down = say(payload=pay)
        assert "couldn't reach the billing system" in down and "again" in down
        assert "try again" in say("how much is my bill?")
    finally:
        _outage(name, down=False)
    assert payments() == 0  # nothing half-written
    paid = say(payload=pay)
    assert "Paid" in paid, paid
    say(payload=pay)  # a second press of the same button pays nothing more
    assert payments() == 1
    tb = asyncio.run(billing.trial_balance())
    assert tb.balanced
    db.dispose()
    asyncio.run(billing.aclose())
