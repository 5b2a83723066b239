"""Durations as people write them: ``90s``, ``45m``, ``2h``, ``1h30m``, ``1d``.

A bare number is refused, never read in a unit the writer did not choose: "next update in 30" read as
minutes, when the writer meant seconds or hours, is a promise to readers nobody made."""

from __future__ import annotations

import re
from datetime import timedelta

_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")

MAX_DURATION = timedelta(days=366)
"""The longest promise or schedule Tocsin accepts: a year ahead is already more than any reader can hold
you to, and far beyond it the arithmetic on dates overflows (``99999999h`` from now is past year 9999)."""
ACCEPTED_FORMS = "30m (minutes), 2h (hours), 90s (seconds), 1h30m or 1d (days)"
"""The forms an error shows, so the writer can correct the value without looking anything up."""
PATTERN = (
    r"^(0|[0-9]+[dD]([0-9]+[hH])?([0-9]+[mM])?([0-9]+[sS])?|[0-9]+[hH]([0-9]+[mM])?([0-9]+[sS])?"
    r"|[0-9]+[mM]([0-9]+[sS])?|[0-9]+[sS])$"
)
"""The written forms ``parse_duration`` reads (after trimming spaces), for schemas that describe them."""
_BARE_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)$")
_MAX_DIGITS = 12
"""More digits than this is far beyond ``MAX_DURATION`` in any unit: refused before converting."""


def parse_duration(text: str) -> timedelta:
    """Raise ``ValueError`` naming the text when it is not a duration, or is longer than
    ``MAX_DURATION``."""
    value = text.strip().lower()
    if _BARE_NUMBER.match(value):
        if value == "0":  # zero is zero in every unit: "0" (off) is unambiguous
            return timedelta(0)
        raise ValueError(no_unit(value))
    match = _DURATION.match(value)
    if not value or match is None or not any(match.groups()):
        raise ValueError(f"{text!r} is not a duration; write it like {ACCEPTED_FORMS}")
    d, h, m, s = (g or "0" for g in match.groups())
    return _bounded(text, (d, h, m, s))


def no_unit(number: object) -> str:
    """The message for a number given without its unit."""
    return f"{str(number).strip()!r} has no unit; write it like {ACCEPTED_FORMS}"


class DurationTooLong(ValueError):
    """Well written, but longer than ``MAX_DURATION``."""


def _bounded(text: str, parts: tuple[str | int, ...]) -> timedelta:
    too_long = DurationTooLong(
        f"{text.strip()!r} is longer than {MAX_DURATION.days} days, the longest promise "
        "or schedule Tocsin accepts"
    )
    if any(len(str(p)) > _MAX_DIGITS for p in parts):
        raise too_long
    d, h, m, s = (int(p) for p in parts)
    try:
        duration = timedelta(days=d, hours=h, minutes=m, seconds=s)
    except OverflowError:  # more days than a timedelta holds, within the digits allowed
        raise too_long from None
    if duration > MAX_DURATION:
        raise too_long
    return duration
