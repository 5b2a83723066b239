"""Uptime per component and per day, from recorded impact intervals. Pure arithmetic, no I/O.

An interval says "component C was at level L from ``start`` to ``end``" (an incident's per-component
impact, a status set by hand, a maintenance in progress). Where intervals overlap, the worst level
counts. Downtime is weighted by level, as Atlassian Statuspage does and the README states:

=========================  ======  =====================================================
level                      weight  why
=========================  ======  =====================================================
``major_outage``           1.0     the component did not work
``partial_outage``         0.3     part of it did not work for part of the people
``degraded_performance``   0.0     it worked, slowly: shown on the bar, not downtime
``under_maintenance``      0.0     announced ahead: shown on the bar, not downtime
=========================  ======  =====================================================

A day's uptime is ``1 - weighted downtime / counted time``; the window's is the same over all its
counted days. Days before a component existed are not counted ("no data").
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

LEVELS: tuple[str, ...] = (
    "operational",
    "under_maintenance",
    "degraded_performance",
    "partial_outage",
    "major_outage",
)
"""Component states from best to worst."""

WEIGHTS: dict[str, float] = {
    "operational": 0.0,
    "under_maintenance": 0.0,
    "degraded_performance": 0.0,
    "partial_outage": 0.3,
    "major_outage": 1.0,
}
DAY = timedelta(days=1)


def worse(a: str, b: str) -> str:
    """The worse of two levels."""
    return a if LEVELS.index(a) >= LEVELS.index(b) else b


@dataclass(frozen=True)
class Interval:
    """``component`` was at ``level`` from ``start`` until ``end`` (None: still is)."""

    component: str
    level: str
    start: datetime
    end: datetime | None = None
    incident_id: int | None = None

    def __post_init__(self) -> None:
        if self.level not in LEVELS:
            raise ValueError(f"level: {self.level!r} is not one of {', '.join(LEVELS)}")


@dataclass
class DayUptime:
    """One day of one component (UTC calendar day)."""

    day: date
    uptime: float | None
    """From 0 to 1; None when the day is not counted (before the component existed)."""
    worst: str = "operational"
    downtime_seconds: float = 0.0
    """Weighted seconds of downtime."""
    incident_ids: list[int] = field(default_factory=list)


@dataclass
class ComponentUptime:
    component: str
    days: list[DayUptime]
    """Oldest first, ending with today."""
    uptime: float | None
    """Over the counted days of the window; None when none was counted."""


def window(today: date, days: int) -> list[date]:
    """The ``days`` calendar days ending with ``today``, oldest first."""
    return [today - timedelta(days=n) for n in range(days - 1, -1, -1)]


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=UTC)


def _segments(
    intervals: Sequence[Interval], start: datetime, end: datetime
) -> list[tuple[datetime, datetime, str]]:
    """Cut [start, end) where any interval begins or ends; each piece at its worst level."""
    points = {start, end}
    for iv in intervals:
        for point in (iv.start, iv.end or end):
            if start < point < end:
                points.add(point)
    ordered = sorted(points)
    pieces: list[tuple[datetime, datetime, str]] = []
    for a, b in itertools.pairwise(ordered):
        level = "operational"
        for iv in intervals:
            if iv.start <= a and (iv.end or end) >= b:
                level = worse(level, iv.level)
        pieces.append((a, b, level))
    return pieces


def component_uptime(
    component: str,
    intervals: Iterable[Interval],
    now: datetime,
    days: int,
    since: datetime | None = None,
) -> ComponentUptime:
    """The ``days`` days ending today (UTC) for one component; ``since`` is when it came to exist."""
    mine = [iv for iv in intervals if iv.component == component]
    out: list[DayUptime] = []
    counted = downtime = 0.0
    for day in window(now.astimezone(UTC).date(), days):
        begin, finish = _midnight(day), min(_midnight(day) + DAY, now)
        if since is not None:
            begin = max(begin, since)
        if finish <= begin:
            out.append(DayUptime(day, None))
            continue
        touching = [iv for iv in mine if iv.start < finish and (iv.end is None or iv.end > begin)]
        record = DayUptime(day, 1.0)
        for a, b, level in _segments(touching, begin, finish):
            record.worst = worse(record.worst, level)
            record.downtime_seconds += (b - a).total_seconds() * WEIGHTS[level]
        span = (finish - begin).total_seconds()
        record.uptime = 1.0 - record.downtime_seconds / span
        record.incident_ids = sorted({iv.incident_id for iv in touching if iv.incident_id is not None})
        counted += span
        downtime += record.downtime_seconds
        out.append(record)
    return ComponentUptime(component, out, None if counted == 0 else 1.0 - downtime / counted)


def percent(value: float | None) -> str:
    """Uptime as people read it: ``99.95%``, never rounded up to 100% while there was downtime."""
    if value is None:
        return "no data"
    shown = int(value * 10_000) / 100  # truncate: 99.999% stays 99.99%
    return f"{shown:.2f}%"
