"""Cursor pagination for list endpoints: ``limit`` (1-200, default 50) and an opaque ``cursor``.

Lists are ordered by id (incidents and deliveries newest first, subscribers oldest first). A page's
``next_cursor`` names the last id it holds; passing it back returns the items after that one, so a page
never repeats or skips a row when new rows are added meanwhile. ``next_cursor`` is null on the last page.

The cursor is the id itself, in digits: the description's pattern then says exactly which cursors the
server takes (an opaque encoding it could not describe made every other string a "valid" cursor that was
refused). Clients should still pass ``next_cursor`` back as given, not compute one.
"""

from __future__ import annotations

from typing import Annotated, Generic, TypeVar

from fastapi import Query
from pydantic import BaseModel, Field

T = TypeVar("T")

MAX_LIMIT = 200
DEFAULT_LIMIT = 50
MAX_CURSOR_DIGITS = 18

Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Items per page (1-200).")]
Cursor = Annotated[
    str | None,
    Query(
        max_length=MAX_CURSOR_DIGITS,
        pattern=rf"^[0-9]{{1,{MAX_CURSOR_DIGITS}}}$",
        description="`next_cursor` of the previous page; omit for the first page.",
    ),
]


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page.")


def encode_cursor(last_id: int) -> str:
    return str(last_id)


def decode_cursor(cursor: str | None) -> int | None:
    """The id the previous page ended at (the query's pattern has checked it is digits)."""
    return None if cursor is None else int(cursor)


def page_of(items: list[T], ids: list[int], limit: int) -> Page[T]:
    """``items`` holds up to ``limit + 1`` rows (one more tells that another page exists)."""
    more = len(items) > limit
    return Page[T](items=items[:limit], next_cursor=encode_cursor(ids[limit - 1]) if more else None)
