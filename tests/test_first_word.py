"""The first word: an open incident with nothing said to customers within its severity's budget pages
its owner and staff, then (at twice the budget) the escalation contacts; an update waiting for approval
nudges the approvers; the pre-approved first notice goes out with one command and never waits for a
second person; how long the first word took is on the timeline and in the metrics."""

from __future__ import annotations

import email
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from channels.base import ChannelKind
from dispatcher.access.tokens import Scope, create_token
from dispatcher.audience.subscribers import add_subscribers
from dispatcher.comms.incidents import get_incident, open_incident
from dispatcher.comms.lifecycle import timeline
from dispatcher.comms.publish import publish
from dispatcher.comms.tick import TickReport, run_tick
from dispatcher.domain.models import (
    ContactPoint,
    IncidentDraft,
    IncidentStatus,
    Severity,
    Subscriber,
    UpdateDraft,
    UpdateState,
)
from dispatcher.engine.runtime import Runtime
from dispatcher.reporting.metrics import ledger_registry
from dispatcher.runners.embedded import EmbeddedRunner
from dispatcher.store.schema import updates
from dispatcher.web.app import create_app
from tests.cli import tocsin
from tests.helpers import ManualClock

T0 = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
STAFF, CUSTOMER, OWNER, CTO = (
    "staff@example.com",
    "customer@example.com",
    "owner@ops.example",
    "cto@ops.example",
)
POLICY = f'[escalation]\ncontacts = ["{CTO}"]\n'


@dataclass
class Watch:
    rt: Runtime
    clock: ManualClock
    runner: EmbeddedRunner
    outbox: Path

    def tick_at(self, minutes: float) -> TickReport:
        self.clock.at = T0 + timedelta(minutes=minutes)
        report = run_tick(self.rt, self.runner.queue)
        # Two messages to one address at once go out in order: the later one waits a moment.
        self.runner.run_until_idle(wait_up_to=5)
        assert report.errors == []
        return report

    def mail(self, address: str) -> list[str]:
        """Plain-text bodies of every email sent to ``address``, oldest first."""
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
def watch(rt: Runtime, tmp_path: Path) -> Watch:
    (tmp_path / "policy.toml").write_text(POLICY)
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
    return Watch(rt, clock, EmbeddedRunner(rt), tmp_path / "outbox")


def opened(watch: Watch, severity: Severity) -> int:
    draft = IncidentDraft(title="Checkout failing", severity=severity, components=["checkout"], owner=OWNER)
    return open_incident(watch.rt, draft).id


def test_no_public_word_within_the_budget_pages_the_owner_and_staff_then_the_escalation_contacts(
    watch: Watch,
) -> None:
    inc = opened(watch, Severity.MAJOR)  # built-in budget: 20 minutes

    assert not watch.tick_at(19).acted and watch.mail(STAFF) == []
    watch.tick_at(20)
    for address in (STAFF, OWNER):
        [page] = watch.mail(address)
        assert f"NO PUBLIC WORD: incident #{inc}" in page and "customers have not been told" in page
        assert f"tocsin incident first-notice {inc}" in page
    assert watch.mail(CUSTOMER) == [] and watch.mail(CTO) == []
    assert not watch.tick_at(30).acted, "paged once"

    watch.tick_at(40)  # twice the budget
    [escalated] = watch.mail(CTO)
    assert f"ESCALATED: incident #{inc}" in escalated and "no public word for 40m" in escalated
    assert len(watch.mail(STAFF)) == 2 and watch.mail(CUSTOMER) == []
    assert not watch.tick_at(60).acted


def test_a_critical_first_update_waiting_for_approval_nudges_the_approvers(watch: Watch) -> None:
    inc = opened(watch, Severity.CRITICAL)  # budget 10 minutes; public updates need a second person
    ada, _ = create_token(watch.rt, "ada", [Scope.PUBLISH])
    waiting = publish(
        watch.rt,
        UpdateDraft(
            incident_id=inc,
            status=IncidentStatus.INVESTIGATING,
            message="Payments fail for some cards. We are sorry.",
            next_update_at=T0 + timedelta(minutes=30),
            author="ada",
            author_token_id=ada.id,
        ),
        watch.runner.queue,
    ).update
    assert waiting.state is UpdateState.PENDING_APPROVAL

    report = watch.tick_at(10)

    assert report.approval_nudges == [waiting.id] and report.first_word == [inc]
    # One page names both: nobody was told, and who must approve what.
    for address in (STAFF, OWNER, CTO):
        [paged] = watch.mail(address)
        assert "NO PUBLIC WORD" in paged and f"wait for approval: `tocsin approve {waiting.id}`" in paged
    assert watch.mail(CUSTOMER) == []
    assert watch.tick_at(15).approval_nudges == [], "once per update"


def test_an_update_waiting_too_long_for_approval_nudges_the_approvers(watch: Watch) -> None:
    inc = opened(watch, Severity.CRITICAL)
    ada, _ = create_token(watch.rt, "ada", [Scope.PUBLISH])
    watch.tick_at(10)  # no word yet: staff and the owner are paged
    watch.clock.at = T0 + timedelta(minutes=11)
    waiting = publish(
        watch.rt,
        UpdateDraft(
            incident_id=inc,
            status=IncidentStatus.INVESTIGATING,
            message="Payments fail for some cards. We are sorry.",
            next_update_at=T0 + timedelta(minutes=40),
            author="ada",
            author_token_id=ada.id,
        ),
        watch.runner.queue,
    ).update

    assert watch.tick_at(20).approval_nudges == []
    report = watch.tick_at(21)  # waited 10 minutes (escalation.approval_nudge_after)

    assert report.approval_nudges == [waiting.id]
    for address in (STAFF, CTO):
        nudge = watch.mail(address)[-1]
        assert (
            f"WAITING FOR APPROVAL: update {waiting.id}" in nudge and f"tocsin approve {waiting.id}" in nudge
        )
        assert "has waited 10m" in nudge
    assert watch.mail(CUSTOMER) == []
    assert watch.tick_at(30).approval_nudges == [], "once per update"


