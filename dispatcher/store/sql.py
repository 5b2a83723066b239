"""Small SQL helpers that keep hot queries cheap on both databases."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import BigInteger, ColumnElement, Connection, String, any_, bindparam
from sqlalchemy.dialects.postgresql import ARRAY


def one_of(conn: Connection, column: Any, values: Iterable[Any]) -> ColumnElement[bool]:
    """``column IN (values)``. On PostgreSQL it is ``column = ANY(:array)``: one parameter, so the
    statement text is the same for every batch and is parsed once, however many values there are."""
    items = list(values)
    if conn.dialect.name != "postgresql":
        condition: ColumnElement[bool] = column.in_(items)
        return condition
    element_type = String() if items and isinstance(items[0], str) else BigInteger()
    array: Any = bindparam(None, items, type_=ARRAY(element_type))
    condition = column == any_(array)
    return condition
