"""Characters no person types: NUL and the other control characters. PostgreSQL cannot store NUL in
text at all, SQLite stores it and every reader downstream chokes on it, so both refuse them the same way:
at the edge, naming the field."""

from __future__ import annotations

import re

ALLOWED_CONTROLS = "\t\n\r"
"""Tab and line breaks are text."""
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def control_character(text: str) -> str | None:
    """Why ``text`` is refused (``"contains the control character U+0000 at position 5"``), or None."""
    found = _CONTROL.search(text)
    if found is None:
        return None
    return f"contains the control character U+{ord(found.group()):04X} at position {found.start() + 1}"


def refuse_control_characters(text: str) -> str:
    """``text`` itself, or ``ValueError`` naming the character (a pydantic validator's shape)."""
    problem = control_character(text)
    if problem is not None:
        raise ValueError(problem)
    return text
