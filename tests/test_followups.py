"""Given a promised next update, Tocsin reminds staff before it is due and, when it passes with no news,
tells people so (in their language) and promises again: "no news yet" beats silence."""

from __future__ import annotations

import email
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from channels.base import ChannelKind
from dispatcher.audience.subscribers import add_subscribers
from dispatcher.comms.followups import OWNER_BATCH
from dispatcher.comms.incidents import get_incident
from dispatcher.comms.lifecycle import set_owner
from dispatcher.comms.publish import get_update, publish
from dispatcher.comms.tick import TickReport, run_tick
from dispatcher.domain.models import Audience, Incident, IncidentStatus, Severity, Subscriber, Update
from dispatcher.engine.runtime import Runtime
from dispatcher.runners.embedded import EmbeddedRunner
from dispatcher.store.schema import deliveries, incident_events, incidents, updates
from tests.helpers import TimedStage, draft, incident, person

T0 = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
EMAIL = [ChannelKind.EMAIL]


class Story(TimedStage):
    """A runtime at a time we move by hand, an embedded runner that delivers what is published."""

    def at(self, when: datetime) -> None:
        self.clock.at = when

    def publish(self, inc: Incident, text: str, promise: timedelta | None, **fields: object) -> Update:
        fields.setdefault("channels", EMAIL)
        next_at = None if promise is None else self.clock.at + promise
        upd = publish(self.rt, draft(inc, text, next_update_at=next_at, **fields), self.runner.queue).update
        self.runner.run_until_idle()
        return upd

    def tick(self) -> TickReport:
        report = run_tick(self.rt, self.runner.queue)
        self.runner.run_until_idle()
        assert report.errors == []
        return report

    def inbox(self, update_id: int) -> dict[str, str]:
        """Recipient address -> plain-text body of what the email channel sent for ``update_id``."""
        found = {}
        for path in sorted((self.outbox / f"update-{update_id}" / "email").glob("*.eml")):
            message = email.message_from_bytes(path.read_bytes())
            part = next(p for p in message.walk() if p.get_content_type() == "text/plain")
            address = email.utils.parseaddr(message["To"])[1]
            found[address] = part.get_payload(decode=True).decode()
        return found


@pytest.fixture
def story(rt: Runtime, tmp_path: Path) -> Story:
    add_subscribers(
        rt,
        [
            person(1),
            person(2, locale="fr"),
            person(3, internal=True, external_id="staff-3"),
        ],
    )
    return Story(rt, tmp_path / "outbox", T0)


def kinds(rt: Runtime, incident_id: int) -> list[str]:
    with rt.engine.connect() as conn:
        return list(
            conn.execute(
                select(updates.c.kind).where(updates.c.incident_id == incident_id).order_by(updates.c.id)
            ).scalars()
        )


def test_staff_are_reminded_five_minutes_before_the_promise_once(story: Story) -> None:
    inc = incident(story.rt)
    first = story.publish(inc, "Checkout is failing. We are sorry.", timedelta(minutes=30))
    due = T0 + timedelta(minutes=30)

    story.at(due - timedelta(minutes=6))
    assert not story.tick().acted

    story.at(due - timedelta(minutes=5))
    report = story.tick()
    assert len(report.reminders) == 1 and not report.holdings
    reminder = get_update(story.rt, report.reminders[0])
    assert (reminder.kind, reminder.author, reminder.audience) == ("reminder", "tocsin", Audience.INTERNAL)
    assert reminder.message == (
        f"Update for incident #{inc.id} 'Checkout failing' is due by 09:30 UTC; "
        "the last public update was at 09:00 UTC."
    )
    assert list(story.inbox(reminder.id)) == ["person3@example.com"], "staff only"
    assert get_incident(story.rt, inc.id).promise_reminded_at == due - timedelta(minutes=5)

    for minutes in (4, 1):
        story.at(due - timedelta(minutes=minutes))
        assert not story.tick().acted, "one reminder per promise"
    assert kinds(story.rt, inc.id) == ["update", "reminder"]
    assert get_update(story.rt, first.id).promise_state == "open"


