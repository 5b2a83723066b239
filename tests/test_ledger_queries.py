"""Dead letters, what is owed, who has not received an update and why, and re-driving failures by hand.

Runs on SQLite and PostgreSQL. Failures are real: webhook endpoints on a local receiver answer 410 Gone,
the adapter records them as permanent failures, and fixing the endpoint then lets a re-drive deliver.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import select

from channels.base import ChannelKind
from channels.webhook import WebhookOptions
from dispatcher.audience.provider_events import record_provider_status, set_opt_out
from dispatcher.comms.publish import publish
from dispatcher.config.settings import ChannelSettings
from dispatcher.domain.errors import NotFound
from dispatcher.domain.models import DeliveryState, IncidentStatus
from dispatcher.engine.claims import claim_batch
from dispatcher.engine.fanout import fan_out
from dispatcher.engine.runtime import Runtime
from dispatcher.engine.task_queue import BatchRef
from dispatcher.reporting.ledger_queries import (
    DEFAULT_STATES,
    NothingToRetry,
    Reason,
    Selection,
    list_deliveries,
    missing,
    retry_failed,
)
from dispatcher.runners.embedded import EmbeddedRunner
from dispatcher.store.schema import deliveries
from tests.emulators import WebhookReceiver
from tests.helpers import RecordingQueue, draft, incident, states, subscribe

EMAIL, WEBHOOK = ChannelKind.EMAIL, ChannelKind.WEBHOOK
GONE = {"/hooks/1": 410, "/hooks/2": 410}


def webhook_options(**options: Any) -> dict[str, Any]:
    """Options for the webhook adapter reaching a local receiver (loopback is refused unless allowed)."""
    if "allow_destinations" in WebhookOptions.model_fields:
        options.setdefault("allow_destinations", ["127.0.0.0/8"])
    return {"timeout": 5, **options}


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver(verify=False, responses=GONE) as emu:
        yield emu


@dataclass
class Story:
    rt: Runtime
    first: int
    second: int
    ids: dict[tuple[ChannelKind, str], int]
    """(channel, address) -> id of update 1's row."""

    def row_id(self, channel: ChannelKind, person: int) -> int:
        suffix = f"person{person}@example.com" if channel is EMAIL else f"/hooks/{person}"
        return next(i for (c, a), i in self.ids.items() if c is channel and a.endswith(suffix))


def _batch_of(rt: Runtime, row_id: int) -> BatchRef:
    with rt.engine.connect() as conn:
        u, c, b = conn.execute(
            select(deliveries.c.update_id, deliveries.c.channel, deliveries.c.batch).where(
                deliveries.c.id == row_id
            )
        ).one()
    return BatchRef(u, ChannelKind(c), b)


@pytest.fixture
def story(make_runtime: Callable[..., Runtime], receiver: WebhookReceiver) -> Story:
    """Update 1 of an incident goes to 6 people by email (outbox) and webhook, and by now:

    * webhooks: /hooks/1 and /hooks/2 answered 410 Gone (failed for good), the other 4 got it;
    * email: person0 and person1 got it, person3 had opted out (suppressed), person2 was superseded by
      update 2 before update 1 reached them, person4's row is on the wire (claimed by a worker),
      person5's row is still queued."""
    rt = make_runtime(
        channels={
            WEBHOOK: ChannelSettings(providers=["webhook"]),
            EMAIL: ChannelSettings(providers=["outbox"], batch_size=1),
        },
        providers={"webhook": webhook_options()},
    )
    subscribe(rt, 6, webhook=f"{receiver.base_url}/hooks")
    set_opt_out(rt, EMAIL, "person3@example.com", True, "unsubscribed at the provider")
    inc = incident(rt)
    stuck = RecordingQueue()  # update 1's batches run only when this story says so
    first = publish(rt, draft(inc, "Investigating failed checkouts.", channels=[EMAIL, WEBHOOK]), stuck)
    fan_out(rt, first.update.id, stuck)
    with rt.engine.connect() as conn:
        ids = {
            (ChannelKind(c), a): int(i)
            for i, c, a in conn.execute(
                select(deliveries.c.id, deliveries.c.channel, deliveries.c.address).where(
                    deliveries.c.update_id == first.update.id
                )
            )
        }
    s = Story(rt, first.update.id, 0, ids)
    runner = EmbeddedRunner(rt)
    for ref in {_batch_of(rt, s.row_id(WEBHOOK, 0)), *(_batch_of(rt, s.row_id(EMAIL, p)) for p in (0, 1))}:
        runner.queue.submit_batch(ref)
    runner.run_until_idle()

    assert claim_batch(rt, _batch_of(rt, s.row_id(EMAIL, 4)))  # a worker is sending it right now
    later = RecordingQueue()
    second = publish(
        rt, draft(inc, "Identified: a bad deploy.", status=IncidentStatus.IDENTIFIED, channels=[EMAIL]), later
    )
    fan_out(rt, second.update.id, later)
    s.second = second.update.id
    with rt.engine.connect() as conn:
        to_person2 = conn.execute(
            select(deliveries.c.id).where(
                deliveries.c.update_id == s.second, deliveries.c.address == "person2@example.com"
            )
        ).scalar_one()
    runner.queue.submit_batch(_batch_of(rt, to_person2))  # update 2 reaches person2 first (carrying 1)
    runner.run_until_idle()
    runner.queue.submit_batch(_batch_of(rt, s.row_id(EMAIL, 2)))  # too late: update 2 got there first
    runner.run_until_idle()
    return s


