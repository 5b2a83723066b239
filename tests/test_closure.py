"""Everyone told hears the end: resolving an incident, by any path (the CLI, the API, the console, an
incident monitoring opened and told people about, a forced resolve), sends a resolution to every
address that received any update of it, on the channels it received them on (opt-outs respected), and
to the status page; the open promise is closed; status.json stops saying "Partial outage"."""

from __future__ import annotations

import email
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from channels.base import ChannelKind
from dispatcher.access.tokens import Scope, create_token
from dispatcher.audience.subscribers import add_subscribers
from dispatcher.comms.approval import approve
from dispatcher.comms.closure import resolve
from dispatcher.comms.incidents import get_incident, open_incident
from dispatcher.comms.lifecycle import change_status, set_owner
from dispatcher.comms.publish import publish
from dispatcher.comms.tick import run_tick
from dispatcher.config.settings import ChannelSettings
from dispatcher.domain.errors import InvalidInput
from dispatcher.domain.identity import Identity
from dispatcher.domain.models import (
    Audience,
    ContactPoint,
    IncidentDraft,
    IncidentStatus,
    Severity,
    Subscriber,
    Update,
    UpdateDraft,
)
from dispatcher.domain.texts import resolution_text
from dispatcher.engine.runtime import Runtime
from dispatcher.runners.embedded import EmbeddedRunner
from dispatcher.store.queries import update_from_row
from dispatcher.store.schema import contact_points, subscribers, updates
from dispatcher.web.app import create_app
from dispatcher.web.console.access import ConsoleState
from tests.cli import tocsin
from tests.helpers import ManualClock, RecordingQueue, hand_clock, incident, states
from tests.test_ingest_alertmanager import ALERTMANAGER_FIRING, resolved

INGEST_TOKEN = "ingest-token-closure"
CUSTOMER, WATCHER, STAFF, OWNER = (
    "customer@example.com",
    "watcher@example.com",
    "staff@example.com",
    "owner@ops.example",
)
PHONE, HOOK = "+12025550123", "https://hooks.example.com/closure"
CSRF_FIELD = re.compile(r'name="csrf" value="([^"]+)"')


@dataclass
class Story:
    """One incident told to people on every channel, then resolved by one of the paths."""

    rt: Runtime
    root: Path
    clock: ManualClock
    runner: EmbeddedRunner
    settings: dict[str, Any]
    incident_id: int = 0
    told: list[Update] = field(default_factory=list)

    def deliver(self) -> None:
        self.runner.run_until_idle(wait_up_to=15)

    def updates(self) -> list[Update]:
        with self.rt.engine.connect() as conn:
            rows = conn.execute(
                select(updates).where(updates.c.incident_id == self.incident_id).order_by(updates.c.id)
            ).mappings()
            return [update_from_row(r) for r in rows]

    def emailed(self, update_id: int) -> set[str]:
        found = set()
        for path in (self.root / "outbox" / f"update-{update_id}" / "email").glob("*.eml"):
            found.add(email.utils.parseaddr(email.message_from_bytes(path.read_bytes())["To"])[1])
        return found

    def files(self, update_id: int, channel: str) -> int:
        return len(list((self.root / "outbox" / f"update-{update_id}" / channel).glob("*.*")))

    def status_json(self) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads((self.root / "www" / "status" / "status.json").read_text())
        return loaded

    def cli(self, *args: str) -> str:
        (self.root / "tocsin.toml").write_text(_toml(self.settings))
        ran = tocsin(*args, cwd=self.root)
        assert ran.code == 0, ran.err
        return ran.out


def _toml(settings: dict[str, Any]) -> str:
    return "\n".join(
        [
            f'database_url = "{settings["database_url"]}"',
            f'outbox_dir = "{settings["outbox_dir"]}"',
            f'ingest_token = "{INGEST_TOKEN}"',
            "[channels.statuspage]",
            'providers = ["statuspage"]',
            "[providers.statuspage]",
            f'directory = "{settings["directory"]}"',
            'components = ["checkout"]',
        ]
    )


