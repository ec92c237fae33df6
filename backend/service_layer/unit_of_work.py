"""The unit of work: one database transaction around one use case."""

from __future__ import annotations

from types import TracebackType
from typing import Any, Self

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from backend.adapters.repository import Repository
from billtalk.db import make_engine

_FACTORIES_ATTR = "_billtalk_uow_factories"


#: How a read-only unit of work runs, by "is it SQLite": SQLite gets a deferred ``BEGIN``
#: (no write lock); PostgreSQL runs the reads in autocommit, without the ``BEGIN`` and
#: ``ROLLBACK`` round trips. At PostgreSQL's default READ COMMITTED (billtalk sets no other) every
#: statement reads its own snapshot inside a transaction too, so the reads see the same.
_READ_ONLY: dict[bool, dict[str, Any]] = {
    True: {"sqlite_read_only": True},
    False: {"sqlite_read_only": True, "isolation_level": "AUTOCOMMIT"},
}


def _factories(engine: Engine) -> tuple[sessionmaker[Session], sessionmaker[Session]]:
    """The engine's session factory and read-only session factory, built once per engine.

    A ``sessionmaker`` is a new ``Session`` subclass, and ``execution_options`` a new
    engine object with its own event dispatch: building them for every unit of work
    (one per API request) cost more CPU than the ORM work of the request's queries.
    They are kept on the engine itself, so they go when it does.
    """
    made: tuple[sessionmaker[Session], sessionmaker[Session]] | None = getattr(
        engine, _FACTORIES_ATTR, None
    )
    if made is None:
        made = (
            sessionmaker(bind=engine, expire_on_commit=False),
            sessionmaker(
                bind=engine.execution_options(**_READ_ONLY[engine.dialect.name == "sqlite"]),
                expire_on_commit=False,
            ),
        )
        setattr(engine, _FACTORIES_ATTR, made)
    return made


class UnitOfWork:
    """A transaction and its repository; rolls back unless :meth:`commit` was called.

    Example::

        with uow:
            household = uow.repo.lock_household("hh-A0101")
            ...
            uow.commit()
    """

    session: Session
    repo: Repository

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._factory, self._read_factory = _factories(engine)
        self._read_only_next = False

    @classmethod
    def from_url(cls, url: str) -> UnitOfWork:
        """A unit of work over a new engine for ``url``."""
        return cls(make_engine(url))

    @property
    def dialect(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self.engine.dialect.name

    def reading(self) -> Self:
        """Mark the next ``with`` block as read-only: ``with uow.reading(): ...``.

        On SQLite its transaction starts with a deferred ``BEGIN`` instead of
        ``BEGIN IMMEDIATE`` (see :func:`billtalk.db.make_engine`), so readers never
        queue behind writers. The block must not write or lock.
        """
        self._read_only_next = True
        return self

    def __enter__(self) -> Self:
        factory = self._factory
        if self._read_only_next:
            self._read_only_next = False
            factory = self._read_factory
        self.session = factory()
        self.repo = Repository(self.session)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # close() rolls back anything uncommitted without expiring loaded objects,
        # so results read inside the block stay usable after it.
        self.session.close()

    def commit(self) -> None:
        """Commit the transaction."""
        self.session.commit()

    def rollback(self) -> None:
        """Roll the transaction back."""
        self.session.rollback()
