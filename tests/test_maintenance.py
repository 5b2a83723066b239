"""Given a planned maintenance window, subscribers are told when it is scheduled, reminded before it
starts, told when it starts and when it is over, each once, by the periodic tick."""

from __future__ import annotations

import email
import email.policy
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError
from sqlalchemy import func, select

from channels.base import ChannelKind
from dispatcher.audience.subscribers import add_subscribers
from dispatcher.cli.maintenance import parse_moment
from dispatcher.comms.incidents import get_incident
from dispatcher.comms.maintenance import (
    MaintenanceDraft,
    cancel_maintenance,
    list_maintenance,
    schedule_maintenance,
)
from dispatcher.comms.tick import run_tick
from dispatcher.domain.errors import InvalidInput, NotFound
from dispatcher.domain.models import Incident, IncidentStatus, Update
from dispatcher.engine.runtime import Runtime
from dispatcher.store.schema import incidents, updates
from tests.cli import tocsin
from tests.helpers import TimedStage, incident, person, subscribe

T0 = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
START = datetime(2026, 11, 26, 2, 0, tzinfo=UTC)
END = datetime(2026, 11, 26, 4, 0, tzinfo=UTC)


class Window(TimedStage):
    """A maintenance window's story: schedule it, then run the tick at the times we choose."""

    def schedule(self, **fields: object) -> Incident:
        values: dict[str, object] = {"title": "Database upgrade", "starts_at": START, "ends_at": END}
        values.update(fields)
        made = schedule_maintenance(self.rt, self.runner.queue, MaintenanceDraft.model_validate(values))
        self.runner.run_until_idle()
        return made

    def tick_at(self, when: datetime) -> list[tuple[int, str]]:
        self.clock.at = when
        report = run_tick(self.rt, self.runner.queue)
        self.runner.run_until_idle()
        assert report.errors == []
        return report.maintenance

    def notices(self, incident_id: int) -> list[Update]:
        """The window's public notices (staff's overrun reminders aside)."""
        with self.rt.engine.connect() as conn:
            rows = conn.execute(
                select(updates)
                .where(updates.c.incident_id == incident_id, updates.c.kind == "maintenance")
                .order_by(updates.c.id)
            ).mappings()
            return [Update.model_validate(dict(r)) for r in rows]

    def emailed(self, update_id: int) -> int:
        return len(list((self.outbox / f"update-{update_id}" / "email").glob("*.eml")))

    def bodies(self, update_id: int) -> dict[str, str]:
        """Recipient address -> plain-text body of the emails sent for ``update_id``."""
        found = {}
        for path in (self.outbox / f"update-{update_id}" / "email").glob("*.eml"):
            message = email.message_from_bytes(path.read_bytes())
            part = next(p for p in message.walk() if p.get_content_type() == "text/plain")
            found[email.utils.parseaddr(message["To"])[1]] = (
                part.get_payload(decode=True).decode().replace("\r\n", "\n")
            )
        return found


@pytest.fixture
def window(rt: Runtime, tmp_path: Path) -> Window:
    subscribe(rt, 3)
    return Window(rt, tmp_path / "outbox", T0)


def test_a_window_is_announced_reminded_started_and_completed_once_each(window: Window) -> None:
    made = window.schedule(components=["database"])

    assert (made.kind, made.maintenance_stage, made.status) == (
        "maintenance",
        "scheduled",
        IncidentStatus.IDENTIFIED,
    )
    [notice] = window.notices(made.id)
    assert (notice.kind, notice.next_update_at, notice.audience.value) == ("maintenance", None, "public")
    assert notice.message == (
        "Scheduled maintenance: Database upgrade. Window: 2026-11-26 02:00 UTC to 04:00 UTC."
    )
    assert window.emailed(notice.id) == 3

    assert window.tick_at(START - timedelta(minutes=61)) == []
    assert window.tick_at(START - timedelta(minutes=60)) == [(made.id, "reminded")]
    assert window.tick_at(START - timedelta(minutes=59)) == []
    assert window.tick_at(START) == [(made.id, "in_progress")]
    running = get_incident(window.rt, made.id)
    assert (running.status, running.monitoring_since) == (IncidentStatus.MONITORING, START)
    # The window is its own promise: no reminder, no holding message while it runs.
    assert window.tick_at(END - timedelta(minutes=5)) == []
    # Work may overrun: complete only after the grace (15 minutes), time enough to extend it.
    assert window.tick_at(END) == []
    assert window.tick_at(END + timedelta(minutes=15)) == [(made.id, "completed")]
    assert window.tick_at(END + timedelta(minutes=16)) == []

    done = get_incident(window.rt, made.id)
    assert (done.status, done.maintenance_stage, done.resolved_at, done.next_update_at) == (
        IncidentStatus.RESOLVED,
        "completed",
        END + timedelta(minutes=15),
        None,
    )
    sent = window.notices(made.id)
    assert [(u.kind, u.status.value) for u in sent] == [
        ("maintenance", "identified"),
        ("maintenance", "identified"),
        ("maintenance", "monitoring"),
        ("maintenance", "resolved"),
    ]
    assert [u.next_update_at for u in sent] == [None, None, END, None]
    assert "starts at 2026-11-26 02:00 UTC" in sent[1].message
    assert sent[2].message == "Scheduled maintenance 'Database upgrade' is in progress until 04:00 UTC."
    assert sent[2].promise_state == "kept", "the completion came within the grace"
    assert sent[3].message == "Scheduled maintenance 'Database upgrade' is complete."
    assert all(window.emailed(u.id) == 3 for u in sent)