@pytest.fixture
def story(make_runtime: Callable[..., Runtime], db_url: str, tmp_path: Path) -> Iterator[Story]:
    (tmp_path / "policy.toml").write_text("[monitoring]\nmay_publish_public = true\n")
    directory = tmp_path / "www" / "status"
    rt = make_runtime(
        channels={ChannelKind.STATUSPAGE: ChannelSettings(providers=["statuspage"])},
        providers={"statuspage": {"directory": str(directory), "components": ["checkout"]}},
        ingest_token=INGEST_TOKEN,
    )
    add_subscribers(
        rt,
        [
            Subscriber(
                name="Customer",
                contact_points=[
                    ContactPoint(channel=ChannelKind.EMAIL, address=CUSTOMER),
                    ContactPoint(channel=ChannelKind.SMS, address=PHONE),
                    ContactPoint(channel=ChannelKind.WEBHOOK, address=HOOK),
                ],
            ),
            Subscriber(
                name="Watcher",
                components=["checkout"],
                contact_points=[ContactPoint(channel=ChannelKind.EMAIL, address=WATCHER)],
            ),
            Subscriber(
                name="Staff",
                internal=True,
                contact_points=[ContactPoint(channel=ChannelKind.EMAIL, address=STAFF)],
            ),
        ],
    )
    clock = hand_clock(rt)
    clock.at = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)  # the CLI resolves "now"
    settings = {"database_url": db_url, "outbox_dir": str(tmp_path / "outbox"), "directory": str(directory)}
    yield Story(rt, tmp_path, clock, EmbeddedRunner(rt), settings)


def tell_everyone(story: Story, severity: Severity, by_monitoring: bool = False) -> None:
    """Customers are told (a public update on every channel, promising the next one in 30 minutes),
    staff are reminded, and the owner outside the staff list too; then the watcher stops following
    the incident's severity: all of them were told, so all of them must hear the end."""
    rt, queue = story.rt, story.runner.queue
    if by_monitoring:
        app = create_app(lambda: rt)
        app.state.task_queue = lambda: queue
        with TestClient(app) as http:
            answer = http.post(
                "/ingest/alertmanager",
                json=ALERTMANAGER_FIRING,
                headers={"Authorization": f"Bearer {INGEST_TOKEN}"},
            )
            assert answer.status_code == 200, answer.text
            story.incident_id = answer.json()["incident_id"]
            story.deliver()
            story.clock.advance(minutes=10)
            back = http.post(
                "/ingest/alertmanager",
                json=resolved(ALERTMANAGER_FIRING),
                headers={"Authorization": f"Bearer {INGEST_TOKEN}"},
            )
            assert back.json()["action"] == "monitoring"
    else:
        inc = incident(rt, severity, ["checkout"])
        story.incident_id = inc.id
        publish(
            rt,
            UpdateDraft(
                incident_id=inc.id,
                status=IncidentStatus.INVESTIGATING,
                message="A third of checkouts fail. We are sorry. We are rolling back the 09:05 deploy.",
                next_update_at=story.clock.now() + timedelta(minutes=30),
                author="ada",
            ),
            queue,
        )
    story.deliver()
    set_owner(rt, story.incident_id, OWNER, "ada")
    promise = get_incident(rt, story.incident_id).next_update_at
    assert promise is not None
    story.clock.at = promise - timedelta(minutes=4)
    assert run_tick(rt, queue).reminders, "staff and the owner are reminded"
    story.deliver()
    with rt.engine.begin() as conn:
        conn.execute(update(subscribers).where(subscribers.c.name == "Watcher").values(min_severity_rank=2))
    story.told = story.updates()
    assert status_of(story) != "none", "the status page shows the incident"


def status_of(story: Story) -> str:
    indicator: str = story.status_json()["status"]["indicator"]
    return indicator


