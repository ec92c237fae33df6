"""Creating and checking the billing database (used by ``billtalk serve`` and ``make run``)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import inspect, select

from billtalk.db import make_engine, upgrade

#: The billing package's Alembic folder and version table.
MIGRATIONS = Path(__file__).resolve().parent / "migrations"
VERSION_TABLE = "alembic_version"


def ensure_database(url: str) -> None:
    """Create or upgrade the billing schema at ``url`` to the latest migration."""
    upgrade(MIGRATIONS, url, VERSION_TABLE)


def database_is_empty(url: str) -> bool:
    """Whether the billing database has no households yet (or no schema at all)."""
    from backend.adapters.orm import Household

    engine = make_engine(url)
    try:
        if not inspect(engine).has_table("households"):
            return True
        with engine.connect() as conn:
            return conn.execute(select(Household.household_id).limit(1)).first() is None
    finally:
        engine.dispose()
