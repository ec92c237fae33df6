"""PostgreSQL pool: idle connections are pinged (and replaced when dead), busy ones are not."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from billtalk.db import make_engine


def _backend_pid(engine) -> int:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())


def _kill(url: str, pid: int) -> None:
    admin = make_engine(url)
    with admin.begin() as conn:
        conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    admin.dispose()


def test_a_connection_killed_while_idle_is_replaced_on_checkout(postgres_url: str) -> None:
    engine = make_engine(postgres_url, ping_idle_s=0.05, pool_size=1, max_overflow=0)
    try:
        first = _backend_pid(engine)
        _kill(postgres_url, first)  # the server drops it (a restart, a proxy timeout)
        time.sleep(0.1)  # idle longer than ping_idle_s: the checkout pings, sees it dead
        second = _backend_pid(engine)  # no error reaches the caller
        assert second != first
    finally:
        engine.dispose()


def test_a_connection_in_steady_use_is_not_pinged(postgres_url: str) -> None:
    """No ping within ``ping_idle_s``: a connection dropped meanwhile fails its next query once
    (the trade-off for one round trip less per transaction), and the pool then reconnects."""
    engine = make_engine(postgres_url, ping_idle_s=60.0, pool_size=1, max_overflow=0)
    try:
        first = _backend_pid(engine)
        _kill(postgres_url, first)
        with pytest.raises(OperationalError):
            _backend_pid(engine)  # not pinged: the dead connection was handed out
        assert _backend_pid(engine) != first  # invalidated, a fresh one now
    finally:
        engine.dispose()


def test_idle_pings_run_select_1(postgres_url: str) -> None:
    engine = make_engine(postgres_url, ping_idle_s=0.01, pool_size=1, max_overflow=0)
    try:
        pid = _backend_pid(engine)
        time.sleep(0.05)
        with engine.connect() as conn:  # pinged, alive: the same connection is kept
            assert conn.execute(text("SELECT pg_backend_pid()")).scalar_one() == pid
    finally:
        engine.dispose()
