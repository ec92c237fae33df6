"""Database engines and Alembic migrations shared by the packages that own tables.

Three packages own tables: ``backend`` (billing), ``bot`` (conversations) and
``biometrics`` (encrypted templates). Each has its own declarative metadata, its
own ``migrations/`` folder and its own Alembic version table, so they can live in
one database (the embedded default) or in separate ones.
"""

from __future__ import annotations

import time
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, MetaData, create_engine, event, exc
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

#: A pooled connection idle longer than this is pinged before it is handed out.
PING_IDLE_S = 10.0


def is_sqlite(url: str) -> bool:
    """Whether ``url`` points at SQLite."""
    return make_url(url).get_backend_name() == "sqlite"


def make_engine(url: str, *, ping_idle_s: float | None = PING_IDLE_S, **kwargs: Any) -> Engine:
    """Create an engine with the settings billtalk relies on.

    On a server database, a pooled connection that sat idle longer than
    ``ping_idle_s`` is pinged (``SELECT 1``) when it is checked out, and replaced
    if the ping fails (the server restarted, a proxy dropped it). A connection in
    steady use is not pinged: SQLAlchemy's ``pool_pre_ping`` would add one round
    trip to every checkout, i.e. to every transaction. ``ping_idle_s=None`` (or an
    explicit ``pool_pre_ping=True``) pings on every checkout.

    On SQLite: WAL journal, enforced foreign keys, a busy timeout so concurrent
    writers wait instead of failing, and ``BEGIN IMMEDIATE`` for every transaction
    so that a read-then-write is serialised (SQLite's equivalent of a row lock).
    Work that only reads opts out with the execution option
    ``sqlite_read_only=True`` (e.g. ``engine.execution_options(sqlite_read_only=True)``):
    it gets a plain deferred ``BEGIN`` and never waits for, or blocks, a writer.
    Such a transaction must not write (upgrading it to a writer can fail with
    "database is locked" instead of waiting).
    """
    if is_sqlite(url):
        kwargs.setdefault("connect_args", {"check_same_thread": False, "timeout": 30})
        if make_url(url).database in (None, "", ":memory:"):
            kwargs.setdefault("poolclass", NullPool)
        engine = create_engine(url, **kwargs)
        _tune_sqlite(engine)
        return engine
    if ping_idle_s is None:
        kwargs.setdefault("pool_pre_ping", True)
    engine = create_engine(url, **kwargs)
    if ping_idle_s is not None and not kwargs.get("pool_pre_ping"):
        _ping_when_idle(engine, ping_idle_s)
    return engine


class SingleStatement:
    """Connections for work that is exactly one statement, atomic on its own.

    On a server database the connection is in autocommit: the statement is one round
    trip instead of three (``BEGIN``, the statement, ``COMMIT``); a single ``INSERT``,
    ``UPDATE ... RETURNING`` or ``SELECT`` is atomic without a transaction around it.
    On SQLite it gets the engine's ordinary transaction (``BEGIN IMMEDIATE``: the write
    lock, see :func:`make_engine`); there is no round trip to save.

    Only for one statement: two statements in one such connection would not share a
    snapshot nor commit together.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._autocommit = (
            None
            if engine.dialect.name == "sqlite"
            else engine.execution_options(isolation_level="AUTOCOMMIT")
        )

    def __call__(self) -> AbstractContextManager[Connection]:
        """A connection for one statement (closed, or committed on SQLite, on exit)."""
        if self._autocommit is not None:
            return self._autocommit.connect()
        return self.engine.begin()


def _ping_when_idle(engine: Engine, idle_s: float) -> None:
    """Ping a connection on checkout only if it was returned to the pool ``idle_s`` ago."""

    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_conn: Any, record: Any) -> None:
        if record is not None:
            record.info["billtalk_checked_in"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        returned = record.info.get("billtalk_checked_in")
        if returned is None or time.monotonic() - returned < idle_s:
            return  # fresh from connect(), or in use moments ago
        try:
            cursor = dbapi_conn.cursor()
            try:
                cursor.execute("SELECT 1")
            finally:
                cursor.close()
            dbapi_conn.rollback()  # the ping's implicit transaction
        except Exception as error:  # the pool discards it and connects again
            raise exc.DisconnectionError(f"stale pooled connection: {error}") from error


def _tune_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # let SQLAlchemy's "begin" event issue BEGIN
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        # WAL + NORMAL: commits survive a killed process; only an OS crash can lose
        # the last transactions (never corrupts). FULL fsyncs every commit.
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        if conn.get_execution_options().get("sqlite_read_only"):
            conn.exec_driver_sql("BEGIN")
        else:
            conn.exec_driver_sql("BEGIN IMMEDIATE")


def alembic_config(script_location: Path, url: str, version_table: str) -> Any:
    """Build an Alembic ``Config`` for one package's migrations folder."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(script_location))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    cfg.attributes["version_table"] = version_table
    return cfg


def upgrade(script_location: Path, url: str, version_table: str, revision: str = "head") -> None:
    """Run one package's migrations up to ``revision`` (``head`` by default)."""
    from alembic import command

    command.upgrade(alembic_config(script_location, url, version_table), revision)


def run_env(target_metadata: MetaData) -> None:
    """The body of every package's ``migrations/env.py``.

    Uses the connection passed in ``config.attributes['connection']`` when there is
    one (tests), otherwise makes an engine from the configured URL.
    """
    from alembic import context

    config = context.config
    version_table = config.attributes.get("version_table", "alembic_version")
    url = config.get_main_option("sqlalchemy.url") or ""

    def _configure(connection: Any) -> None:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            version_table=version_table,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()

    if context.is_offline_mode():
        context.configure(
            url=url,
            target_metadata=target_metadata,
            version_table=version_table,
            literal_binds=True,
        )
        with context.begin_transaction():
            context.run_migrations()
        return
    existing = config.attributes.get("connection")
    if existing is not None:
        _configure(existing)
        return
    engine = make_engine(url, poolclass=NullPool)
    with engine.connect() as connection:
        _configure(connection)
    engine.dispose()
