"""The dialogue's table metadata, schema migrations and the session every part shares."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Engine,
    MetaData,
)
from sqlalchemy.orm import DeclarativeBase, Session

from billtalk.db import SingleStatement, upgrade

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"
VERSION_TABLE = "alembic_version_bot"


class Base(DeclarativeBase):
    metadata = MetaData()


def ensure_schema(url: str) -> None:
    """Create or upgrade the dialogue's tables (and the biometrics tables) at ``url``.

    The step-up verifiers keep face and voice templates in the same database
    (``biometrics.store``), so they are migrated together.
    """
    from biometrics.store import ensure_schema as ensure_biometrics_schema

    upgrade(MIGRATIONS, url, VERSION_TABLE)
    ensure_biometrics_schema(url)


def _aware(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str, sort_keys=True)


class StoreBase:
    """The engine and a transaction helper, shared by the store's parts.

    Args:
        engine: A SQLAlchemy engine (see :func:`billtalk.db.make_engine`) whose
            database has the dialogue's schema (:func:`ensure_schema`).
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        #: Connections for one statement atomic on its own (autocommit on PostgreSQL).
        self.single = SingleStatement(engine)
        # (channel, external user) -> conversation id. The mapping never changes
        # once the row exists (rows are not deleted), so a turn needs no query
        # for it after the conversation's first turn in this process.
        self._ids: dict[tuple[str, str], str] = {}

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session in one transaction, committed on success."""
        with Session(self.engine, expire_on_commit=False) as session, session.begin():
            yield session

    @contextmanager
    def reading(self) -> Iterator[Session]:
        """A session for a single read statement, without a transaction of its own.

        On PostgreSQL the connection is in autocommit (no ``BEGIN``/``COMMIT`` round
        trips around the one ``SELECT``); on SQLite the read gets a deferred ``BEGIN``
        and so does not take the write lock. Only for one statement that writes
        nothing: two reads in it would not share a snapshot.
        """
        with Session(self._reader(), expire_on_commit=False) as session, session.begin():
            yield session

    def read_one(self, statement: Any, params: dict[str, Any]) -> Any:
        """The first row of one read-only statement (Core, no ``Session``), or ``None``.

        Runs like :meth:`reading`: autocommit on PostgreSQL, a deferred ``BEGIN`` on SQLite.
        """
        with self._reader().connect() as conn:
            return conn.execute(statement, params).first()

    def _reader(self) -> Engine:
        reader = self.__dict__.get("_reader_engine")
        if reader is None:
            options: dict[str, Any] = (
                {"sqlite_read_only": True}
                if self.engine.dialect.name == "sqlite"
                else {"isolation_level": "AUTOCOMMIT"}
            )
            reader = self.__dict__["_reader_engine"] = self.engine.execution_options(**options)
        return reader
