"""Given subscribers, when an update is published, then each owed address gets it exactly once."""

from __future__ import annotations

import email
import json
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from pydantic import ValidationError
from sqlalchemy import func, select

from channels.base import ChannelKind
from dispatcher.audience.subscribers import add_subscribers
from dispatcher.comms.publish import publish
from dispatcher.config.settings import ChannelSettings
from dispatcher.domain.errors import InvalidInput, NotFound
from dispatcher.domain.models import Audience, IncidentStatus, Severity
from dispatcher.engine.delivery import deliver_batch
from dispatcher.engine.fanout import fan_out
from dispatcher.engine.runtime import Runtime
from dispatcher.engine.task_queue import BatchRef
from dispatcher.store.schema import deliveries, updates
from tests.helpers import RecordingQueue, draft, incident, person, publish_and_deliver, states, subscribe


def files(root: Path, update_id: int, channel: str) -> list[Path]:
    return sorted((root / f"update-{update_id}" / channel).glob("*.*"))


def test_every_subscriber_gets_the_update_once_on_every_channel(rt: Runtime, tmp_path: Path) -> None:
    subscribe(rt, 25, sms=True, webhook="https://hooks.example.com")
    inc = incident(rt)

    published = publish_and_deliver(rt, draft(inc, "Checkout is failing for some customers. We are sorry."))

    uid = published.update.id
    emails = files(tmp_path / "outbox", uid, "email")
    assert len(emails) == 25
    recipients = sorted(email.message_from_bytes(p.read_bytes())["To"] for p in emails)
    assert recipients == sorted(
        f"Person {i} <person{i}@example.com>" for i in range(25)
    ) or recipients == sorted(f"person{i}@example.com" for i in range(25))
    assert len(files(tmp_path / "outbox", uid, "sms")) == 25
    assert len(files(tmp_path / "outbox", uid, "webhook")) == 25
    social = files(tmp_path / "outbox", uid, "social")
    assert len(social) == 1, "broadcast channels post once per update"
    assert "Checkout is failing" in json.loads(social[0].read_text())["text"]
    assert states(rt, uid) == {"sent": 76}


def test_same_idempotency_key_returns_the_same_update_and_sends_nothing_twice(
    rt: Runtime, tmp_path: Path
) -> None:
    subscribe(rt, 5)
    inc = incident(rt)
    first = publish_and_deliver(rt, draft(inc, idempotency_key="deploy-42", channels=[ChannelKind.EMAIL]))
    again = publish_and_deliver(rt, draft(inc, idempotency_key="deploy-42", channels=[ChannelKind.EMAIL]))

    assert first.created and not again.created
    assert again.update.id == first.update.id
    with rt.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(updates)).scalar_one() == 1
        assert conn.execute(select(func.count()).select_from(deliveries)).scalar_one() == 5
    assert len(files(tmp_path / "outbox", first.update.id, "email")) == 5


def test_reusing_a_key_for_a_different_message_is_refused(rt: Runtime) -> None:
    inc = incident(rt)
    publish_and_deliver(rt, draft(inc, "First message", idempotency_key="k1"))
    with pytest.raises(InvalidInput, match="idempotency_key"):
        publish_and_deliver(rt, draft(inc, "Another message", idempotency_key="k1"))


def test_bad_updates_are_refused_with_nothing_written(rt: Runtime) -> None:
    inc = incident(rt)
    queue = RecordingQueue()
    with pytest.raises(NotFound, match="no incident 999"):
        publish(rt, draft(inc).model_copy(update={"incident_id": 999}), queue)
    past = rt.clock.now().replace(year=2020)
    with pytest.raises(InvalidInput, match="next_update_at"):
        publish(rt, draft(inc, next_update_at=past), queue)
    with pytest.raises(ValidationError, match="message"):
        draft(inc, "")
    with rt.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(updates)).scalar_one() == 0
    assert queue.fanouts == []


def test_a_published_update_cannot_be_changed(rt: Runtime) -> None:
    published = publish_and_deliver(rt, draft(incident(rt)))
    with pytest.raises(ValidationError):
        published.update.message = "rewritten"  # type: ignore[misc]