def test_the_first_notice_goes_out_at_once_without_approval_and_is_timed(watch: Watch) -> None:
    inc = opened(watch, Severity.CRITICAL)
    watch.clock.at = T0 + timedelta(minutes=7)
    app = create_app(lambda: watch.rt)
    app.state.task_queue = lambda: watch.runner.queue
    _, secret = create_token(watch.rt, "grace", [Scope.PUBLISH])
    with TestClient(app) as http:
        sent = http.post(f"/incidents/{inc}/first-notice", headers={"Authorization": f"Bearer {secret}"})
        watch.runner.run_until_idle()
        again = http.post(f"/incidents/{inc}/first-notice", headers={"Authorization": f"Bearer {secret}"})

    assert sent.status_code == 200, sent.text
    notice = sent.json()["update"]
    assert (
        notice["state"] == "pending" and notice["kind"] == "first_notice" and notice["author"] == "api:grace"
    )
    assert again.json() == {**again.json(), "created": False} and again.json()["update"]["id"] == notice["id"]
    [told] = watch.mail(CUSTOMER)
    assert "We are aware of a problem with checkout and are investigating." in told
    assert "Next update by today, 9:37 AM UTC." in told and told.count("Next update by") == 1
    incident = get_incident(watch.rt, inc)
    assert incident.first_word_at == T0 + timedelta(minutes=7)
    first = [e for e in timeline(watch.rt, inc) if e.kind == "first_word"]
    assert first and first[0].reason == "customers first told 7m after opening"
    assert not watch.tick_at(10).first_word, "the first word went out in time"
    scraped = _histogram(watch.rt)
    assert scraped["count"] == 1 and scraped["sum"] == 420.0


def _histogram(rt: Runtime) -> dict[str, float]:
    registry = ledger_registry(lambda: rt)
    found = {}
    for family in registry.collect():
        if family.name == "tocsin_time_to_first_public_update_seconds":
            for sample in family.samples:
                if sample.name.endswith("_count"):
                    found["count"] = sample.value
                if sample.name.endswith("_sum"):
                    found["sum"] = sample.value
    return found


def test_the_policy_may_send_the_first_notice_by_itself(watch: Watch, tmp_path: Path) -> None:
    (tmp_path / "policy.toml").write_text(
        POLICY
        + '[severity.critical]\ncadence = "30m"\nneeds_approval = true\n'
        + '[severity.major]\ncadence = "1h"\n'
        + '[severity.minor]\ncadence = "2h"\nauto_first_notice = true\n'
    )
    inc = opened(watch, Severity.MINOR)

    report = watch.tick_at(60)

    assert len(report.first_notices) == 1 and report.first_word == [inc]
    [told] = watch.mail(CUSTOMER)
    assert "We are aware of a problem with checkout" in told and "Next update by today, 12:00 PM UTC." in told
    assert "Tocsin sent the pre-approved first notice" in watch.mail(STAFF)[-1]


def test_the_cli_sends_the_first_notice_with_one_command(tmp_path: Path) -> None:
    assert tocsin("init", cwd=tmp_path).code == 0
    (tmp_path / "people.csv").write_text("name,email\nAda,ada@example.com\n")
    assert tocsin("subscribers", "import", "people.csv", cwd=tmp_path).code == 0
    tocsin(
        "incident",
        "open",
        "Payments failing",
        "--severity",
        "critical",
        "--component",
        "payments",
        cwd=tmp_path,
    )

    sent = tocsin("incident", "first-notice", "1", cwd=tmp_path)

    assert sent.code == 0, sent.err
    assert "first notice sent as update upd-1" in sent.out
    [mail] = list(tmp_path.glob("outbox/update-1/email/*.eml"))
    assert "We are aware of a problem with payments" in mail.read_text()
    shown = tocsin("incident", "show", "1", cwd=tmp_path)
    assert re.search(r"customers first told: \d+s after opening", shown.out), shown.out
    again = tocsin("incident", "first-notice", "1", cwd=tmp_path)
    assert again.code == 0 and "went out already as update upd-1" in again.out


def test_a_leaking_title_stops_the_first_notice_until_a_reason_is_given(watch: Watch) -> None:
    inc = open_incident(
        watch.rt,
        IncidentDraft(title="pg-primary-1 is down", severity=Severity.MAJOR),
        override_reason="raw alert",
    )
    app = create_app(lambda: watch.rt)
    app.state.task_queue = lambda: watch.runner.queue
    _, secret = create_token(watch.rt, "grace", [Scope.PUBLISH])
    with TestClient(app) as http:
        headers = {"Authorization": f"Bearer {secret}"}
        refused = http.post(f"/incidents/{inc.id}/first-notice", headers=headers)
        assert refused.status_code == 409 and refused.json()["errors"][0]["field"] == "title"
        sent = http.post(
            f"/incidents/{inc.id}/first-notice",
            json={"override_reason": "the host is named on purpose"},
            headers=headers,
        )
        assert sent.status_code == 200, sent.text
    with watch.rt.engine.connect() as conn:
        reason = conn.execute(select(updates.c.override_reason)).scalar_one()
    assert reason == "the host is named on purpose"