def test_a_custom_message_keeps_the_window(window: Window) -> None:
    made = window.schedule(message="We upgrade the database; checkout may pause for a minute.")
    [notice] = window.notices(made.id)
    assert notice.message == (
        "We upgrade the database; checkout may pause for a minute.\n\n"
        "Maintenance window: 2026-11-26 02:00 UTC to 04:00 UTC."
    )
    assert all("checkout may pause" in body for body in window.bodies(notice.id).values())


def test_no_reminder_when_scheduled_inside_the_reminder_window(window: Window) -> None:
    window.clock.at = START - timedelta(minutes=30)
    made = window.schedule()
    assert window.tick_at(START - timedelta(minutes=10)) == []
    assert window.tick_at(START) == [(made.id, "in_progress")]


def test_a_window_the_tick_slept_through_is_just_completed(window: Window) -> None:
    made = window.schedule()
    assert window.tick_at(END + timedelta(hours=1)) == [(made.id, "completed")]
    assert [u.status.value for u in window.notices(made.id)] == ["identified", "resolved"]


def test_completing_is_not_held_by_the_resolve_hold(window: Window) -> None:
    # Major incidents must be monitored 30 minutes before resolving; a 10-minute window ends anyway.
    made = window.schedule(severity="major", ends_at=START + timedelta(minutes=10))
    window.tick_at(START)
    assert window.tick_at(START + timedelta(minutes=25)) == [(made.id, "completed")]
    assert get_incident(window.rt, made.id).status is IncidentStatus.RESOLVED


def test_cancelling_before_the_start_tells_everyone_and_stops_the_schedule(window: Window) -> None:
    made = window.schedule()
    cancelled = cancel_maintenance(window.rt, window.runner.queue, made.id)
    window.runner.run_until_idle()

    assert (cancelled.maintenance_stage, cancelled.status) == ("cancelled", IncidentStatus.RESOLVED)
    notice = window.notices(made.id)[-1]
    assert notice.message == (
        "Scheduled maintenance 'Database upgrade' (2026-11-26 02:00 UTC to 04:00 UTC) is cancelled."
    )
    assert window.emailed(notice.id) == 3
    assert window.tick_at(START) == [] and window.tick_at(END) == []
    assert list_maintenance(window.rt, include_finished=False) == []
    assert [m.id for m in list_maintenance(window.rt)] == [made.id]


def test_a_running_or_unknown_window_cannot_be_cancelled(window: Window) -> None:
    made = window.schedule()
    window.tick_at(START)
    with pytest.raises(InvalidInput, match=f"maintenance {made.id} is in_progress"):
        cancel_maintenance(window.rt, window.runner.queue, made.id)
    other = incident(window.rt)
    for missing in (other.id, 999):
        with pytest.raises(NotFound, match=f"no maintenance {missing}"):
            cancel_maintenance(window.rt, window.runner.queue, missing)


def count(rt: Runtime) -> tuple[int, int]:
    with rt.engine.connect() as conn:
        return (
            conn.execute(select(func.count()).select_from(incidents)).scalar_one(),
            conn.execute(select(func.count()).select_from(updates)).scalar_one(),
        )


def test_bad_windows_are_refused_with_nothing_written(window: Window) -> None:
    with pytest.raises(InvalidInput, match=r"end: 2026-11-26 01:00 UTC must be after start"):
        window.schedule(ends_at=START - timedelta(hours=1))
    with pytest.raises(ValidationError, match="give a time zone"):
        window.schedule(starts_at=START.replace(tzinfo=None))
    window.clock.at = START + timedelta(minutes=1)
    with pytest.raises(InvalidInput, match="start: 2026-11-26 02:00 UTC is not in the future"):
        window.schedule()
    assert count(window.rt) == (0, 0)


