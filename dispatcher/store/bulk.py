"""The one bulk write on the hot path: delivery rows during fan-out.

It skips SQLAlchemy's per-row parameter processing (the fan-out of a big audience writes millions of
rows): values are converted once and handed to the driver as tuples. SQLite takes one
``INSERT OR IGNORE`` executed for many rows; PostgreSQL a ``COPY``, or, when some rows exist already,
an ``INSERT … SELECT FROM unnest(…) ON CONFLICT DO NOTHING``. Either way a row that already exists (a
re-run fan-out) is left alone.

A fan-out writing an update's rows for the first time uses ``insert_fresh_deliveries``: on PostgreSQL a
plain ``COPY`` in the caller's transaction, with no savepoint around it (two round trips fewer per
batch). Should a row exist after all (two fan-outs of one update at once), it raises
``DeliveriesExist``: that transaction is spoilt, and the caller writes the batch again, in a new one,
with ``insert_deliveries``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from dispatcher.store.schema import Timestamp

DELIVERY_COLUMNS = (
    "update_id",
    "channel",
    "address",
    "subscriber_id",
    "contact_point_id",
    "locale",
    "batch",
    "state",
    "attempts",
    "last_error",
    "created_at",
    "updated_at",
)
_PG_TYPES = (
    "integer",
    "varchar",
    "varchar",
    "integer",
    "integer",
    "varchar",
    "integer",
    "varchar",
    "integer",
    "text",
    "timestamp",
    "timestamp",
)


class DeliveriesExist(Exception):
    """``insert_fresh_deliveries`` met a row that exists already; the transaction can only roll back."""


_COPY = f"COPY deliveries ({', '.join(DELIVERY_COLUMNS)}) FROM STDIN"


def timestamp_value(conn: Connection, value: datetime) -> Any:
    """``value`` as the driver wants it for a ``Timestamp`` column (converted once, used many times)."""
    processor = Timestamp().dialect_impl(conn.dialect).bind_processor(conn.dialect)
    return processor(value) if processor else value


def insert_deliveries(conn: Connection, rows: Sequence[tuple[Any, ...]]) -> None:
    """Insert rows given in ``DELIVERY_COLUMNS`` order, skipping any (update, channel, address) that
    already has one."""
    if not rows:
        return
    columns = ", ".join(DELIVERY_COLUMNS)
    if conn.dialect.name == "sqlite":
        marks = ", ".join("?" * len(DELIVERY_COLUMNS))
        conn.exec_driver_sql(f"INSERT OR IGNORE INTO deliveries ({columns}) VALUES ({marks})", list(rows))
        return
    _copy_or_insert(conn, rows, columns)


def insert_fresh_deliveries(conn: Connection, rows: Sequence[tuple[Any, ...]]) -> None:
    """Insert rows given in ``DELIVERY_COLUMNS`` order, expecting none of them to exist yet; raises
    ``DeliveriesExist`` (PostgreSQL) when one does, after which the transaction must be rolled back."""
    if not rows:
        return
    if conn.dialect.name == "sqlite":  # INSERT OR IGNORE costs nothing more: no need to expect anything
        insert_deliveries(conn, rows)
        return
    import psycopg

    driver = conn.connection.driver_connection
    assert isinstance(driver, psycopg.Connection)
    try:
        with driver.cursor() as cursor, cursor.copy(_COPY) as copy:
            copy.set_types(_PG_TYPES)  # one dumper per column, not a lookup per value
            for row in rows:
                copy.write_row(row)
    except psycopg.errors.UniqueViolation as exc:
        raise DeliveriesExist(str(exc).splitlines()[0]) from exc


def _copy_or_insert(conn: Connection, rows: Sequence[tuple[Any, ...]], columns: str) -> None:
    """PostgreSQL: ``COPY`` (fastest) inside a savepoint; if some rows exist already (a re-run
    fan-out), an ``INSERT … ON CONFLICT DO NOTHING`` fed by one array per column instead."""
    import psycopg

    driver = conn.connection.driver_connection
    assert isinstance(driver, psycopg.Connection)
    try:
        with (
            driver.transaction(),
            driver.cursor() as cursor,
            cursor.copy(_COPY) as copy,
        ):
            copy.set_types(_PG_TYPES)
            for row in rows:
                copy.write_row(row)
        return
    except psycopg.errors.UniqueViolation:
        pass
    arrays = ", ".join(f"%s::{kind}[]" for kind in _PG_TYPES)
    conn.exec_driver_sql(
        f"INSERT INTO deliveries ({columns}) SELECT * FROM unnest({arrays}) "
        "ON CONFLICT (update_id, channel, address) DO NOTHING",
        tuple(list(column) for column in zip(*rows, strict=True)),
    )
