"""A failing provider does not stop an update, and a newer update is never overtaken by an older one.

These are the engine's decisions, so the providers are in-memory adapters (``channels.memory``): they
record every call and answer as told. The real SDKs on the wire are proven in ``test_channel_*`` and
``test_delivery_providers``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from sqlalchemy import select

from channels.base import ChannelKind, Message, Recipient, Result, TransientError
from channels.memory import MemoryAdapter
from dispatcher.comms.publish import publish
from dispatcher.config.settings import ChannelSettings, CircuitSettings, RetrySettings
from dispatcher.domain.models import IncidentStatus
from dispatcher.engine.delivery import deliver_batch
from dispatcher.engine.fanout import fan_out
from dispatcher.engine.runtime import Runtime
from dispatcher.engine.task_queue import BatchRef
from dispatcher.runners.embedded import EmbeddedRunner
from dispatcher.store.schema import deliveries
from tests.helpers import RecordingQueue, draft, incident, publish_and_deliver, states, subscribe

HOOKS = [ChannelKind.WEBHOOK]
FAST_RETRY = RetrySettings(schedule=[0.05, 0.1, 0.2, 0.2, 0.2])
ENDPOINTS = "https://hooks.example.com"


def webhook_runtime(
    make_runtime: Callable[..., Runtime], hooks: MemoryAdapter, retry: RetrySettings = FAST_RETRY
) -> Runtime:
    return make_runtime(
        channels={ChannelKind.WEBHOOK: ChannelSettings(providers=["webhook"])},
        retry=retry,
        adapters={"webhook": hooks},
    )


def arrivals(hooks: MemoryAdapter) -> dict[str, list[int]]:
    """Per endpoint, the update ids in the order they arrived."""
    seen: dict[str, list[int]] = {}
    for update_id, address in hooks.delivered:
        seen.setdefault(address, []).append(update_id)
    return seen


def test_an_older_update_still_queued_is_superseded_by_a_newer_one(
    make_runtime: Callable[..., Runtime],
) -> None:
    hooks = MemoryAdapter()
    rt = webhook_runtime(make_runtime, hooks)
    subscribe(rt, 5, email=False, webhook=f"{ENDPOINTS}/hooks")
    inc = incident(rt)
    stuck = RecordingQueue()  # update 1's tasks have not run yet when update 2 is published
    first = publish(rt, draft(inc, "Investigating.", channels=HOOKS), stuck)
    fan_out(rt, first.update.id, stuck)

    second = publish_and_deliver(
        rt, draft(inc, "Fix deployed, monitoring.", status=IncidentStatus.MONITORING, channels=HOOKS)
    )
    late = deliver_batch(rt, BatchRef(first.update.id, ChannelKind.WEBHOOK, 0))

    assert late.claimed == 0, "update 1 was superseded when update 2 went out (and rode along with it)"
    assert states(rt, first.update.id) == {"superseded": 5}
    assert states(rt, second.update.id) == {"sent": 5}
    assert all(ids == [second.update.id] for ids in arrivals(hooks).values())
    assert len(arrivals(hooks)) == 5


def test_a_slow_send_of_update_n_is_never_overtaken_by_update_n_plus_1(
    make_runtime: Callable[..., Runtime],
) -> None:
    # Update 1 is on the wire for a second, and one endpoint's request times out (it is retried).
    on_wire, release = threading.Event(), threading.Event()
    hooks = MemoryAdapter()
    rt = webhook_runtime(make_runtime, hooks, RetrySettings(schedule=[0, 0.1, 0.2]))  # retried at once
    subscribe(rt, 8, email=False, webhook=f"{ENDPOINTS}/hooks")
    inc = incident(rt)
    queue = RecordingQueue()
    first = publish(rt, draft(inc, "Investigating.", channels=HOOKS), queue)
    hung = f"{ENDPOINTS}/hooks/0"

    def slow_first_update(message: Message, recipient: Recipient) -> Result | None:
        if message.update_id != first.update.id:
            return None
        on_wire.set()
        release.wait(5)
        return Result.retry(recipient.delivery_id, "timed out") if recipient.address == hung else None

    hooks.answer(slow_first_update)
    fan_out(rt, first.update.id, queue)
    in_flight = threading.Thread(
        target=deliver_batch, args=(rt, BatchRef(first.update.id, ChannelKind.WEBHOOK, 0))
    )
    in_flight.start()
    on_wire.wait(5)  # update 1 is on the wire…
    threading.Timer(1.0, release.set).start()
    second = publish_and_deliver(  # … when update 2 is published and delivered
        rt,
        draft(inc, "Identified: a bad deploy.", status=IncidentStatus.IDENTIFIED, channels=HOOKS),
        wait=10,
    )
    in_flight.join()
    EmbeddedRunner(rt).run_until_idle()  # update 1's retry, if any, comes now
    deliver_batch(rt, BatchRef(first.update.id, ChannelKind.WEBHOOK, 0))

    seen = arrivals(hooks)
    assert states(rt, second.update.id) == {"sent": 8}
    assert len(seen) == 8
    for endpoint, ids in seen.items():
        assert ids in ([first.update.id, second.update.id], [second.update.id]), endpoint
    assert seen[hung] == [second.update.id], "the one that timed out was superseded"
    assert states(rt, first.update.id) == {"sent": 7, "superseded": 1}


def test_when_the_primary_provider_goes_down_mid_fan_out_the_fallback_carries_the_rest(
    make_runtime: Callable[..., Runtime],
) -> None:
    primary, fallback = MemoryAdapter(), MemoryAdapter.limited(max_batch=1)
    rt = make_runtime(
        channels={ChannelKind.EMAIL: ChannelSettings(providers=["sendgrid", "smtp"], batch_size=100)},
        retry=FAST_RETRY,
        circuit_breaker=CircuitSettings(failures=2, reset_after=60),
        adapters={"sendgrid": primary, "smtp": fallback},
    )
    subscribe(rt, 400)
    queue = RecordingQueue()
    published = publish(rt, draft(incident(rt), channels=[ChannelKind.EMAIL]), queue)
    fan_out(rt, published.update.id, queue)
    deliver_batch(rt, BatchRef(published.update.id, ChannelKind.EMAIL, 0))  # the primary carries batch 0
    primary.fail_calls(TransientError("503 Service Unavailable"), times=None)  # … then fails everything

    runner = EmbeddedRunner(rt)
    for ref, _ in queue.batches[1:]:
        runner.queue.submit_batch(ref)
    runner.run_until_idle(wait_up_to=10)

    by_primary, by_fallback = primary.addresses(), fallback.addresses()
    assert len(by_primary) == 100
    assert len(by_fallback) == len(set(by_fallback)) == 300, "nothing sent twice by the same provider"
    assert set(by_primary).isdisjoint(by_fallback)
    everyone = {f"person{i}@example.com" for i in range(400)}
    assert set(by_primary) | set(by_fallback) == everyone, "nothing lost"
    with rt.engine.connect() as conn:
        carried = dict(
            conn.execute(
                select(deliveries.c.provider, deliveries.c.id).where(deliveries.c.state == "sent")
            ).all()
        )
    assert set(carried) == {"sendgrid", "smtp"}
    assert states(rt, published.update.id) == {"sent": 400}
