"""Durations as people write them: ``90s``, ``45m``, ``2h``, ``1h30m``, ``1d``; a bare number is minutes."""

from __future__ import annotations

import re
from datetime import timedelta

_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


def parse_duration(text: str) -> timedelta:
    """Raise ``ValueError`` naming the text when it is not a duration."""
    value = text.strip().lower()
    if value.isdigit():
        return timedelta(minutes=int(value))
    match = _DURATION.match(value)
    if not value or match is None or not any(match.groups()):
        raise ValueError(f"{text!r} is not a duration like 30m, 2h or 1h30m")
    d, h, m, s = (int(g) if g else 0 for g in match.groups())
    return timedelta(days=d, hours=h, minutes=m, seconds=s)
