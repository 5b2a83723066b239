"""Cursor pagination for list endpoints: ``limit`` (1-200, default 50) and an opaque ``cursor``.

Lists are ordered by id (incidents and deliveries newest first, subscribers oldest first). A page's
``next_cursor`` names the last id it holds; passing it back returns the items after that one, so a page
never repeats or skips a row when new rows are added meanwhile. ``next_cursor`` is null on the last page.
"""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Generic, TypeVar

from fastapi import Query
from pydantic import BaseModel, Field

from dispatcher.web.api.problems import FieldError, ProblemError

T = TypeVar("T")

MAX_LIMIT = 200
DEFAULT_LIMIT = 50
CURSOR_PREFIX = "id:"

Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Items per page (1-200).")]
Cursor = Annotated[
    str | None,
    Query(
        max_length=100,
        pattern=r"^[A-Za-z0-9_-]+$",
        description="`next_cursor` of the previous page; omit for the first page.",
    ),
]


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page.")


def encode_cursor(last_id: int) -> str:
    return base64.urlsafe_b64encode(f"{CURSOR_PREFIX}{last_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> int | None:
    """The id the previous page ended at; a cursor that is not ours is a 422 naming ``cursor``."""
    if cursor is None:
        return None
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, ValueError):
        text = ""
    value = text.removeprefix(CURSOR_PREFIX)
    if not text.startswith(CURSOR_PREFIX) or not value.isdigit() or len(value) > 18:
        raise ProblemError(
            422,
            "invalid-input",
            "cursor: not a cursor this API gave out (use next_cursor from the previous page)",
            title="Invalid input",
            errors=[FieldError(field="cursor", message="not a cursor this API gave out")],
        )
    return int(value)


def page_of(items: list[T], ids: list[int], limit: int) -> Page[T]:
    """``items`` holds up to ``limit + 1`` rows (one more tells that another page exists)."""
    more = len(items) > limit
    return Page[T](items=items[:limit], next_cursor=encode_cursor(ids[limit - 1]) if more else None)
