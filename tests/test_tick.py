"""One tick runs every duty time sets off: scheduled updates, maintenance stages, reminders, holding
messages. The embedded worker and Celery beat both run it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from channels.base import ChannelKind
from dispatcher.comms.maintenance import MaintenanceDraft, schedule_maintenance
from dispatcher.comms.publish import get_update, publish
from dispatcher.comms.tick import run_tick
from dispatcher.config.settings import Settings
from dispatcher.domain.models import IncidentStatus, UpdateState
from dispatcher.engine.runtime import Runtime
from dispatcher.runners.embedded import EmbeddedRunner
from dispatcher.store.schema import updates
from tests.helpers import ManualClock, draft, incident, subscribe
from workers.app import make_app

T0 = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
EMAIL = [ChannelKind.EMAIL]


def test_one_tick_does_every_duty_that_is_due(rt: Runtime) -> None:
    clock = ManualClock(T0)
    rt.clock = clock
    subscribe(rt, 2)
    runner = EmbeddedRunner(rt)
    queue = runner.queue
    at = T0 + timedelta(minutes=30)

    missed = incident(rt)
    publish(rt, draft(missed, "Checkout is failing.", next_update_at=at, channels=EMAIL), queue)
    soon = incident(rt)
    publish(
        rt, draft(soon, "Search is slow.", next_update_at=at + timedelta(minutes=3), channels=EMAIL), queue
    )
    later = incident(rt)
    scheduled = publish(
        rt,
        draft(
            later,
            "Login errors are rising. We are sorry.",
            publish_at=at,
            next_update_at=at + timedelta(hours=1),
            channels=EMAIL,
        ),
        queue,
    ).update
    window = schedule_maintenance(
        rt,
        queue,
        MaintenanceDraft(title="Database upgrade", starts_at=at, ends_at=at + timedelta(hours=1)),
    )
    runner.run_until_idle()

    clock.at = at
    report = run_tick(rt, queue)
    runner.run_until_idle()

    assert report.errors == []
    assert report.released == [scheduled.id]
    assert get_update(rt, scheduled.id).state is UpdateState.FANNED_OUT
    assert report.maintenance == [(window.id, "in_progress")]
    assert [get_update(rt, r).incident_id for r in report.reminders] == [soon.id]
    assert [get_update(rt, h).incident_id for h in report.holdings] == [missed.id]
    assert report.summary() == (
        "released 1 scheduled updates, 1 maintenance stages, 1 reminders, 1 holding messages, "
        "0 escalations, 0 first-word alerts (0 first notices sent), 0 approval nudges"
    )

    again = run_tick(rt, queue)
    assert not again.acted and again.errors == []


def test_the_embedded_worker_runs_the_tick(rt: Runtime) -> None:
    clock = ManualClock(T0)
    rt.clock = clock
    subscribe(rt, 2)
    inc = incident(rt)
    runner = EmbeddedRunner(rt, sleep=lambda _: None)
    publish(
        rt,
        draft(inc, "Checkout is failing.", next_update_at=T0 + timedelta(minutes=30), channels=EMAIL),
        runner.queue,
    )
    clock.at = T0 + timedelta(minutes=30)
    loops = iter(range(3))

    runner.serve_forever(tick=0.01, stop=lambda: next(loops, None) is None)

    with rt.engine.connect() as conn:
        holding = conn.execute(
            select(updates.c.id, updates.c.state, updates.c.status).where(
                updates.c.incident_id == inc.id, updates.c.kind == "holding"
            )
        ).one()
    assert holding.state == UpdateState.FANNED_OUT.value
    assert holding.status == IncidentStatus.INVESTIGATING.value


def test_celery_beat_runs_the_tick_every_30_seconds_on_the_maintenance_queue() -> None:
    app = make_app(Settings(database_url="sqlite:///unused.db"))
    entry = app.conf.beat_schedule["periodic-duties"]
    assert (entry["task"], entry["schedule"]) == ("tocsin.tick", 30.0)
    assert app.conf.task_routes["tocsin.tick"] == {"queue": "maintenance"}
