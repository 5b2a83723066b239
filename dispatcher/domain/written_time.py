"""A moment as a person or client writes it: an ISO 8601 / RFC 3339 text, never a bare number.

Pydantic reads ``0`` or ``1767225600`` as seconds since 1970; a request saying ``"next_update_at": 0``
would promise an update in 1970 and be refused for a reason its writer never meant. The API describes
these fields as ``date-time`` strings, so a number is refused as what it is: not a time.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BeforeValidator


def _not_a_number(value: Any) -> Any:
    if isinstance(value, int | float) and not isinstance(value, bool):
        raise ValueError("give a time like 2026-01-01T14:30:00Z, not a number")
    return value


WrittenTime = Annotated[datetime, BeforeValidator(_not_a_number)]
