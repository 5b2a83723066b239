"""A failing provider does not stop an update, and a newer update is never overtaken by an older one."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import select

from channels.base import ChannelKind
from dispatcher.comms.publish import publish
from dispatcher.config.settings import ChannelSettings, CircuitSettings, RetrySettings
from dispatcher.domain.models import IncidentStatus
from dispatcher.engine.delivery import deliver_batch
from dispatcher.engine.fanout import fan_out
from dispatcher.engine.runtime import Runtime
from dispatcher.engine.task_queue import BatchRef
from dispatcher.runners.embedded import EmbeddedRunner
from dispatcher.store.schema import deliveries
from tests.emulators import SendGridEmulator, WebhookReceiver
from tests.emulators.smtp import SmtpSink
from tests.helpers import RecordingQueue, draft, incident, publish_and_deliver, states, subscribe

HOOKS = [ChannelKind.WEBHOOK]
FAST_RETRY = RetrySettings(schedule=[0.05, 0.1, 0.2, 0.2, 0.2])


@pytest.fixture
def slow_receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver(verify=False, latency_ms=600) as receiver:
        yield receiver


def webhook_runtime(make_runtime: Callable[..., Runtime], timeout: float = 5) -> Runtime:
    return make_runtime(
        channels={ChannelKind.WEBHOOK: ChannelSettings(providers=["webhook"])},
        providers={"webhook": {"timeout": timeout, "allow_destinations": ["127.0.0.0/8"]}},
        retry=FAST_RETRY,
    )


def arrivals(receiver: WebhookReceiver) -> dict[str, list[int]]:
    """Per endpoint, the update ids in the order they arrived."""
    seen: dict[str, list[int]] = {}
    for message in receiver.received:
        seen.setdefault(message["path"], []).append(message["body"]["update"]["id"])
    return seen


def test_an_older_update_still_queued_is_superseded_by_a_newer_one(
    make_runtime: Callable[..., Runtime], slow_receiver: WebhookReceiver
) -> None:
    rt = webhook_runtime(make_runtime)
    subscribe(rt, 5, email=False, webhook=f"{slow_receiver.base_url}/hooks")
    inc = incident(rt)
    stuck = RecordingQueue()  # update 1's tasks have not run yet when update 2 is published
    first = publish(rt, draft(inc, "Investigating.", channels=HOOKS), stuck)
    fan_out(rt, first.update.id, stuck)

    second = publish_and_deliver(
        rt, draft(inc, "Fix deployed, monitoring.", status=IncidentStatus.MONITORING, channels=HOOKS)
    )
    late = deliver_batch(rt, BatchRef(first.update.id, ChannelKind.WEBHOOK, 0))

    assert late.sent == 0 and late.suppressed == 5
    assert states(rt, first.update.id) == {"superseded": 5}
    assert states(rt, second.update.id) == {"sent": 5}
    assert all(ids == [second.update.id] for ids in arrivals(slow_receiver).values())


def test_a_slow_send_of_update_n_is_never_overtaken_by_update_n_plus_1(
    make_runtime: Callable[..., Runtime],
) -> None:
    # Every request takes 600 ms, and the first one hangs past the client's timeout (then is retried).
    with WebhookReceiver(verify=False, latency_ms=600, fail_next=["hang"], hang_seconds=3) as receiver:
        rt = webhook_runtime(make_runtime, timeout=1.5)
        subscribe(rt, 8, email=False, webhook=f"{receiver.base_url}/hooks")
        inc = incident(rt)
        queue = RecordingQueue()
        first = publish(rt, draft(inc, "Investigating.", channels=HOOKS), queue)
        fan_out(rt, first.update.id, queue)
        in_flight = threading.Thread(
            target=deliver_batch, args=(rt, BatchRef(first.update.id, ChannelKind.WEBHOOK, 0))
        )
        in_flight.start()
        while not receiver.stats["requests"]:  # update 1 is on the wire…
            time.sleep(0.01)
        second = publish_and_deliver(  # … when update 2 is published and delivered
            rt,
            draft(inc, "Identified: a bad deploy.", status=IncidentStatus.IDENTIFIED, channels=HOOKS),
            wait=10,
        )
        in_flight.join()
        EmbeddedRunner(rt).run_until_idle()  # update 1's retry, if any, comes now
        deliver_batch(rt, BatchRef(first.update.id, ChannelKind.WEBHOOK, 0))

        seen = arrivals(receiver)
    assert states(rt, second.update.id) == {"sent": 8}
    assert len(seen) == 8
    for endpoint, ids in seen.items():
        assert ids in ([first.update.id, second.update.id], [second.update.id]), endpoint
    assert sum(ids == [second.update.id] for ids in seen.values()) == 1, "the hung one was superseded"
    assert states(rt, first.update.id) == {"sent": 7, "superseded": 1}


def test_when_sendgrid_goes_down_mid_fan_out_smtp_carries_the_rest(
    make_runtime: Callable[..., Runtime],
) -> None:
    with SendGridEmulator(api_key="SG.k") as sendgrid, SmtpSink() as smtp:
        rt = make_runtime(
            channels={ChannelKind.EMAIL: ChannelSettings(providers=["sendgrid", "smtp"], batch_size=100)},
            providers={
                "sendgrid": {
                    "api_key": "SG.k",
                    "base_url": sendgrid.base_url,
                    "from_email": "s@example.com",
                    "timeout": 1,
                },
                "smtp": {
                    "host": smtp.host,
                    "port": smtp.port,
                    "starttls": False,
                    "from_email": "s@example.com",
                },
            },
            retry=FAST_RETRY,
            circuit_breaker=CircuitSettings(failures=2, reset_after=60),
        )
        subscribe(rt, 400)
        queue = RecordingQueue()
        published = publish(rt, draft(incident(rt), channels=[ChannelKind.EMAIL]), queue)
        fan_out(rt, published.update.id, queue)
        deliver_batch(rt, BatchRef(published.update.id, ChannelKind.EMAIL, 0))  # SendGrid carries batch 0
        sendgrid.set_faults(down=True)  # … then answers 503 to everything

        runner = EmbeddedRunner(rt)
        for ref, _ in queue.batches[1:]:
            runner.queue.submit_batch(ref)
        runner.run_until_idle(wait_up_to=10)

        by_sendgrid = {m["email"] for m in sendgrid.received}
        by_smtp = [rcpt for m in smtp.messages for rcpt in m.rcpt_tos]
        assert len(by_sendgrid) == 100
        assert len(by_smtp) == len(set(by_smtp)) == 300, "nothing sent twice by the same provider"
        assert by_sendgrid.isdisjoint(by_smtp)
        assert by_sendgrid | set(by_smtp) == {f"person{i}@example.com" for i in range(400)}, "nothing lost"
        with rt.engine.connect() as conn:
            carried = dict(
                conn.execute(
                    select(deliveries.c.provider, deliveries.c.id).where(deliveries.c.state == "sent")
                ).all()
            )
        assert set(carried) == {"sendgrid", "smtp"}
        assert states(rt, published.update.id) == {"sent": 400}
