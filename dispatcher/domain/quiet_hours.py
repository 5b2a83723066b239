"""Quiet hours: a daily window in the subscriber's own time zone when only critical updates go out.

A window is two wall-clock times, ``"22:00"`` to ``"07:00"``; when the start is after the end it runs
over midnight. Fan-out writes the delivery row of a non-critical update that falls in the window with
``next_attempt_at`` at the end of the window: claims skip rows that are not yet due, and the periodic
re-drive hands the batch to a worker once the window has ended (see ``dispatcher.engine.claims``/``redrive``).

Wall-clock arithmetic uses ``zoneinfo``: the end of a window on a daylight-saving change day is the
local time the subscriber sees on their clock that morning.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, time, timedelta, tzinfo
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = ["check_clock_time", "check_timezone", "parse_quiet_hours", "quiet_until"]

_CLOCK = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")


def check_clock_time(value: str) -> str:
    """``"7:00"`` -> ``"07:00"``; ``ValueError`` naming the value if it is not HH:MM (24-hour)."""
    match = _CLOCK.match(value.strip())
    if match is None:
        raise ValueError(f"{value!r} is not a time of day: use HH:MM, 24-hour (e.g. 22:00)")
    return f"{int(match.group(1)):02d}:{match.group(2)}"


def check_timezone(value: str) -> str:
    """An IANA time zone name (``Europe/Paris``, ``UTC``); ``ValueError`` naming it if unknown."""
    name = value.strip()
    try:
        _zone(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{value!r} is not a time zone: use an IANA name such as Europe/Paris") from None
    return name


def parse_quiet_hours(value: str) -> tuple[str, str]:
    """``"22:00-07:00"`` -> ``("22:00", "07:00")``; ``ValueError`` with a clear reason otherwise."""
    start, sep, end = value.partition("-")
    if not sep:
        raise ValueError(f"{value!r} is not a quiet-hours window: write it as start-end, e.g. 22:00-07:00")
    start, end = check_clock_time(start), check_clock_time(end)
    if start == end:
        raise ValueError(f"{value!r}: the quiet hours start and end at the same time")
    return start, end


@lru_cache(maxsize=256)
def _zone(name: str) -> tzinfo:
    return UTC if name.upper() == "UTC" else ZoneInfo(name)


def _clock(value: str) -> time:
    hours, minutes = check_clock_time(value).split(":")
    return time(int(hours), int(minutes))


def quiet_until(now: datetime, start: str | None, end: str | None, timezone: str | None) -> datetime | None:
    """When the quiet window ``now`` falls in ends (aware UTC), or None when ``now`` is not quiet."""
    if not start or not end or start == end:
        return None
    zone = _zone(timezone or "UTC")
    local = now.astimezone(zone)
    begins, ends = _clock(start), _clock(end)
    at = local.time().replace(tzinfo=None)
    if begins < ends:
        if not begins <= at < ends:
            return None
        end_day = local.date()
    else:  # over midnight: 22:00-07:00 is quiet from 22:00 to midnight and from midnight to 07:00
        if ends <= at < begins:
            return None
        end_day = local.date() if at < ends else local.date() + timedelta(days=1)
    return datetime.combine(end_day, ends, tzinfo=zone).astimezone(UTC)
