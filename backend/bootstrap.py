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


def ensure_service_token(url: str, token: str) -> None:
    """Make the configured assistant token (``BILLTALK_SERVICE_TOKEN``) a valid service token."""
    from backend.service_layer import services
    from backend.service_layer.unit_of_work import UnitOfWork
    from billtalk.db import make_engine

    uow = UnitOfWork(make_engine(url))
    if services.authenticate(uow, token) is None:
        services.issue_token(uow, "service", name="BILLTALK_SERVICE_TOKEN", token=token)
