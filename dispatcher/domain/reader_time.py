"""Times as a reader reads them: in their own time zone, named by its abbreviation, with the day whenever
it is not the reader's today.

A subscriber in New York reads a promise made for 05:11 UTC as ``tomorrow, 12:11 AM EST`` the evening
before, a French reader in Paris as ``demain, 06:11 CET``; a promise for today needs no day
(``2:30 PM EST``), one further away names its date (``Wed, Mar 4, 2:30 PM EST``). Day names, dates, the
12- or 24-hour clock and the word for "tomorrow" come from CLDR through Babel, so every language gets
its own. Broadcast channels (X, chat rooms, the status page) speak to everyone at once: they use the
organisation's zone and add UTC (``2:30 PM CET (1:30 PM UTC)``).

The zone abbreviation is the one the zone database gives (``EST``, ``CEST``, ``JST``); zones that have
none there (``America/Sao_Paulo`` says ``-03``) are written as an offset from UTC (``UTC-3``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from datetime import time as Clock
from functools import lru_cache
from zoneinfo import ZoneInfo

from babel import Locale, UnknownLocaleError
from babel.dates import (
    format_relative_datetime,
    format_skeleton,
    format_time,
    get_datetime_format,
    get_relative_name,
)

from dispatcher.domain.locales import DEFAULT_LOCALE, locale_candidates

__all__ = ["ReaderClock", "babel_locale", "zone_abbreviation"]

_PLAIN = str.maketrans({"\u202f": " ", "\u00a0": " ", "\u2019": "'"})
"""CLDR writes ``2:30\u202fPM`` and ``aujourd\u2019hui``: plain spaces and apostrophes keep an SMS in GSM-7
(one typographic character would halve its room) and cost X nothing extra."""

_LETTERS = re.compile(r"^[A-Z]{2,6}$")
_OFFSET = re.compile(r"^([+-])(\d{2}):?(\d{2})?$")


@lru_cache(maxsize=256)
def babel_locale(tag: str | None) -> Locale:
    """The CLDR locale for a locale tag (``fr-CA`` → ``fr_CA``, then ``fr``); English when unknown."""
    for candidate in locale_candidates(tag or ""):
        try:
            return Locale.parse(candidate, sep="-")
        except (UnknownLocaleError, ValueError):
            continue
    return Locale.parse(DEFAULT_LOCALE)


@lru_cache(maxsize=256)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def zone_abbreviation(local: datetime) -> str:
    """``EST``, ``CEST``, ``UTC``; ``UTC-3`` or ``UTC+5:30`` where the zone has no letters."""
    name = local.tzname() or "UTC"
    if _LETTERS.match(name):
        return name
    match = _OFFSET.match(name)
    if match is None:
        return name
    sign, hours, minutes = match.group(1), int(match.group(2)), match.group(3)
    if hours == 0 and not (minutes and int(minutes)):
        return "UTC"
    return f"UTC{sign}{hours}" + (f":{minutes}" if minutes and int(minutes) else "")


@dataclass(frozen=True)
class ReaderClock:
    """How one reader sees times: their zone, their language, and what "today" is for them.

    ``also_utc``: add the time in UTC (broadcast channels, read around the world). ``always_day``: name
    the day even when it is today (``today, 2:30 PM EST``), for messages read later, such as email."""

    zone: str
    now: datetime
    locale: str = DEFAULT_LOCALE
    also_utc: bool = False
    always_day: bool = False

    @property
    def tz(self) -> ZoneInfo:
        return _zone(self.zone)

    def local(self, value: datetime) -> datetime:
        return _aware(value).astimezone(self.tz)

    def day_offset(self, value: datetime) -> int:
        """Days from the reader's today to ``value``'s day, both on the reader's calendar."""
        return (self.local(value).date() - self.local(self.now).date()).days

    def time(self, value: datetime, *, day: bool = True) -> str:
        """``value`` as this reader reads it (see the module docstring); ``day=False``: the clock time
        and zone only (the end of a window on the same day as its start)."""
        local = self.local(value)
        when = self._day_and_time(local) if day else self._clock(_clock_time(local))
        shown = f"{when} {zone_abbreviation(local)}"
        if self.also_utc and local.utcoffset():
            shown += f" ({self._clock(_aware(value).astimezone(UTC).time())} UTC)"
        return shown.translate(_PLAIN)

    def day(self, value: datetime) -> str:
        """Only the day: ``today``, ``tomorrow``, ``Wed, Mar 4`` (for a window's date)."""
        local = self.local(value)
        offset = self.day_offset(value)
        relative = get_relative_name("day", offset, locale=self._babel) if abs(offset) <= 1 else None
        return (relative or self._date(local)).translate(_PLAIN)

    @property
    def _babel(self) -> Locale:
        return babel_locale(self.locale)

    def _clock(self, value: Clock) -> str:
        return format_time(value, "short", locale=self._babel)

    def _date(self, local: datetime) -> str:
        skeleton = "MMMEd" if local.year == self.local(self.now).year else "yMMMEd"
        return format_skeleton(skeleton, local, locale=self._babel)

    def _day_and_time(self, local: datetime) -> str:
        clock = _clock_time(local)
        offset = (local.date() - self.local(self.now).date()).days
        if offset == 0 and not self.always_day:
            return self._clock(clock)
        relative = get_relative_name("day", offset, locale=self._babel) if abs(offset) <= 1 else None
        if relative is not None:
            return format_relative_datetime(relative, clock, format="short", locale=self._babel)
        pattern = str(get_datetime_format("short", locale=self._babel))
        return pattern.replace("{1}", self._date(local)).replace("{0}", self._clock(clock))


def _clock_time(local: datetime) -> Clock:
    return local.time().replace(second=0, microsecond=0, tzinfo=None)


def _aware(value: datetime) -> datetime:
    """Naive datetimes are UTC (the store keeps UTC)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value