def test_a_missed_promise_sends_the_holding_message_and_promises_again(story: Story) -> None:
    inc = incident(story.rt)  # major: cadence 60 minutes
    first = story.publish(inc, "Checkout is failing. We are sorry.", timedelta(minutes=30))
    story.publish(inc, "Staff note: rollback started.", None, audience=Audience.INTERNAL)
    due = T0 + timedelta(minutes=30)

    story.at(due)
    report = story.tick()

    assert len(report.holdings) == 1
    holding = get_update(story.rt, report.holdings[0])
    assert (holding.kind, holding.author, holding.audience) == ("holding", "tocsin", Audience.PUBLIC)
    assert holding.status is IncidentStatus.INVESTIGATING
    assert holding.next_update_at == due + timedelta(hours=1)
    assert holding.channels == EMAIL, "the same audience and channels as the last public update"
    assert holding.message.startswith("We are still working on this issue.")
    # Words only: each channel's layout states the new promise, in each reader's time.
    assert holding.message.endswith("We are sorry for the disruption.")
    assert get_incident(story.rt, inc.id).next_update_at == due + timedelta(hours=1)
    assert get_update(story.rt, first.id).promise_state == "broken"
    assert holding.promise_state == "open"
    assert sorted(story.inbox(holding.id)) == [f"person{i}@example.com" for i in (1, 2, 3)]
    with story.rt.engine.connect() as conn:
        events = conn.execute(
            select(incident_events.c.kind, incident_events.c.update_id).where(
                incident_events.c.incident_id == inc.id, incident_events.c.kind == "holding_sent"
            )
        ).all()
    assert [tuple(e) for e in events] == [("holding_sent", holding.id)]

    assert not story.tick().acted, "the same missed promise is answered once"


def test_a_french_subscriber_gets_the_french_holding_message(story: Story) -> None:
    inc = incident(story.rt)
    story.publish(inc, "Checkout is failing. We are sorry.", timedelta(minutes=30))

    story.at(T0 + timedelta(minutes=31))
    holding = story.tick().holdings[0]

    inbox = story.inbox(holding)
    assert "Nous travaillons toujours sur ce problème." in inbox["person2@example.com"]
    assert "Prochaine mise à jour avant aujourd'hui, 10:31 UTC." in inbox["person2@example.com"]
    assert "We are still working" not in inbox["person2@example.com"]
    assert "We are still working on this issue." in inbox["person1@example.com"]
    assert "Next update by today, 10:31 AM UTC." in inbox["person1@example.com"]


def test_three_missed_promises_give_three_reminders_and_three_holding_messages(story: Story) -> None:
    inc = incident(story.rt)
    story.publish(inc, "Checkout is failing. We are sorry.", timedelta(minutes=30))
    due = T0 + timedelta(minutes=30)
    holdings = []
    for _ in range(3):
        story.at(due - timedelta(minutes=5))
        assert len(story.tick().reminders) == 1
        story.at(due)
        report = story.tick()
        assert len(report.holdings) == 1 and not report.reminders
        holdings.append(get_update(story.rt, report.holdings[0]))
        due = due + timedelta(hours=1)
        assert get_incident(story.rt, inc.id).next_update_at == due

    assert [h.next_update_at for h in holdings] == [T0 + timedelta(minutes=30, hours=n) for n in (1, 2, 3)]
    assert [get_update(story.rt, h.id).promise_state for h in holdings] == ["broken", "broken", "open"]
    assert kinds(story.rt, inc.id) == ["update"] + ["reminder", "holding"] * 3


def test_a_real_update_before_the_promise_means_no_holding_message(story: Story) -> None:
    inc = incident(story.rt)
    first = story.publish(inc, "Checkout is failing. We are sorry.", timedelta(minutes=30))
    story.at(T0 + timedelta(minutes=20))
    second = story.publish(
        inc, "Cause found: the 09:05 deploy.", timedelta(minutes=30), status=IncidentStatus.IDENTIFIED
    )

    story.at(T0 + timedelta(minutes=30))
    assert not story.tick().acted
    story.at(T0 + timedelta(minutes=44))
    assert not story.tick().acted
    assert get_update(story.rt, first.id).promise_state == "kept"
    assert get_update(story.rt, second.id).promise_state == "open"

    story.at(T0 + timedelta(minutes=50))
    assert get_update(story.rt, story.tick().holdings[0]).status is IncidentStatus.IDENTIFIED


