"""Maintenance done right: the notices show the window (not when it was scheduled) and the affected
components once; a window that overruns is not announced complete by the clock, it can be extended,
rescheduled or finished early, each with its notice, from the CLI, the API and the console; and the
completion that follows the grace keeps the window's promise."""

from __future__ import annotations

import email
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from channels.base import ChannelKind
from dispatcher.access.tokens import Scope, create_token
from dispatcher.audience.subscribers import add_subscribers
from dispatcher.comms import maintenance
from dispatcher.comms.incidents import get_incident
from dispatcher.comms.maintenance import (
    MaintenanceDraft,
    extend_maintenance,
    finish_maintenance,
    reschedule_maintenance,
    schedule_maintenance,
)
from dispatcher.comms.tick import run_tick
from dispatcher.domain.errors import GuardrailsBlocked, InvalidInput
from dispatcher.domain.identity import Identity
from dispatcher.domain.models import ContactPoint, Incident, IncidentStatus, Subscriber, Update
from dispatcher.engine.runtime import Runtime
from dispatcher.runners.embedded import EmbeddedRunner
from dispatcher.store.queries import update_from_row
from dispatcher.store.schema import updates
from dispatcher.web.app import create_app
from tests.cli import tocsin
from tests.helpers import ManualClock

T0 = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
START = datetime(2026, 11, 26, 2, 0, tzinfo=UTC)
END = datetime(2026, 11, 26, 4, 0, tzinfo=UTC)
GRACE = timedelta(minutes=15)
CUSTOMER, STAFF = "customer@example.com", "staff@example.com"
ADA = Identity("ada")


class Story:
    def __init__(self, rt: Runtime, outbox: Path) -> None:
        self.rt, self.outbox = rt, outbox
        self.clock = ManualClock(T0)
        rt.clock = self.clock
        self.runner = EmbeddedRunner(rt)

    def schedule(self, **fields: object) -> Incident:
        values: dict[str, object] = {
            "title": "Database upgrade",
            "starts_at": START,
            "ends_at": END,
            "components": ["database", "checkout"],
        }
        values.update(fields)
        made = schedule_maintenance(self.rt, self.runner.queue, MaintenanceDraft.model_validate(values), ADA)
        self.runner.run_until_idle()
        return made

    def tick_at(self, when: datetime) -> list[tuple[int, str]]:
        self.clock.at = when
        report = run_tick(self.rt, self.runner.queue)
        self.runner.run_until_idle()
        assert report.errors == []
        return report.maintenance

    def run(self, act: Callable[..., Incident], *args: object, **kwargs: object) -> Incident:
        done = act(self.rt, self.runner.queue, *args, **kwargs)
        self.runner.run_until_idle()
        return done

    def notices(self, incident_id: int) -> list[Update]:
        with self.rt.engine.connect() as conn:
            rows = conn.execute(
                select(updates)
                .where(updates.c.incident_id == incident_id, updates.c.kind == "maintenance")
                .order_by(updates.c.id)
            ).mappings()
            return [update_from_row(r) for r in rows]

    def body(self, update_id: int, address: str = CUSTOMER) -> str:
        for path in (self.outbox / f"update-{update_id}" / "email").glob("*.eml"):
            message = email.message_from_bytes(path.read_bytes())
            if address in str(message["To"]):
                part = next(p for p in message.walk() if p.get_content_type() == "text/plain")
                payload = part.get_payload(decode=True)
                assert isinstance(payload, bytes)
                return payload.decode().replace("\r\n", "\n")
        raise AssertionError(f"no email to {address} for update {update_id}")

    def staff_mail(self) -> list[str]:
        found = []
        for path in sorted(self.outbox.glob("update-*/email/*.eml")):
            message = email.message_from_bytes(path.read_bytes())
            if STAFF in str(message["To"]):
                found.append(message.as_string())
        return found


@pytest.fixture
def story(rt: Runtime, tmp_path: Path) -> Story:
    add_subscribers(
        rt,
        [
            Subscriber(
                name="Customer", contact_points=[ContactPoint(channel=ChannelKind.EMAIL, address=CUSTOMER)]
            ),
            Subscriber(
                name="Staff",
                internal=True,
                contact_points=[ContactPoint(channel=ChannelKind.EMAIL, address=STAFF)],
            ),
        ],
    )
    return Story(rt, tmp_path / "outbox")


