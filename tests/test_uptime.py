"""Uptime per component and day, from impact intervals weighted as the README states."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from dispatcher.domain.uptime import Interval, component_uptime, percent

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def test_a_major_outage_counts_whole_a_partial_one_thirty_percent_degraded_none() -> None:
    yesterday = datetime(2026, 11, 24, tzinfo=UTC)
    intervals = [
        Interval("API", "major_outage", yesterday + timedelta(hours=1), yesterday + timedelta(hours=2), 1),
        Interval("API", "partial_outage", yesterday + timedelta(hours=5), yesterday + timedelta(hours=15), 2),
        Interval(
            "API", "degraded_performance", yesterday + timedelta(hours=20), yesterday + timedelta(hours=22)
        ),
        Interval("Checkout", "major_outage", yesterday, yesterday + timedelta(hours=24)),
    ]
    result = component_uptime("API", intervals, NOW, days=3)
    day = {d.day: d for d in result.days}[date(2026, 11, 24)]
    assert day.downtime_seconds == pytest.approx(3600 + 0.3 * 36000)
    assert day.uptime == pytest.approx(1 - (3600 + 10800) / 86400)
    assert day.worst == "major_outage"
    assert day.incident_ids == [1, 2]
    assert [d.day for d in result.days] == [date(2026, 11, 23), date(2026, 11, 24), date(2026, 11, 25)]
    # Over 2.5 counted days (today so far is half a day).
    assert result.uptime == pytest.approx(1 - 14400 / (86400 * 2.5))


def test_overlapping_incidents_count_the_worst_level_once() -> None:
    start = datetime(2026, 11, 25, 1, tzinfo=UTC)
    intervals = [
        Interval("API", "partial_outage", start, start + timedelta(hours=4), 1),
        Interval("API", "major_outage", start + timedelta(hours=1), start + timedelta(hours=2), 2),
    ]
    today = component_uptime("API", intervals, NOW, days=1).days[-1]
    assert today.downtime_seconds == pytest.approx(3600 + 0.3 * 3 * 3600)


def test_an_open_interval_runs_until_now_and_days_before_the_component_are_not_counted() -> None:
    intervals = [Interval("API", "major_outage", NOW - timedelta(hours=1))]
    result = component_uptime("API", intervals, NOW, days=90, since=datetime(2026, 11, 24, 12, tzinfo=UTC))
    assert [d.uptime for d in result.days[:-2]] == [None] * 88
    assert result.days[-1].downtime_seconds == pytest.approx(3600)
    assert result.uptime == pytest.approx(1 - 3600 / 86400)


def test_percent_never_rounds_downtime_up_to_a_hundred() -> None:
    assert percent(0.99999) == "99.99%"
    assert percent(1.0) == "100.00%"
    assert percent(None) == "no data"


def test_an_unknown_level_is_refused() -> None:
    with pytest.raises(ValueError, match="level: 'down'"):
        Interval("API", "down", NOW)