def test_missing_names_everyone_without_the_update_and_why(story: Story) -> None:
    report = missing(story.rt, story.first)

    assert report.fanned_out
    assert report.counts == {
        Reason.FAILED: 2,
        Reason.SUPPRESSED: 1,
        Reason.SUPERSEDED: 1,
        Reason.QUEUED: 1,
        Reason.SENDING: 1,
    }
    by_id = {m.delivery.id: m for m in report.rows}
    for person in (1, 2):
        gone = by_id[story.row_id(WEBHOOK, person)]
        assert gone.reason is Reason.FAILED
        assert "410" in gone.detail and gone.delivery.provider == "webhook"
    opted_out = by_id[story.row_id(EMAIL, 3)]
    assert opted_out.reason is Reason.SUPPRESSED
    assert "opted out" in opted_out.detail and "unsubscribed at the provider" in opted_out.detail
    superseded = by_id[story.row_id(EMAIL, 2)]
    assert superseded.reason is Reason.SUPERSEDED and superseded.superseded_by == story.second
    assert f"update {story.second}" in superseded.detail
    assert by_id[story.row_id(EMAIL, 4)].reason is Reason.SENDING
    assert "lease until" in by_id[story.row_id(EMAIL, 4)].detail
    assert by_id[story.row_id(EMAIL, 5)].reason is Reason.QUEUED
    assert [m.reason for m in report.rows] == sorted((m.reason for m in report.rows), key=list(Reason).index)
    delivered = {story.row_id(EMAIL, p) for p in (0, 1)} | {story.row_id(WEBHOOK, p) for p in (0, 3, 4, 5)}
    assert not delivered & set(by_id)

    only_webhooks = missing(story.rt, story.first, [WEBHOOK])
    assert {m.delivery.id for m in only_webhooks.rows} == {story.row_id(WEBHOOK, p) for p in (1, 2)}


def test_a_bounce_reported_after_the_send_counts_as_not_received(story: Story) -> None:
    row = story.row_id(EMAIL, 0)
    record_provider_status(story.rt, "bounce", delivery_id=row, error="bounce: mailbox does not exist")

    report = missing(story.rt, story.first, [EMAIL])

    bounced = next(m for m in report.rows if m.delivery.id == row)
    assert bounced.reason is Reason.UNDELIVERED
    assert "bounce" in bounced.detail and "mailbox does not exist" in bounced.detail
    assert report.counts[Reason.UNDELIVERED] == 1


def test_missing_an_unknown_update_is_a_clear_error(story: Story) -> None:
    with pytest.raises(NotFound, match="no update 999"):
        missing(story.rt, 999)


def test_list_shows_dead_letters_and_pending_newest_first_with_filters(story: Story) -> None:
    rt = story.rt
    default = list_deliveries(rt, Selection(update_id=story.first, states=DEFAULT_STATES))
    assert {r.id for r in default} == {
        story.row_id(WEBHOOK, 1),
        story.row_id(WEBHOOK, 2),
        story.row_id(EMAIL, 4),
        story.row_id(EMAIL, 5),
    }
    assert [r.id for r in default] == sorted((r.id for r in default), reverse=True)

    failed = list_deliveries(rt, Selection(channels=(WEBHOOK,), states=(DeliveryState.FAILED,)))
    assert {r.address.rsplit("/", 1)[-1] for r in failed} == {"1", "2"}
    assert all(r.attempts == 1 and r.last_error and "410" in r.last_error for r in failed)
    as_json = failed[0].as_json()
    assert as_json["state"] == "failed" and as_json["channel"] == "webhook"
    assert isinstance(as_json["updated_at"], str) and as_json["updated_at"].endswith("+00:00")

    assert len(list_deliveries(rt, Selection(provider="webhook", states=(DeliveryState.FAILED,)))) == 2
    assert list_deliveries(rt, Selection(provider="sendgrid")) == []
    assert len(list_deliveries(rt, Selection(update_id=story.first), limit=3)) == 3
    everything = list_deliveries(rt, Selection(update_id=story.first), limit=None)
    assert len(everything) == 12