def test_nothing_is_kept_when_the_notice_cannot_go_out(window: Window) -> None:
    window.rt.settings.channels[ChannelKind.EMAIL].enabled = False
    for kind in ChannelKind:
        window.rt.settings.channels[kind].enabled = False
    with pytest.raises(InvalidInput, match="no channel"):
        window.schedule()
    assert count(window.rt) == (0, 0)


def test_the_maintenance_commands(tmp_path: Path) -> None:
    assert tocsin("init", cwd=tmp_path).code == 0
    start = (datetime.now(UTC) + timedelta(days=1)).replace(second=0, microsecond=0)
    iso = start.strftime("%Y-%m-%dT%H:%MZ")
    end = (start + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%MZ")

    bad = tocsin("maintenance", "schedule", "Database upgrade", "--start", end, "--end", iso, cwd=tmp_path)
    assert bad.code != 0 and "must be after start" in bad.err and "Traceback" not in bad.err

    made = tocsin(
        "maintenance", "schedule", "Database upgrade", "--start", iso, "--end", end,
        "--component", "database", cwd=tmp_path,
    )  # fmt: skip
    assert made.code == 0, made.err
    assert "scheduled maintenance 1: Database upgrade" in made.out
    listed = tocsin("maintenance", "list", cwd=tmp_path)
    assert "Database upgrade" in listed.out and "scheduled" in listed.out

    ticked = tocsin("tick", cwd=tmp_path)
    assert ticked.code == 0 and "0 maintenance stages" in ticked.out

    cancelled = tocsin("maintenance", "cancel", "1", cwd=tmp_path)
    assert cancelled.code == 0 and "cancelled maintenance 1" in cancelled.out
    assert "cancelled" in tocsin("maintenance", "list", "--all", cwd=tmp_path).out


def test_times_on_the_command_line_need_a_time_zone() -> None:
    assert parse_moment("--start", "2026-11-26T02:00Z") == START
    with pytest.raises(InvalidInput, match="--start: give a time zone"):
        parse_moment("--start", "2026-11-26T02:00")
    with pytest.raises(InvalidInput, match="--end: 'tomorrow' is not a date and time"):
        parse_moment("--end", "tomorrow")


def test_french_subscribers_read_the_notices_in_french(window: Window) -> None:
    add_subscribers(window.rt, [person(7, locale="fr")])
    made = window.schedule(components=["database"])
    custom = window.schedule(title="Network switch swap", message="Nous changeons un commutateur.")
    window.tick_at(START)

    def french(update_id: int) -> str:
        return window.bodies(update_id)["person7@example.com"]

    scheduled, started = window.notices(made.id)
    assert (
        # Sent the day before, read in the reader's time: "tomorrow" in their language.
        "Maintenance programmée : Database upgrade. Créneau : du demain, 02:00 UTC au 04:00 UTC."
    ) in french(scheduled.id)
    assert "La maintenance programmée « Database upgrade » est en cours jusqu'à 04:00 UTC." in french(
        started.id
    )
    assert "Scheduled maintenance: Database upgrade." in window.bodies(scheduled.id)["person0@example.com"]
    written = window.notices(custom.id)[0]
    assert (
        "Nous changeons un commutateur.\n\nCréneau de maintenance : du demain, 02:00 UTC au 04:00 UTC."
    ) in french(written.id)


def subjects(window: Window, update_id: int) -> dict[str, str]:
    found = {}
    for path in (window.outbox / f"update-{update_id}" / "email").glob("*.eml"):
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        found[email.utils.parseaddr(message["To"])[1]] = str(message["Subject"])
    return found


def test_maintenance_emails_are_headed_as_planned_maintenance_not_as_an_incident(window: Window) -> None:
    add_subscribers(window.rt, [person(7, locale="fr")])
    made = window.schedule(components=["database"])
    window.tick_at(START)
    window.tick_at(END + timedelta(minutes=15))
    scheduled, started, completed = window.notices(made.id)

    assert subjects(window, scheduled.id)["person0@example.com"].startswith(
        "[Planned maintenance · Scheduled] Database upgrade"
    )
    assert subjects(window, started.id)["person0@example.com"].startswith(
        "[Planned maintenance · In progress]"
    )
    assert subjects(window, completed.id)["person0@example.com"].startswith(
        "[Planned maintenance · Completed]"
    )
    assert subjects(window, scheduled.id)["person7@example.com"].startswith(
        "[Maintenance programmée · Programmée] Database upgrade"
    )
    body = window.bodies(completed.id)["person0@example.com"]
    assert body.startswith("PLANNED MAINTENANCE · Completed\nDatabase upgrade")
    assert "This maintenance is complete." in body
    assert "incident" not in body.lower()
    assert window.bodies(scheduled.id)["person7@example.com"].startswith(
        "MAINTENANCE PROGRAMMÉE · Programmée"
    )
