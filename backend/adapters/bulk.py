"""Bulk writes: many rows of one table in one round trip, inside the caller's transaction.

The ORM (and even Core's multi-row ``INSERT``) spends most of a large write in
Python building and binding statements. :func:`write_rows` streams the rows with
``COPY … FROM STDIN`` on PostgreSQL and one raw ``executemany`` on SQLite. Every
value still goes through its column's own bind processor first, so exact-decimal
columns refuse floats and extra decimal places here exactly as they do through
the ORM (:class:`backend.adapters.orm.ScaledDecimal`).

Used by the monthly bill run (:mod:`backend.service_layer.bill_run`) and the
benchmark seeder (``bench/backend_seed.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Dialect, Table, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session


def write_rows(
    session: Session, table: Table, columns: Sequence[str], rows: Sequence[tuple[Any, ...]]
) -> None:
    """Insert ``rows`` (tuples in ``columns`` order) into ``table`` in the session's transaction.

    Columns left out get their scalar Python-side defaults, as the ORM would give them.

    Raises:
        sqlalchemy.exc.IntegrityError: A row broke a constraint (nothing of this
            call is written; the caller should roll the transaction back).
    """
    if rows:
        dbapi = session.connection().connection.driver_connection
        dialect = session.get_bind().dialect
        cursor = dbapi.cursor()  # type: ignore[union-attr]
        try:
            write_with_cursor(cursor, dialect, table, columns, rows)
        except dialect.loaded_dbapi.IntegrityError as exc:
            # The same exception the ORM would raise, so callers handle one type.
            raise IntegrityError(f"bulk write to {table.name}", None, exc) from exc
        finally:
            cursor.close()


def write_with_cursor(
    cursor: Any,
    dialect: Dialect,
    table: Table,
    columns: Sequence[str],
    rows: Sequence[tuple[Any, ...]],
) -> None:
    """:func:`write_rows` on a raw DB-API cursor (the caller owns the transaction)."""
    if not rows:
        return
    extra = scalar_defaults(table, columns)
    cols = [*columns, *extra]
    tail = tuple(extra.values())
    data = list(zip(*(row + tail for row in rows), strict=True))
    for i, name in enumerate(cols):
        process = table.c[name].type._cached_bind_processor(dialect)
        if process is not None:
            data[i] = tuple(map(_memo(process), data[i]))
    converted = list(zip(*data, strict=True))
    names = ", ".join(f'"{c}"' for c in cols)
    if dialect.name == "postgresql":
        with cursor.copy(f'COPY "{table.name}" ({names}) FROM STDIN') as copy:
            for row in converted:
                copy.write_row(row)
        return
    marks = ", ".join("?" for _ in cols)
    cursor.executemany(f'INSERT INTO "{table.name}" ({names}) VALUES ({marks})', converted)


def reserve_ids(session: Session, table: Table, n: int) -> list[int]:
    """``n`` new values of ``table``'s integer primary key, for rows written by :func:`write_rows`.

    PostgreSQL: taken from the column's sequence, so concurrent writers never
    collide. SQLite: the next ``n`` after the current maximum, which is safe
    because every billtalk write transaction holds SQLite's single write lock
    from its first statement (``BEGIN IMMEDIATE``, see :func:`billtalk.db.make_engine`).
    """
    if n <= 0:
        return []
    (key,) = table.primary_key.columns
    if session.get_bind().dialect.name == "postgresql":
        q = text(
            f"SELECT nextval(pg_get_serial_sequence('{table.name}', '{key.name}')) "
            "FROM generate_series(1, :n)"
        )
        return [int(i) for i in session.scalars(q, {"n": n})]
    top = session.scalar(text(f'SELECT COALESCE(MAX("{key.name}"), 0) FROM "{table.name}"'))
    return list(range(int(top or 0) + 1, int(top or 0) + 1 + n))


def scalar_defaults(table: Table, given: Sequence[str]) -> dict[str, Any]:
    """Scalar Python-side defaults of the columns not in ``given`` (and not generated keys)."""
    out: dict[str, Any] = {}
    for col in table.columns:
        if col.name in given or col.autoincrement is True or col.primary_key:
            continue
        default = col.default
        if default is not None and getattr(default, "is_scalar", False):
            out[col.name] = default.arg  # type: ignore[attr-defined]
    return out


def _memo(process: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """Cache a bind processor's results: bulk values repeat a lot (dates, prices, ids)."""
    cache: dict[Any, Any] = {}

    def memoised(value: Any) -> Any:
        # keyed by type too: 1.0 == Decimal(1), and a float must never reuse a Decimal's entry
        key = (value.__class__, value)
        try:
            return cache[key]
        except KeyError:
            out = cache[key] = process(value)
            return out
        except TypeError:  # unhashable
            return process(value)

    return memoised
