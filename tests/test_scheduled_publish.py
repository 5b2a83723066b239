"""An update can be written now and published later: it waits in the database, and the periodic tick
(``release_due``) publishes it when its time comes, once, even with two ticks running at once."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from dispatcher.comms.approval import reject
from dispatcher.comms.closure import resolve
from dispatcher.comms.incidents import get_incident
from dispatcher.comms.publish import get_update, publish, release_due
from dispatcher.domain.errors import InvalidInput
from dispatcher.domain.identity import Identity
from dispatcher.domain.models import IncidentStatus, Severity, UpdateState
from dispatcher.engine.runtime import Runtime
from dispatcher.store.schema import incident_events
from tests.cli import tocsin
from tests.helpers import ManualClock, RecordingQueue, draft, hand_clock, incident


@pytest.fixture
def clock(rt: Runtime) -> ManualClock:
    return hand_clock(rt)


def test_a_scheduled_update_waits_and_is_published_at_its_time(rt: Runtime, clock: ManualClock) -> None:
    inc = incident(rt, Severity.MAJOR)
    queue = RecordingQueue()
    at = clock.now() + timedelta(hours=2)
    upd = draft(
        inc,
        "Maintenance of the card processor begins now. Sorry.",
        status=IncidentStatus.IDENTIFIED,
        publish_at=at,
        next_update_at=at + timedelta(minutes=30),
    )

    scheduled = publish(rt, upd, queue).update

    assert scheduled.state is UpdateState.SCHEDULED and scheduled.scheduled_for == at
    assert queue.fanouts == []
    assert get_incident(rt, inc.id).status is IncidentStatus.INVESTIGATING
    assert get_incident(rt, inc.id).next_update_at is None
    clock.advance(hours=1, minutes=59)
    assert release_due(rt, queue) == [], "not yet"

    clock.advance(minutes=1)
    assert release_due(rt, queue) == [scheduled.id]

    released = get_update(rt, scheduled.id)
    assert released.state is UpdateState.PENDING and released.published_at == clock.now()
    assert queue.fanouts == [scheduled.id]
    assert get_incident(rt, inc.id).status is IncidentStatus.IDENTIFIED
    assert get_incident(rt, inc.id).next_update_at == at + timedelta(minutes=30)
    assert release_due(rt, queue) == [] and queue.fanouts == [scheduled.id], "released once"


def test_bad_times_are_refused(rt: Runtime, clock: ManualClock) -> None:
    inc = incident(rt)
    queue = RecordingQueue()
    with pytest.raises(InvalidInput, match="publish_at: must be in the future"):
        publish(rt, draft(inc, publish_at=clock.now() - timedelta(minutes=1)), queue)
    at = clock.now() + timedelta(hours=1)
    with pytest.raises(InvalidInput, match="next_update_at: must be after publish_at"):
        publish(rt, draft(inc, publish_at=at, next_update_at=at - timedelta(minutes=5)), queue)


def test_a_scheduled_update_of_a_severity_needing_approval_then_waits_for_it(
    rt: Runtime, clock: ManualClock
) -> None:
    inc = incident(rt, Severity.CRITICAL)
    queue = RecordingQueue()
    at = clock.now() + timedelta(minutes=10)
    scheduled = publish(
        rt,
        draft(inc, "Payments fail. Sorry.", publish_at=at, next_update_at=at + timedelta(minutes=30)),
        queue,
    ).update
    clock.advance(minutes=10)

    assert release_due(rt, queue) == [scheduled.id]
    assert get_update(rt, scheduled.id).state is UpdateState.PENDING_APPROVAL
    assert queue.fanouts == []


def test_an_update_the_lifecycle_refuses_at_its_time_is_rejected_not_sent(
    rt: Runtime, clock: ManualClock
) -> None:
    inc = incident(rt, Severity.MINOR)
    queue = RecordingQueue()
    at = clock.now() + timedelta(hours=1)
    scheduled = publish(
        rt,
        draft(inc, status=IncidentStatus.IDENTIFIED, publish_at=at, next_update_at=at + timedelta(hours=1)),
        queue,
    ).update
    resolve(rt, inc.id, Identity("ada"), queue)
    queue.fanouts.clear()
    clock.advance(hours=1)

    assert release_due(rt, queue) == []

    refused = get_update(rt, scheduled.id)
    assert refused.state is UpdateState.REJECTED and refused.rejected_by == "tocsin:scheduler"
    assert refused.rejected_reason is not None and "is resolved" in refused.rejected_reason
    assert queue.fanouts == [] and get_incident(rt, inc.id).status is IncidentStatus.RESOLVED
    with rt.engine.connect() as conn:
        kind = conn.execute(
            select(incident_events.c.kind).where(incident_events.c.update_id == scheduled.id)
        ).scalar_one()
    assert kind == "rejected"


def test_a_scheduled_update_can_be_cancelled(rt: Runtime, clock: ManualClock) -> None:
    inc = incident(rt)
    queue = RecordingQueue()
    at = clock.now() + timedelta(minutes=5)
    scheduled = publish(rt, draft(inc, publish_at=at, next_update_at=at + timedelta(hours=1)), queue).update
    reject(rt, scheduled.id, Identity("ada"), "the fix landed early")
    clock.advance(minutes=5)
    assert release_due(rt, queue) == [] and queue.fanouts == []


def test_publishing_a_scheduled_update_again_with_its_key_changes_nothing(
    rt: Runtime, clock: ManualClock
) -> None:
    inc = incident(rt)
    queue = RecordingQueue()
    at = clock.now() + timedelta(minutes=5)
    upd = draft(inc, publish_at=at, next_update_at=at + timedelta(hours=1), idempotency_key="later-1")
    first = publish(rt, upd, queue)
    again = publish(rt, upd, queue)
    assert first.created and not again.created and again.update.id == first.update.id


@dataclass
class InterleavingQueue(RecordingQueue):
    """The first fan-out it is handed lets another process's tick run to the end before this one goes
    on: this tick then holds a list of due updates that the other tick has already released."""

    other_tick: Callable[[], list[int]] | None = None
    other_released: list[int] = field(default_factory=list)

    def submit_fanout(self, update_id: int) -> None:
        super().submit_fanout(update_id)
        if self.other_tick is not None:
            tick, self.other_tick = self.other_tick, None
            self.other_released = tick()


def test_two_ticks_at_once_release_each_update_once(
    rt: Runtime, clock: ManualClock, make_runtime: Callable[..., Runtime]
) -> None:
    inc = incident(rt)
    at = clock.now() + timedelta(minutes=1)
    ids = [
        publish(
            rt,
            draft(inc, f"Update {i}. Sorry.", publish_at=at, next_update_at=at + timedelta(hours=1)),
            RecordingQueue(),
        ).update.id
        for i in range(6)
    ]
    clock.advance(minutes=1)
    other = make_runtime()
    other.clock = clock
    other_queue = RecordingQueue()
    first_queue = InterleavingQueue(other_tick=lambda: release_due(other, other_queue))

    first_released = release_due(rt, first_queue)

    assert first_released == ids[:1] and first_queue.other_released == ids[1:]
    assert sorted(first_queue.fanouts + other_queue.fanouts) == ids, "each update fanned out exactly once"


def test_publish_cli_schedules_with_at_or_in(tmp_path: Path) -> None:
    assert tocsin("init", cwd=tmp_path).code == 0
    tocsin("incident", "open", "Checkout failing", cwd=tmp_path)
    base = [
        "publish",
        "1",
        "--status",
        "identified",
        "--message",
        "Rollback starts. Sorry.",
        "--next-update-in",
        "1h",
    ]

    later = tocsin(*base, "--in", "2h", cwd=tmp_path)
    assert later.code == 0, later.err
    assert "scheduled update upd-1 for" in later.out and "nothing sent" in later.out
    assert not list(tmp_path.glob("outbox/**/*.*"))

    # A time a year from now, whatever day the suite runs (never a date that will one day be past).
    when = (datetime.now(UTC) + timedelta(days=365)).replace(hour=10, minute=0, second=0, microsecond=0)
    stamp = when.strftime("%Y-%m-%dT%H:%M")
    naive = tocsin(*base, "--at", stamp, cwd=tmp_path)
    assert naive.code != 0 and "time zone" in naive.err
    both = tocsin(*base, "--at", f"{stamp}Z", "--in", "1h", cwd=tmp_path)
    assert both.code != 0 and "not both" in both.err
    at = tocsin(*base, "--at", f"{stamp}Z", cwd=tmp_path)
    assert at.code == 0 and f"scheduled update upd-2 for {when:%Y-%m-%d} 10:00 UTC" in at.out, at.err
