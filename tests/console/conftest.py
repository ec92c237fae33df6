"""Fixtures of the console tests: a migrated database with a community, staff and a server.

Every package's migrations run once per session into a template (a SQLite file,
a PostgreSQL template database); each test gets a fresh copy of it.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.console.helpers import PASSWORD, add_community, serve


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from app.bootstrap import migrate_all

    path = tmp_path_factory.mktemp("console-template") / "template.db"
    migrate_all(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def _postgres_template(postgres_url: str) -> Iterator[str]:
    """A migrated template database of the console tests' own.

    Not the session's shared database: PostgreSQL copies a template only while
    nobody else is connected to it, and other tests keep connections there.
    """
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    from app.bootstrap import migrate_all

    admin = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    name = f"console_tpl_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    migrate_all(make_url(postgres_url).set(database=name).render_as_string(hide_password=False))
    with admin.connect() as conn:  # no connection may stay on a template that is copied
        conn.execute(
            text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"),
            {"n": name},
        )
    try:
        yield name
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def fresh_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, migrated database for one test: a SQLite file, or a new PostgreSQL database."""
    if request.param == "sqlite":
        template = request.getfixturevalue("_sqlite_template")
        path = tmp_path / "console.db"
        shutil.copy(template, path)
        yield f"sqlite:///{path}"
        return
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    server = request.getfixturevalue("postgres_url")  # skips (or fails in CI) without PostgreSQL
    template = request.getfixturevalue("_postgres_template")
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    name = f"console_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
    try:
        yield make_url(server).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@dataclass
class ConsoleEnv:
    """A running console: its base URL, database URL and engine."""

    base: str
    url: str
    engine: Any


@pytest.fixture
def console_env(fresh_url: str) -> Iterator[ConsoleEnv]:
    """The console served on loopback over a fresh database (SQLite and PostgreSQL).

    Staff: ``agent1`` (agent, building B1), ``agent2`` (agent, B2), ``super1``
    (supervisor, B1), ``admin1`` (admin, every building).
    """
    from billtalk.db import make_engine
    from console.accounts import add_staff
    from console.web import create_console_app

    engine = make_engine(fresh_url)
    add_community(engine)
    add_staff(engine, "agent1", "agent", PASSWORD, ["B1"])
    add_staff(engine, "agent2", "agent", PASSWORD, ["B2"])
    add_staff(engine, "super1", "supervisor", PASSWORD, ["B1"])
    add_staff(engine, "admin1", "admin", PASSWORD, None)
    app = create_console_app(fresh_url)
    with serve(app) as base:
        yield ConsoleEnv(base, fresh_url, engine)
    app.state.console.engine.dispose()
    engine.dispose()