def test_a_notice_shows_the_window_not_when_it_was_scheduled_and_affected_once(story: Story) -> None:
    made = story.schedule()
    body = story.body(story.notices(made.id)[0].id)

    assert "Started: 2026-11-25 09:00 UTC" not in body, "the scheduling time is not when it starts"
    # Sent the day before, in the reader's time (UTC here), and said once.
    assert "Window: tomorrow, 2:00 AM UTC to 4:00 AM UTC" in body and body.count("2:00 AM") == 1
    assert body.count("Affected:") == 1 and "Affected: database, checkout" in body


def test_an_overrunning_window_is_not_announced_complete_by_the_clock(story: Story) -> None:
    made = story.schedule()
    story.tick_at(START)

    assert story.tick_at(END) == [], "not complete at the end of the window"
    overrun = [m for m in story.staff_mail() if "MAINTENANCE OVERRUN" in m]
    assert len(overrun) == 1 and f"tocsin maintenance extend {made.id}" in overrun[0]
    story.clock.at = END + timedelta(minutes=5)
    longer = story.run(
        extend_maintenance, made.id, END + timedelta(hours=1), ADA, "The index rebuild is slow."
    )

    assert longer.ends_at == END + timedelta(hours=1) and longer.maintenance_stage == "in_progress"
    extended = story.notices(made.id)[-1]
    assert extended.message == (
        "The index rebuild is slow.\n\nMaintenance window: 2026-11-26 02:00 UTC to 05:00 UTC."
    )
    assert extended.next_update_at == END + timedelta(hours=1), "the new end is the promise"
    assert story.tick_at(END + GRACE) == [] and story.tick_at(END + timedelta(minutes=59)) == []
    assert story.tick_at(END + timedelta(hours=1) + GRACE) == [(made.id, "completed")]
    assert [u.promise_state for u in story.notices(made.id)] == [None, "kept", "kept", None]


def test_completion_a_moment_late_keeps_the_promise(story: Story) -> None:
    made = story.schedule()
    story.tick_at(START)
    assert story.tick_at(END + timedelta(seconds=2)) == []
    assert story.tick_at(END + GRACE + timedelta(seconds=2)) == [(made.id, "completed")]
    started = story.notices(made.id)[1]
    assert started.next_update_at == END and started.promise_state == "kept"


def test_an_extension_made_while_the_tick_looks_wins(story: Story, monkeypatch: pytest.MonkeyPatch) -> None:
    made = story.schedule()
    story.tick_at(START)
    read_the_window = maintenance._next_stage

    def someone_extends_meanwhile(rt: Runtime, inc: Incident, now: datetime) -> str | None:
        stage = read_the_window(rt, inc, now)
        extend_maintenance(rt, story.runner.queue, inc.id, END + timedelta(hours=1), Identity("grace"))
        return stage

    monkeypatch.setattr(maintenance, "_next_stage", someone_extends_meanwhile)
    assert story.tick_at(END + GRACE) == [], "never announced complete while an extension is made"
    assert get_incident(story.rt, made.id).maintenance_stage == "in_progress"


def test_finishing_early_tells_everyone(story: Story) -> None:
    made = story.schedule()
    story.tick_at(START)
    story.clock.at = START + timedelta(minutes=40)
    done = story.run(finish_maintenance, made.id, ADA, "All done, thank you for your patience.")

    assert (done.status, done.maintenance_stage, done.resolved_at) == (
        IncidentStatus.RESOLVED,
        "completed",
        START + timedelta(minutes=40),
    )
    finished = story.notices(made.id)[-1]
    assert finished.author == "ada" and finished.status is IncidentStatus.RESOLVED
    assert (
        "All done, thank you for your patience.\n\nScheduled maintenance 'Database upgrade' is complete."
        in (story.body(finished.id))
    )
    assert story.tick_at(END + GRACE) == []
    with pytest.raises(InvalidInput, match="not running"):
        finish_maintenance(story.rt, story.runner.queue, made.id, ADA)


def test_rescheduling_moves_the_window_and_the_reminder(story: Story) -> None:
    made = story.schedule()
    later_start, later_end = START + timedelta(days=1), END + timedelta(days=1)
    moved = story.run(reschedule_maintenance, made.id, later_start, later_end, ADA)

    assert (moved.starts_at, moved.ends_at, moved.maintenance_stage) == (later_start, later_end, "scheduled")
    assert story.notices(made.id)[-1].message == (
        "Scheduled maintenance 'Database upgrade' is moved to a new window: "
        "2026-11-27 02:00 UTC to 04:00 UTC."
    )
    assert story.tick_at(START) == [], "the old start passes quietly"
    assert story.tick_at(later_start - timedelta(hours=1)) == [(made.id, "reminded")]
    assert story.tick_at(later_start) == [(made.id, "in_progress")]
    with pytest.raises(InvalidInput, match="not started can be rescheduled"):
        reschedule_maintenance(story.rt, story.runner.queue, made.id, later_start, later_end, ADA)


