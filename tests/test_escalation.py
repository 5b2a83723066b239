"""When an incident drags on, "no news yet" stops being enough: after three holding messages in a row (or
three hours without a real public update) a missed promise sends no holding message; the owner and the
senior approver are paged, the incident is flagged in the console and the CLI, and the next public
update must say something new unless a reason is given."""

from __future__ import annotations

import email
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from channels.base import ChannelKind
from dispatcher.access.tokens import Scope, create_token
from dispatcher.audience.subscribers import add_subscribers
from dispatcher.comms.incidents import get_incident, open_incident
from dispatcher.comms.publish import get_update, publish
from dispatcher.comms.tick import TickReport, run_tick
from dispatcher.domain.errors import GuardrailsBlocked
from dispatcher.domain.models import (
    ContactPoint,
    IncidentDraft,
    IncidentStatus,
    Severity,
    Subscriber,
    Update,
    UpdateDraft,
)
from dispatcher.engine.runtime import Runtime
from dispatcher.runners.embedded import EmbeddedRunner
from dispatcher.web.app import create_app
from tests.cli import tocsin
from tests.helpers import ManualClock

T0 = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
STAFF, CUSTOMER, OWNER, SENIOR = (
    "staff@example.com",
    "customer@example.com",
    "owner@ops.example",
    "vp@ops.example",
)


@dataclass
class Drag:
    rt: Runtime
    clock: ManualClock
    runner: EmbeddedRunner
    outbox: Path
    incident_id: int = 0

    def publish(self, text: str, promise: timedelta, **fields: object) -> Update:
        draft = UpdateDraft(
            incident_id=self.incident_id,
            status=fields.pop("status", IncidentStatus.INVESTIGATING),
            message=text,
            next_update_at=self.clock.at + promise,
            author="ada",
            channels=[ChannelKind.EMAIL],
            **fields,  # type: ignore[arg-type]
        )
        upd = publish(self.rt, draft, self.runner.queue).update
        self.runner.run_until_idle()
        return upd

    def tick_at(self, when: datetime) -> TickReport:
        self.clock.at = when
        report = run_tick(self.rt, self.runner.queue)
        self.runner.run_until_idle()
        assert report.errors == []
        return report

    def mail(self, address: str) -> list[str]:
        found = []
        for path in sorted(
            self.outbox.glob("update-*/email/*.eml"), key=lambda p: int(p.parent.parent.name[7:])
        ):
            message = email.message_from_bytes(path.read_bytes())
            if address in str(message["To"]):
                part = next(p for p in message.walk() if p.get_content_type() == "text/plain")
                found.append(part.get_payload(decode=True).decode())
        return found


@pytest.fixture
def drag(rt: Runtime, tmp_path: Path) -> Drag:
    (tmp_path / "policy.toml").write_text(f'[escalation]\nsenior_approver = "{SENIOR}"\n')
    add_subscribers(
        rt,
        [
            Subscriber(
                name="Staff",
                internal=True,
                contact_points=[ContactPoint(channel=ChannelKind.EMAIL, address=STAFF)],
            ),
            Subscriber(
                name="Customer", contact_points=[ContactPoint(channel=ChannelKind.EMAIL, address=CUSTOMER)]
            ),
        ],
    )
    clock = ManualClock(T0)
    rt.clock = clock
    story = Drag(rt, clock, EmbeddedRunner(rt), tmp_path / "outbox")
    story.incident_id = open_incident(
        rt,
        IncidentDraft(
            title="Checkout failing", severity=Severity.MAJOR, components=["checkout"], owner=OWNER
        ),
    ).id
    return story


def three_holdings(drag: Drag) -> datetime:
    """A real update promising one in 30 minutes, then three missed promises: three holding messages.
    Returns when the fourth promise falls due."""
    first = drag.publish("Checkout fails for a third of customers. We are sorry.", timedelta(minutes=30))
    due = first.next_update_at
    assert due is not None
    for _ in range(3):
        assert len(drag.tick_at(due).holdings) == 1
        due = get_incident(drag.rt, drag.incident_id).next_update_at
        assert due is not None
    return due