def resolved_by_api(story: Story, force: bool = False, reason: str | None = None) -> None:
    app = create_app(lambda: story.rt)
    app.state.task_queue = lambda: story.runner.queue
    _, secret = create_token(story.rt, "bob", [Scope.PUBLISH])
    with TestClient(app) as http:
        body: dict[str, Any] = {"status": "resolved", "force": force, "reason": reason}
        answer = http.post(
            f"/incidents/{story.incident_id}/status", json=body, headers={"Authorization": f"Bearer {secret}"}
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["status"] == "resolved"
    story.deliver()


def resolved_in_the_console(story: Story) -> None:
    _, secret = create_token(story.rt, "carol", [Scope.PUBLISH])
    with TestClient(create_app(lambda: story.rt)) as http:
        login = http.get("/console/login")
        csrf = CSRF_FIELD.search(login.text)
        assert csrf is not None
        http.post("/console/login", data={"token": secret, "csrf": csrf.group(1)}, follow_redirects=False)
        page = http.get(f"/console/incidents/{story.incident_id}")
        csrf = CSRF_FIELD.search(page.text)
        assert csrf is not None and "Resolve and tell everyone told" in page.text
        answer = http.post(
            f"/console/incidents/{story.incident_id}/resolve",
            data={"csrf": csrf.group(1), "reason": "rollback confirmed"},
            follow_redirects=False,
        )
        assert answer.status_code == 303, answer.text
        state: ConsoleState = http.app.state.console  # type: ignore[attr-defined]
        state.background.join(timeout=30)


def through_monitoring(story: Story) -> None:
    story.clock.advance(minutes=31)  # the monitoring hold of a major incident
    resolved_by_api(story)


PATHS: dict[str, tuple[Severity, bool, Callable[[Story], None]]] = {
    # A plain `tocsin incident resolve` of a minor incident (no monitoring hold).
    "cli": (Severity.MINOR, False, lambda s: s.cli("incident", "resolve", str(s.incident_id))),
    # `tocsin incident resolve 2 --force --reason "customer pressure"` while still investigating.
    "forced": (
        Severity.MAJOR,
        False,
        lambda s: s.cli(
            "incident", "resolve", str(s.incident_id), "--force", "--reason", "customer pressure"
        ),
    ),
    "api": (Severity.MAJOR, False, lambda s: resolved_by_api(s, force=True, reason="vendor confirmed")),
    "console": (Severity.MINOR, False, resolved_in_the_console),
    # Monitoring opened it, paged the on-call and told customers; its "resolved" moved it to monitoring;
    # a person resolves it after the hold.
    "ingest": (Severity.MAJOR, True, through_monitoring),
}


@pytest.mark.parametrize("path", PATHS)
def test_everyone_told_hears_the_end(story: Story, path: str) -> None:
    severity, by_monitoring, resolve_it = PATHS[path]
    tell_everyone(story, severity, by_monitoring)
    told_customers = [u for u in story.told if u.audience is not Audience.INTERNAL]

    resolve_it(story)

    inc = get_incident(story.rt, story.incident_id)
    assert inc.status is IncidentStatus.RESOLVED
    resolution = story.updates()[-1]
    assert resolution.status is IncidentStatus.RESOLVED and resolution.audience is Audience.PUBLIC
    # Every address told hears the end, on the channels it was told on:
    assert story.emailed(resolution.id) == {CUSTOMER, WATCHER, STAFF, OWNER}
    assert story.files(resolution.id, "sms") == 1
    assert story.files(resolution.id, "webhook") == 1
    assert story.files(resolution.id, "social") == 1
    assert states(story.rt, resolution.id).keys() == {"sent"}
    # The customers' promise is closed, and the status page says it is over.
    assert inc.next_update_at is None
    assert all(u.promise_state != "open" for u in story.updates())
    now = {u.id: u for u in story.updates()}
    assert told_customers and now[told_customers[-1].id].promise_state in ("kept", "broken")
    site = story.status_json()
    assert site["status"] == {"indicator": "none", "description": "All systems operational"}
    assert [i["id"] for i in site["history"]] == [story.incident_id]
    assert site["history"][0]["status"] == "resolved" and site["incidents"] == []


def test_an_opted_out_address_is_not_told_and_the_reason_stays_with_staff(story: Story) -> None:
    tell_everyone(story, Severity.MAJOR)
    with story.rt.engine.begin() as conn:
        conn.execute(update(contact_points).where(contact_points.c.address == PHONE).values(opted_out=True))

    story.cli("incident", "resolve", str(story.incident_id), "--force", "--reason", "customer pressure")

    resolution = story.updates()[-1]
    assert states(story.rt, resolution.id, ChannelKind.SMS) == {"suppressed": 1}
    assert story.files(resolution.id, "sms") == 0
    customer = (story.root / "outbox" / f"update-{resolution.id}" / "email").glob("*.eml")
    bodies = {
        email.utils.parseaddr(m["To"])[1]: m.as_string()
        for m in (email.message_from_bytes(p.read_bytes()) for p in customer)
    }
    assert "customer pressure" not in bodies[CUSTOMER], "the forced reason is for staff only"
    assert "customer pressure" in bodies[STAFF]
    assert "resolved" in bodies[CUSTOMER].lower()


def test_changing_the_status_to_resolved_by_hand_is_never_silent(rt: Runtime) -> None:
    inc = incident(rt, Severity.MINOR)
    with pytest.raises(InvalidInput, match="tells everyone who was told"):
        change_status(rt, inc.id, IncidentStatus.RESOLVED, "ada")
    assert get_incident(rt, inc.id).status is IncidentStatus.INVESTIGATING


def test_an_incident_customers_never_heard_of_ends_for_staff_only(rt: Runtime) -> None:
    inc = open_incident(rt, IncidentDraft(title="Batch jobs late", severity=Severity.MINOR))
    queue = RecordingQueue()
    done = resolve(rt, inc.id, Identity("ada"), queue)
    assert done.update.audience is Audience.INTERNAL and done.update.kind == "resolution"
    assert (
        ChannelKind.STATUSPAGE not in done.update.channels and ChannelKind.SOCIAL not in done.update.channels
    )
    assert queue.fanouts == [done.update.id]


def test_a_forced_resolve_needs_its_reason_and_keeps_four_eyes(rt: Runtime) -> None:
    inc = incident(rt, Severity.CRITICAL)
    queue = RecordingQueue()
    ada, bob = (create_token(rt, name, [Scope.PUBLISH])[0] for name in ("ada", "bob"))
    first = UpdateDraft(
        incident_id=inc.id,
        status=IncidentStatus.INVESTIGATING,
        message="Payments fail. We are sorry.",
        next_update_at=rt.clock.now() + timedelta(minutes=30),
        author="ada",
        author_token_id=ada.id,
    )
    told = approve(rt, publish(rt, first, queue).update.id, Identity("bob", bob.id, "bob"), queue)
    with pytest.raises(InvalidInput, match="reason"):
        resolve(rt, inc.id, Identity("ada"), queue, force=True)
    with pytest.raises(InvalidInput, match="own texts wait for approval"):
        resolve(rt, inc.id, Identity("ada"), queue, force=True, reason="x", message="All fixed, sorry.")
    assert get_incident(rt, inc.id).status is IncidentStatus.INVESTIGATING
    assert queue.fanouts == [told.id], "nothing more was sent"


def test_the_resolution_text_is_in_each_readers_language(rt: Runtime) -> None:
    inc = incident(rt, Severity.MINOR, ["checkout"])
    policy = rt.policy.policy
    assert resolution_text(policy, inc, "en") == (
        "This incident is resolved and everything works normally again (checkout). "
        "We are sorry for the disruption."
    )
    assert resolution_text(policy, inc, "fr-CA").startswith("Cet incident est résolu")
    bare = open_incident(rt, IncidentDraft(title="Slow pages", severity=Severity.MINOR))
    assert "(all services)" in resolution_text(policy, bare, "en")


def test_a_staff_only_update_cannot_end_an_incident_customers_were_told_about(rt: Runtime) -> None:
    inc = incident(rt, Severity.MINOR)
    queue = RecordingQueue()
    publish(
        rt,
        UpdateDraft(
            incident_id=inc.id,
            status=IncidentStatus.INVESTIGATING,
            message="Checkout fails for some customers. We are sorry.",
            next_update_at=rt.clock.now() + timedelta(minutes=30),
        ),
        queue,
    )
    staff_only = UpdateDraft(
        incident_id=inc.id,
        status=IncidentStatus.RESOLVED,
        message="Fixed; root cause in the wiki.",
        audience=Audience.INTERNAL,
    )
    with pytest.raises(InvalidInput, match="its end goes to them too"):
        publish(rt, staff_only, queue)
    assert get_incident(rt, inc.id).status is IncidentStatus.INVESTIGATING