def test_words_written_for_a_change_are_checked(story: Story) -> None:
    made = story.schedule()
    with pytest.raises(GuardrailsBlocked, match="internal-hostname"):
        extend_maintenance(
            story.rt, story.runner.queue, made.id, END + timedelta(hours=1), ADA, "db-3.internal is slow"
        )
    assert get_incident(story.rt, made.id).ends_at == END, "nothing changed"


def test_the_api_and_the_console_change_windows(story: Story) -> None:
    made = story.schedule()
    app = create_app(lambda: story.rt)
    app.state.task_queue = lambda: story.runner.queue
    _, secret = create_token(story.rt, "ada", [Scope.PUBLISH, Scope.READ])
    headers = {"Authorization": f"Bearer {secret}"}
    with TestClient(app) as http:
        moved = http.post(
            f"/maintenance/{made.id}/reschedule",
            json={"starts_at": "2026-11-26T03:00:00Z", "ends_at": "2026-11-26T05:00:00Z"},
            headers=headers,
        )
        assert moved.status_code == 200, moved.text
        assert moved.json()["starts_at"] == "2026-11-26T03:00:00Z"
        listed = http.get("/maintenance", headers=headers).json()
        assert [w["id"] for w in listed] == [made.id]
        other = http.post(
            "/maintenance",
            json={
                "title": "Network swap",
                "starts_at": "2026-11-27T02:00:00Z",
                "ends_at": "2026-11-27T03:00:00Z",
            },
            headers=headers,
        )
        assert other.status_code == 201, other.text
        story.runner.run_until_idle()

        login = http.get("/console/login")
        csrf = login.text.split('name="csrf" value="')[1].split('"')[0]
        http.post("/console/login", data={"token": secret, "csrf": csrf}, follow_redirects=False)
        page = http.get("/console/maintenance")
        assert page.status_code == 200 and "Network swap" in page.text and 'class="extend"' in page.text
        csrf = page.text.split('name="csrf" value="')[1].split('"')[0]
        extended = http.post(
            f"/console/maintenance/{made.id}/extend",
            data={"csrf": csrf, "ends_at": "2026-11-26T06:00Z"},
            follow_redirects=False,
        )
        assert extended.status_code == 303, extended.text
        cancelled = http.post(
            f"/console/maintenance/{other.json()['id']}/cancel", data={"csrf": csrf}, follow_redirects=False
        )
        assert cancelled.status_code == 303
        app.state.console.background.join(timeout=30)
    assert get_incident(story.rt, made.id).ends_at == datetime(2026, 11, 26, 6, 0, tzinfo=UTC)
    assert get_incident(story.rt, other.json()["id"]).maintenance_stage == "cancelled"
    kinds = [u.message.split(":")[0] for u in story.notices(made.id)]
    assert len(kinds) == 3, "scheduled, rescheduled, extended: each told"


def test_the_cli_reschedules_extends_and_finishes(tmp_path: Path) -> None:
    assert tocsin("init", cwd=tmp_path).code == 0
    (tmp_path / "people.csv").write_text("name,email\nAda,ada@example.com\n")
    assert tocsin("subscribers", "import", "people.csv", cwd=tmp_path).code == 0
    start = (datetime.now(UTC) + timedelta(days=1)).replace(second=0, microsecond=0)

    def at(hours: int) -> str:
        return (start + timedelta(hours=hours)).strftime("%Y-%m-%dT%H:%MZ")

    made = tocsin(
        "maintenance", "schedule", "Database upgrade", "--start", at(0), "--end", at(1), cwd=tmp_path
    )
    assert made.code == 0, made.err
    moved = tocsin("maintenance", "reschedule", "1", "--start", at(2), "--end", at(3), cwd=tmp_path)
    assert moved.code == 0 and "rescheduled maintenance 1" in moved.out, moved.err
    longer = tocsin("maintenance", "extend", "1", "--end", at(4), cwd=tmp_path)
    assert longer.code == 0 and "it now ends" in longer.out, longer.err
    early = tocsin("maintenance", "finish", "1", cwd=tmp_path)
    assert early.code == 1 and "not running" in early.err and "Traceback" not in early.err
    assert len(list(tmp_path.glob("outbox/update-*/email/*.eml"))) == 3
