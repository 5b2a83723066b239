"""The one bulk write on the hot path: delivery rows during fan-out.

It skips SQLAlchemy's per-row parameter processing (the fan-out of a big audience writes millions of
rows): values are converted once and handed to the driver as tuples. SQLite takes one
``INSERT OR IGNORE`` executed for many rows; PostgreSQL one ``INSERT … SELECT FROM unnest(…) ON
CONFLICT DO NOTHING`` with one array per column. Either way a row that already exists (a re-run
fan-out) is left alone.
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
    # One statement per batch whatever its size: each column travels as one array parameter.
    columns_of = list(zip(*rows, strict=True))
    arrays = ", ".join(f"%s::{kind}[]" for kind in _PG_TYPES)
    conn.exec_driver_sql(
        f"INSERT INTO deliveries ({columns}) SELECT * FROM unnest({arrays}) "
        "ON CONFLICT (update_id, channel, address) DO NOTHING",
        tuple(list(column) for column in columns_of),
    )