def test_resolved_incidents_get_nothing(story: Story) -> None:
    inc = incident(story.rt, severity=Severity.MINOR)  # no resolve hold
    story.publish(inc, "Checkout is failing. We are sorry.", timedelta(minutes=30))
    story.publish(inc, "Fixed. Sorry for the trouble.", None, status=IncidentStatus.RESOLVED)
    with story.rt.engine.begin() as conn:  # even a stale promise left on a resolved incident
        conn.execute(
            update(incidents)
            .where(incidents.c.id == inc.id)
            .values(next_update_at=T0 + timedelta(minutes=30))
        )
    for minutes in (25, 30, 300):
        story.at(T0 + timedelta(minutes=minutes))
        assert not story.tick().acted
    assert kinds(story.rt, inc.id) == ["update", "update"]


def test_an_owner_outside_the_staff_list_is_reminded_by_email(story: Story) -> None:
    inc = incident(story.rt)
    set_owner(story.rt, inc.id, "Boss@Example.com", actor="lead")
    story.publish(inc, "Checkout is failing. We are sorry.", timedelta(minutes=30))

    story.at(T0 + timedelta(minutes=25))
    reminder = story.tick().reminders[0]

    assert sorted(story.inbox(reminder)) == ["boss@example.com", "person3@example.com"]
    assert "Owner: Boss@Example.com." in get_update(story.rt, reminder).message
    with story.rt.engine.connect() as conn:
        batch = conn.execute(
            select(deliveries.c.batch, deliveries.c.state).where(
                deliveries.c.update_id == reminder, deliveries.c.address == "boss@example.com"
            )
        ).one()
    assert tuple(batch) == (OWNER_BATCH, "sent")


def test_an_owner_named_by_a_customer_id_is_reminded_at_their_email(story: Story) -> None:
    add_subscribers(story.rt, [person(8, external_id="acct-8")])
    inc = incident(story.rt)
    set_owner(story.rt, inc.id, "acct-8", actor="lead")
    story.publish(inc, "Checkout is failing. We are sorry.", timedelta(minutes=30))

    story.at(T0 + timedelta(minutes=25))
    reminder = story.tick().reminders[0]

    assert sorted(story.inbox(reminder)) == ["person3@example.com", "person8@example.com"]


@pytest.mark.parametrize("owner", ["staff-3", "PERSON3@example.com"])
def test_an_owner_on_the_staff_list_gets_the_reminder_once(story: Story, owner: str) -> None:
    inc = incident(story.rt)
    set_owner(story.rt, inc.id, owner, actor="lead")
    story.publish(inc, "Checkout is failing. We are sorry.", timedelta(minutes=30))

    story.at(T0 + timedelta(minutes=25))
    reminder = story.tick().reminders[0]

    assert list(story.inbox(reminder)) == ["person3@example.com"]


def test_ticks_running_at_the_same_time_answer_a_missed_promise_once(
    story: Story, make_runtime: Callable[..., Runtime]
) -> None:
    inc = incident(story.rt)
    story.publish(inc, "Checkout is failing. We are sorry.", timedelta(minutes=30))
    story.at(T0 + timedelta(minutes=30))
    others = []
    for _ in range(4):  # four processes, each with its own runtime and queue
        other = make_runtime()
        other.clock = story.clock
        others.append((other, EmbeddedRunner(other).queue))
    start = threading.Barrier(len(others))
    reports: list[TickReport] = []

    def tick(rt: Runtime, queue: object) -> None:
        start.wait()
        reports.append(run_tick(rt, queue))  # type: ignore[arg-type]

    threads = [threading.Thread(target=tick, args=pair) for pair in others]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert all(r.errors == [] for r in reports)
    assert sum(len(r.holdings) for r in reports) == 1
    assert kinds(story.rt, inc.id) == ["update", "holding"]


def test_subscribers_of_a_missed_promise_get_the_holding_message_in_their_own_channels(
    story: Story,
) -> None:
    add_subscribers(story.rt, [Subscriber(**person(9, sms=True).model_dump())])
    inc = incident(story.rt)
    story.publish(inc, "Checkout is failing. We are sorry.", timedelta(minutes=30), channels=None)

    story.at(T0 + timedelta(minutes=30))
    holding = get_update(story.rt, story.tick().holdings[0])

    assert ChannelKind.SMS in holding.channels and ChannelKind.EMAIL in holding.channels
    sms = sorted((story.outbox / f"update-{holding.id}" / "sms").glob("*.json"))
    assert len(sms) == 1 and "Next update by 10:30 AM UTC" in sms[0].read_text()
