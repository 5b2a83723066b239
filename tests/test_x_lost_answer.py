"""A post X made although its answer was lost is recorded as sent, with its id, and the thread goes on.

Given the real tweepy client and the X emulator, when X accepts a post but the connection drops before
its answer arrives (a "ghost", like a worker killed just after X answered 201), then the retry meets
X's 403 "duplicate content"; the adapter looks the post up among the account's recent posts, the ledger
says ``sent`` with that post's id, and the next update replies to it. A text that was already posted
before the update was published is still refused: that post is not ours.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest
from sqlalchemy import select

from channels.base import ChannelKind
from dispatcher.comms.publish import publish
from dispatcher.config.settings import ChannelSettings, RetrySettings
from dispatcher.domain.models import Incident, IncidentStatus
from dispatcher.engine.delivery import deliver_batch
from dispatcher.engine.fanout import fan_out
from dispatcher.engine.runtime import Runtime
from dispatcher.engine.task_queue import BatchRef
from dispatcher.store.schema import deliveries, incidents
from tests.emulators import XEmulator
from tests.helpers import RecordingQueue, draft, hand_clock, incident

SOCIAL = [ChannelKind.SOCIAL]
CREDENTIALS = {
    "consumer_key": "ck",
    "consumer_secret": "cs",
    "access_token": "at",
    "access_token_secret": "ats",
}


@pytest.fixture
def x() -> Iterator[XEmulator]:
    with XEmulator() as emu:
        yield emu


def x_runtime(make_runtime: Callable[..., Runtime], x: XEmulator) -> Runtime:
    return make_runtime(
        channels={ChannelKind.SOCIAL: ChannelSettings(providers=["x"])},
        providers={"x": {**CREDENTIALS, "base_url": x.base_url, "timeout": 2.0}},
        retry=RetrySettings(schedule=[5, 5], jitter=0),
    )


def published(rt: Runtime, inc: Incident, message: str, **fields: object) -> BatchRef:
    queue = RecordingQueue()
    done = publish(rt, draft(inc, message, channels=SOCIAL, **fields), queue)
    fan_out(rt, done.update.id, queue)
    return BatchRef(done.update.id, ChannelKind.SOCIAL, 0)


def the_row(rt: Runtime, ref: BatchRef) -> tuple[str, str | None, int, str | None]:
    with rt.engine.connect() as conn:
        row = conn.execute(select(deliveries).where(deliveries.c.update_id == ref.update_id)).one()
    return row.state, row.provider_message_id, row.attempts, row.last_error


def test_a_post_whose_answer_was_lost_is_found_and_recorded_with_its_id(
    make_runtime: Callable[..., Runtime], x: XEmulator
) -> None:
    rt = x_runtime(make_runtime, x)
    clock = hand_clock(rt)
    inc = incident(rt)
    first = published(rt, inc, "Checkout fails for some customers. Sorry. https://status.example.com/i/1")
    x.set_faults(fail_next=["drop"])  # X posts it, then the connection drops before the 201 arrives

    deliver_batch(rt, first)
    assert the_row(rt, first)[0] == "queued", "the client saw a failure: retried"
    clock.advance(seconds=6)
    deliver_batch(rt, first)

    [post] = x.posts
    assert the_row(rt, first) == ("sent", post["id"], 2, None)
    with rt.engine.connect() as conn:
        thread = conn.execute(select(incidents.c.social_thread_id).where(incidents.c.id == inc.id)).scalar()
    assert thread == post["id"]
    second = published(rt, inc, "We found the cause. Sorry.", status=IncidentStatus.IDENTIFIED)
    deliver_batch(rt, second)
    assert x.posts[-1]["in_reply_to_tweet_id"] == post["id"], "the thread goes on from the found post"
    assert len(x.posts) == 2


def test_the_same_text_posted_before_the_update_is_not_taken_for_ours(
    make_runtime: Callable[..., Runtime], x: XEmulator
) -> None:
    rt = x_runtime(make_runtime, x)
    hand_clock(rt)
    text = "We are investigating failed checkouts. Sorry."
    ref = published(rt, incident(rt), text)
    deliver_batch(rt, ref)
    [old] = x.posts
    old["created_at"] -= timedelta(hours=3)  # that post was made long before this update
    with rt.engine.begin() as conn:
        conn.execute(deliveries.update().values(state="queued", provider_message_id=None, attempts=0))

    deliver_batch(rt, ref)

    state, post_id, _, error = the_row(rt, ref)
    assert state == "failed" and post_id is None
    assert error is not None and "duplicate content" in error