def test_fan_out_writes_rows_in_batches_and_submits_one_task_per_batch(
    make_runtime: Callable[..., Runtime],
) -> None:
    rt = make_runtime(fanout_page_size=4, channels={ChannelKind.EMAIL: ChannelSettings(batch_size=7)})
    subscribe(rt, 20)
    queue = RecordingQueue()
    published = publish(rt, draft(incident(rt), channels=[ChannelKind.EMAIL]), queue)
    assert queue.fanouts == [published.update.id]

    summary = fan_out(rt, published.update.id, queue)

    assert summary.rows[ChannelKind.EMAIL] == 20
    assert [ref.batch for ref, _ in queue.batches] == [0, 1, 2]
    with rt.engine.connect() as conn:
        sizes = dict(
            conn.execute(select(deliveries.c.batch, func.count()).group_by(deliveries.c.batch)).all()
        )
    assert sizes == {0: 7, 1: 7, 2: 6}
    # Fanning out again changes nothing: the rows are unique per (update, channel, address).
    fan_out(rt, published.update.id, queue)
    assert states(rt, published.update.id) == {"queued": 20}


def test_audience_follows_preferences(rt: Runtime, tmp_path: Path) -> None:
    add_subscribers(
        rt,
        [
            person(1, internal=True),
            person(2, components=["billing"]),
            person(3, components=["checkout"]),
            person(4, min_severity=Severity.CRITICAL),
            person(5),
        ],
    )
    inc = incident(rt, severity=Severity.MAJOR, components=["checkout"])

    public = publish_and_deliver(rt, draft(inc, channels=[ChannelKind.EMAIL]))
    internal = publish_and_deliver(
        rt,
        draft(inc, "Staff: rollback in progress", audience=Audience.INTERNAL, channels=[ChannelKind.EMAIL]),
    )

    def addressees(update_id: int) -> set[str]:
        with rt.engine.connect() as conn:
            return set(
                conn.execute(
                    select(deliveries.c.address).where(deliveries.c.update_id == update_id)
                ).scalars()
            )

    assert addressees(public.update.id) == {
        "person1@example.com",
        "person3@example.com",
        "person5@example.com",
    }
    assert addressees(internal.update.id) == {"person1@example.com"}


def test_internal_updates_never_go_to_broadcast_channels(rt: Runtime) -> None:
    published = publish_and_deliver(rt, draft(incident(rt), audience=Audience.INTERNAL))
    assert ChannelKind.SOCIAL not in published.update.channels


def test_opted_out_addresses_are_suppressed_not_sent(rt: Runtime, tmp_path: Path) -> None:
    people = [person(1), person(2)]
    people[1].contact_points[0].opted_out = True
    add_subscribers(rt, people)
    published = publish_and_deliver(rt, draft(incident(rt), channels=[ChannelKind.EMAIL]))
    assert states(rt, published.update.id) == {"sent": 1, "suppressed": 1}
    assert len(files(tmp_path / "outbox", published.update.id, "email")) == 1


def test_two_workers_delivering_the_same_batch_send_each_row_once(rt: Runtime, tmp_path: Path) -> None:
    subscribe(rt, 300)
    queue = RecordingQueue()
    published = publish(rt, draft(incident(rt), channels=[ChannelKind.EMAIL]), queue)
    fan_out(rt, published.update.id, queue)
    ref = BatchRef(published.update.id, ChannelKind.EMAIL, 0)
    outcomes = []

    def work() -> None:
        outcomes.append(deliver_batch(rt, ref))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert sum(o.sent for o in outcomes) == 300
    assert sorted(o.claimed for o in outcomes)[-1] == 300, "one worker claimed the whole batch"
    with rt.engine.connect() as conn:
        attempts = conn.execute(select(func.max(deliveries.c.attempts))).scalar_one()
    assert attempts == 1
    assert states(rt, published.update.id) == {"sent": 300}


def test_status_moves_the_incident(rt: Runtime) -> None:
    inc = incident(rt)
    publish_and_deliver(rt, draft(inc, status=IncidentStatus.IDENTIFIED))
    from dispatcher.comms.incidents import get_incident

    assert get_incident(rt, inc.id).status is IncidentStatus.IDENTIFIED
