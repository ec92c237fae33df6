"""``SingleStatement``: one statement in autocommit on PostgreSQL, a transaction on SQLite."""

from __future__ import annotations

import uuid
from pathlib import Path

from sqlalchemy import text

from billtalk.db import SingleStatement, make_engine


def test_on_postgresql_the_statement_commits_by_itself(postgres_url: str) -> None:
    engine, observer = make_engine(postgres_url), make_engine(postgres_url)
    single = SingleStatement(engine)
    table = f"_single_{uuid.uuid4().hex[:8]}"
    try:
        with engine.begin() as conn:
            conn.execute(text(f"CREATE TABLE {table} (n int)"))
        with single() as conn:
            conn.execute(text(f"INSERT INTO {table} VALUES (1)"))
            # no transaction around it: another session sees the row before the block ends
            with observer.connect() as other:
                assert other.execute(text(f"SELECT count(*) FROM {table}")).scalar() == 1
    finally:
        with engine.begin() as conn:
            conn.execute(text(f"DROP TABLE IF EXISTS {table}"))
        engine.dispose()
        observer.dispose()


def test_on_sqlite_the_statement_runs_in_a_transaction(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 's.db'}")
    single = SingleStatement(engine)
    try:
        with single() as conn:
            conn.execute(text("CREATE TABLE t (n int)"))
        with single() as conn:
            conn.execute(text("INSERT INTO t VALUES (1)"))
            with engine.execution_options(sqlite_read_only=True).connect() as other:
                assert other.execute(text("SELECT count(*) FROM t")).scalar() == 0  # not yet
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM t")).scalar() == 1  # committed
    finally:
        engine.dispose()
