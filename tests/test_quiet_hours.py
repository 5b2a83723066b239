"""Quiet hours: non-critical updates wait for the end of a subscriber's window, critical ones do not.

Time is an injected clock: the fan-out writes the row due at the end of the window, claims skip it until
then, and the periodic re-drive hands it to a worker once it is due."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from channels.base import ChannelKind
from dispatcher.audience.subscribers import add_subscribers, iter_subscribers
from dispatcher.comms.publish import publish
from dispatcher.domain.models import ContactPoint, Incident, Severity, Subscriber, UpdateDraft
from dispatcher.domain.quiet_hours import check_timezone, parse_quiet_hours, quiet_until
from dispatcher.engine.delivery import deliver_batch
from dispatcher.engine.redrive import redrive
from dispatcher.engine.runtime import Runtime, build_runtime
from dispatcher.engine.task_queue import BatchRef
from dispatcher.runners.embedded import EmbeddedRunner
from dispatcher.store.schema import deliveries
from tests.conftest import SettingsFactory
from tests.helpers import draft, incident

PARIS = "Europe/Paris"


class FakeClock:
    def __init__(self, start: datetime) -> None:
        self.at = start

    def now(self) -> datetime:
        return self.at

    def advance(self, delta: timedelta) -> None:
        self.at += delta


def utc(year: int, month: int, day: int, hour: int, minute: int) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


# --- the window ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("now", "window", "zone", "until"),
    [
        # Over midnight, in Paris (UTC+1 in January): 23:30 local is quiet until 07:00 local = 06:00 UTC.
        (utc(2026, 1, 10, 22, 30), ("22:00", "07:00"), PARIS, utc(2026, 1, 11, 6, 0)),
        # After midnight, same window: until 07:00 the same day.
        (utc(2026, 1, 11, 3, 0), ("22:00", "07:00"), PARIS, utc(2026, 1, 11, 6, 0)),
        # 07:00 local sharp is no longer quiet; 21:59 local is not quiet yet.
        (utc(2026, 1, 11, 6, 0), ("22:00", "07:00"), PARIS, None),
        (utc(2026, 1, 10, 20, 59), ("22:00", "07:00"), PARIS, None),
        # A daytime window (12:00-14:00 UTC).
        (utc(2026, 1, 10, 13, 0), ("12:00", "14:00"), None, utc(2026, 1, 10, 14, 0)),
        (utc(2026, 1, 10, 14, 0), ("12:00", "14:00"), None, None),
        # Summer time (UTC+2): 07:00 local is 05:00 UTC.
        (utc(2026, 7, 10, 23, 0), ("22:00", "07:00"), PARIS, utc(2026, 7, 11, 5, 0)),
        # The night the clocks go forward (29 March 2026): 07:00 local is already summer time.
        (utc(2026, 3, 28, 23, 0), ("22:00", "07:00"), PARIS, utc(2026, 3, 29, 5, 0)),
    ],
)
def test_quiet_until(
    now: datetime, window: tuple[str, str], zone: str | None, until: datetime | None
) -> None:
    assert quiet_until(now, window[0], window[1], zone) == until


def test_no_window_is_never_quiet() -> None:
    assert quiet_until(utc(2026, 1, 1, 3, 0), None, None, PARIS) is None


def test_bad_windows_and_zones_are_named() -> None:
    assert parse_quiet_hours("22:00-7:00") == ("22:00", "07:00")
    with pytest.raises(ValueError, match="'24:00' is not a time of day"):
        parse_quiet_hours("22:00-24:00")
    with pytest.raises(ValueError, match="write it as start-end"):
        parse_quiet_hours("22:00")
    with pytest.raises(ValueError, match="same time"):
        parse_quiet_hours("07:00-07:00")
    with pytest.raises(ValueError, match="'Mars/Olympus' is not a time zone"):
        check_timezone("Mars/Olympus")
    with pytest.raises(ValueError, match="both a start and an end"):
        Subscriber(quiet_start="22:00")


# --- through the fan-out and the deliverer ---------------------------------------------------------


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(utc(2026, 1, 10, 22, 30))  # 23:30 in Paris


# Critical updates go out without a second person's approval here: this file is about timing.
POLICY = """
[severity.minor]
cadence = "3h"
[severity.major]
cadence = "1h"
[severity.critical]
cadence = "30m"
"""


@pytest.fixture
def rt(make_settings: SettingsFactory, clock: FakeClock, tmp_path: Path) -> Iterator[Runtime]:
    (tmp_path / "policy.toml").write_text(POLICY)
    runtime = build_runtime(make_settings(policy_file=tmp_path / "policy.toml"), clock=clock)
    add_subscribers(
        runtime,
        [
            Subscriber(
                name="Sleeper",
                quiet_start="22:00",
                quiet_end="07:00",
                timezone=PARIS,
                contact_points=[ContactPoint(channel=ChannelKind.EMAIL, address="sleeper@example.com")],
            ),
            Subscriber(
                name="Night owl",
                contact_points=[ContactPoint(channel=ChannelKind.EMAIL, address="owl@example.com")],
            ),
        ],
    )
    yield runtime
    runtime.close()


def ledger(rt: Runtime, update_id: int) -> dict[str, tuple[str, datetime | None]]:
    with rt.engine.connect() as conn:
        found = conn.execute(
            select(deliveries.c.address, deliveries.c.state, deliveries.c.next_attempt_at).where(
                deliveries.c.update_id == update_id
            )
        )
        return {address: (state, due) for address, state, due in found}


def promised(rt: Runtime, inc: Incident) -> UpdateDraft:
    """An update promising the next one within the severity's cadence, by the test's clock."""
    return draft(inc, channels=[ChannelKind.EMAIL], next_update_at=rt.clock.now() + timedelta(minutes=30))


def test_a_non_critical_update_waits_for_the_end_of_the_quiet_hours(rt: Runtime, clock: FakeClock) -> None:
    runner = EmbeddedRunner(rt)
    update_id = publish(rt, promised(rt, incident(rt)), runner.queue).update.id
    runner.run_until_idle()

    morning = utc(2026, 1, 11, 6, 0)  # 07:00 in Paris
    assert ledger(rt, update_id) == {
        "owl@example.com": ("sent", None),
        "sleeper@example.com": ("queued", morning),
    }

    # A worker given the batch before the window ends claims nothing, and the re-drive leaves it alone.
    clock.at = morning - timedelta(minutes=1)
    assert deliver_batch(rt, BatchRef(update_id, ChannelKind.EMAIL, 0)).claimed == 0
    assert redrive(rt, runner.queue).batches == 0

    clock.at = morning + timedelta(minutes=2)
    assert redrive(rt, runner.queue).batches == 1
    runner.run_until_idle()
    assert ledger(rt, update_id)["sleeper@example.com"][0] == "sent"


def test_a_critical_update_goes_out_at_once(rt: Runtime) -> None:
    runner = EmbeddedRunner(rt)
    inc = incident(rt, severity=Severity.CRITICAL)
    update_id = publish(rt, promised(rt, inc), runner.queue).update.id
    runner.run_until_idle()

    assert {address: state for address, (state, _) in ledger(rt, update_id).items()} == {
        "owl@example.com": "sent",
        "sleeper@example.com": "sent",
    }


def test_outside_the_window_nobody_waits(rt: Runtime, clock: FakeClock) -> None:
    clock.at = utc(2026, 1, 11, 12, 0)  # 13:00 in Paris
    runner = EmbeddedRunner(rt)
    update_id = publish(rt, promised(rt, incident(rt)), runner.queue).update.id
    runner.run_until_idle()

    assert {state for state, _ in ledger(rt, update_id).values()} == {"sent"}


def test_quiet_hours_are_stored_and_read_back(rt: Runtime) -> None:
    sleeper = next(s for s in iter_subscribers(rt) if s.name == "Sleeper")
    assert (sleeper.quiet_start, sleeper.quiet_end, sleeper.timezone) == ("22:00", "07:00", PARIS)