def test_after_three_holding_messages_the_next_missed_promise_escalates(drag: Drag) -> None:
    due = three_holdings(drag)
    told = len(drag.mail(CUSTOMER))

    report = drag.tick_at(due)

    assert report.holdings == [] and report.escalations == [drag.incident_id]
    assert len(drag.mail(CUSTOMER)) == told, "no fourth holding message: it would not keep the promise"
    for address in (STAFF, OWNER, SENIOR):
        page = drag.mail(address)[-1]
        assert f"ESCALATED: incident #{drag.incident_id}" in page and "3 holding messages in a row" in page
    incident = get_incident(drag.rt, drag.incident_id)
    assert incident.escalated_at == due and incident.holding_streak == 3
    assert not drag.tick_at(due + timedelta(hours=2)).acted, "paged once; nothing more until a real update"


def test_the_next_public_update_must_say_something_new(drag: Drag) -> None:
    drag.tick_at(three_holdings(drag))

    with pytest.raises(GuardrailsBlocked, match="holding-again"):
        drag.publish(
            "We are still working on this issue. There is no new information yet. Sorry.",
            timedelta(minutes=30),
        )
    with pytest.raises(GuardrailsBlocked, match="holding-again"):
        drag.publish("No news yet, sorry.", timedelta(minutes=30))
    real = drag.publish(
        "The card processor confirmed an outage on their side; we are switching to the backup processor.",
        timedelta(minutes=30),
        status=IncidentStatus.IDENTIFIED,
    )

    incident = get_incident(drag.rt, drag.incident_id)
    assert incident.escalated_at is None and incident.holding_streak == 0
    assert get_update(drag.rt, real.id).promise_state == "open"
    assert len(drag.tick_at(real.next_update_at or T0).holdings) == 1, (
        "holding messages resume, counted afresh"
    )


def test_a_holding_text_may_go_with_a_reason(drag: Drag) -> None:
    drag.tick_at(three_holdings(drag))
    sent = drag.publish(
        "No news yet, sorry.", timedelta(minutes=30), override_reason="vendor silent, told legal"
    )
    assert sent.override_reason == "vendor silent, told legal"


def test_three_hours_without_a_real_update_escalate_too(drag: Drag, tmp_path: Path) -> None:
    (tmp_path / "policy.toml").write_text(
        f'[escalation]\nsenior_approver = "{SENIOR}"\nafter_holdings = 10\nafter = "3h"\n'
    )
    first = drag.publish("Checkout fails for a third of customers. We are sorry.", timedelta(minutes=60))
    assert len(drag.tick_at(T0 + timedelta(hours=1)).holdings) == 1
    assert len(drag.tick_at(T0 + timedelta(hours=2)).holdings) == 1

    report = drag.tick_at(T0 + timedelta(hours=3))

    assert report.escalations == [drag.incident_id] and report.holdings == []
    assert "no real public update for 3h00m" in drag.mail(SENIOR)[-1]
    assert get_update(drag.rt, first.id).promise_state == "broken"


def test_an_escalated_incident_is_flagged_in_the_console_and_the_cli(drag: Drag) -> None:
    drag.tick_at(three_holdings(drag))
    _, secret = create_token(drag.rt, "carol", [Scope.READ])
    with TestClient(create_app(lambda: drag.rt)) as http:
        login = http.get("/console/login")
        csrf = login.text.split('name="csrf" value="')[1].split('"')[0]
        http.post("/console/login", data={"token": secret, "csrf": csrf}, follow_redirects=False)
        listing = http.get("/console/incidents")
        page = http.get(f"/console/incidents/{drag.incident_id}")
        api = http.get(f"/incidents/{drag.incident_id}", headers={"Authorization": f"Bearer {secret}"})
    assert 'id="escalated"' in listing.text and "Checkout failing" in listing.text
    assert 'id="incident-flags"' in page.text and "escalated" in page.text
    assert any("escalated" in flag for flag in api.json()["attention"])
    root = drag.outbox.parent
    (root / "tocsin.toml").write_text(f'database_url = "{drag.rt.settings.database_url}"\n')
    shown = tocsin("incident", "show", str(drag.incident_id), cwd=root)
    assert shown.code == 0, shown.err
    assert "ATTENTION: escalated" in shown.out and "must say something new" in shown.out
    listed = tocsin("incident", "list", cwd=root)
    assert "escalated" in listed.out