def test_retry_re_drives_only_failed_rows_and_they_arrive_once_the_endpoint_is_fixed(
    story: Story, receiver: WebhookReceiver
) -> None:
    rt = story.rt
    before = states(rt, story.first)
    assert before == {"sent": 6, "failed": 2, "suppressed": 1, "superseded": 1, "queued": 1, "sending": 1}
    dry = retry_failed(rt, Selection(update_id=story.first), RecordingQueue(), dry_run=True)
    assert dry.rows == 2 and dry.dry_run
    assert dry.batches == (_batch_of(rt, story.row_id(WEBHOOK, 1)),)
    assert states(rt, story.first) == before, "a dry run changes nothing"

    receiver.configure({"responses": {}})  # the endpoints are back
    runner = EmbeddedRunner(rt)
    result = retry_failed(rt, Selection(update_id=story.first), runner.queue)

    assert result.rows == 2 and not result.dry_run
    queued = list_deliveries(rt, Selection(ids=(story.row_id(WEBHOOK, 1), story.row_id(WEBHOOK, 2))))
    assert all(r.state is DeliveryState.QUEUED and r.attempts == 0 for r in queued)
    assert all(r.next_attempt_at is None and r.last_error and "410" in r.last_error for r in queued)
    runner.run_until_idle()

    assert states(rt, story.first, WEBHOOK) == {"sent": 6}
    assert {m["path"] for m in receiver.received} >= {"/hooks/1", "/hooks/2"}
    untouched = {"sent": 2, "suppressed": 1, "superseded": 1, "queued": 1, "sending": 1}
    assert states(rt, story.first, EMAIL) == untouched, "a re-drive touches only the failed rows"
    arrived = list_deliveries(rt, Selection(ids=(story.row_id(WEBHOOK, 1),)))[0]
    assert arrived.last_error is None and arrived.attempts == 1


def test_retry_by_id_says_why_superseded_and_suppressed_rows_are_not_re_driven(story: Story) -> None:
    rt = story.rt
    queue = RecordingQueue()
    asked = (story.row_id(WEBHOOK, 1), story.row_id(EMAIL, 2), story.row_id(EMAIL, 3), story.row_id(EMAIL, 0))

    result = retry_failed(rt, Selection(ids=(*asked, 987654)), queue)

    assert result.rows == 1
    assert [ref for ref, _ in queue.batches] == [_batch_of(rt, story.row_id(WEBHOOK, 1))]
    notes = " | ".join(result.notes)
    assert f"delivery {story.row_id(EMAIL, 2)} is superseded" in notes
    assert f"delivery {story.row_id(EMAIL, 3)} is suppressed" in notes
    assert "never re-driven" in notes
    assert f"delivery {story.row_id(EMAIL, 0)} is sent" in notes
    assert "delivery 987654: no such delivery" in notes
    assert list_deliveries(rt, Selection(ids=(story.row_id(WEBHOOK, 2),)))[0].state is DeliveryState.FAILED
    assert list_deliveries(rt, Selection(ids=(story.row_id(EMAIL, 2),)))[0].state is DeliveryState.SUPERSEDED


def test_retry_refuses_when_no_failed_row_matches(story: Story) -> None:
    rt = story.rt
    before = states(rt, story.first)
    with pytest.raises(NothingToRetry, match="no failed deliveries match"):
        retry_failed(rt, Selection(update_id=story.first, channels=(EMAIL,)), RecordingQueue())
    with pytest.raises(NothingToRetry, match="superseded and suppressed deliveries are never re-driven"):
        retry_failed(rt, Selection(ids=(story.row_id(EMAIL, 3),)), RecordingQueue(), dry_run=True)
    with pytest.raises(NothingToRetry, match="provider sendgrid"):
        retry_failed(rt, Selection(provider="sendgrid"), RecordingQueue())
    assert states(rt, story.first) == before
