"""Read-only units of work on PostgreSQL run in autocommit; the others in a transaction."""

from __future__ import annotations

from sqlalchemy import text

from backend.service_layer.unit_of_work import UnitOfWork
from billtalk.db import make_engine

# In a transaction now() is the transaction's start; in autocommit each statement is its own.
SAME_START = text("SELECT now() = statement_timestamp()")


def test_reads_have_no_transaction_around_them_and_writes_do(postgres_url: str) -> None:
    engine = make_engine(postgres_url)
    uow = UnitOfWork(engine)
    try:
        with uow.reading():
            uow.session.execute(text("SELECT pg_sleep(0.01)"))
            assert uow.session.execute(SAME_START).scalar() is True
        with uow:
            uow.session.execute(text("SELECT pg_sleep(0.01)"))
            assert uow.session.execute(SAME_START).scalar() is False
    finally:
        engine.dispose()
