"""Webhook results reach the ledger as endpoints answer, not when the whole batch is done.

Given 150 webhook endpoints in one batch and the real webhook adapter (libcurl, 64 in flight), when one
endpoint hangs, then the other 149 are recorded ``sent`` while that request is still on the wire. So a
worker killed at that moment would leave only what was in flight unrecorded, and re-send only that.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from sqlalchemy import func, select

from channels.base import ChannelKind
from dispatcher.comms.publish import publish
from dispatcher.config.settings import ChannelSettings
from dispatcher.engine.delivery import deliver_batch
from dispatcher.engine.fanout import fan_out
from dispatcher.engine.runtime import Runtime
from dispatcher.engine.task_queue import BatchRef
from dispatcher.store.schema import deliveries
from tests.emulators import WebhookReceiver
from tests.helpers import RecordingQueue, draft, incident, subscribe

PEOPLE = 150


def sent_rows(rt: Runtime, update_id: int) -> int:
    with rt.engine.connect() as conn:
        query = select(func.count()).where(deliveries.c.update_id == update_id, deliveries.c.state == "sent")
        return int(conn.execute(query).scalar_one())


def eventually(check: Callable[[], bool], within: float) -> bool:
    """Poll ``check`` until it holds (a wait for an event, not a timed assertion)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return check()


def test_answered_endpoints_are_recorded_while_a_slow_one_is_still_on_the_wire(
    make_runtime: Callable[..., Runtime],
) -> None:
    with WebhookReceiver(verify=False, fail_next=["hang"], hang_seconds=60) as receiver:
        rt = make_runtime(
            channels={ChannelKind.WEBHOOK: ChannelSettings(providers=["webhook"], batch_size=500)},
            providers={"webhook": {"allow_destinations": ["127.0.0.0/8"], "timeout": 30}},
        )
        subscribe(rt, PEOPLE, email=False, webhook=f"{receiver.base_url}/hooks")
        queue = RecordingQueue()
        update_id = publish(rt, draft(incident(rt), channels=[ChannelKind.WEBHOOK]), queue).update.id
        fan_out(rt, update_id, queue)
        batch = threading.Thread(target=deliver_batch, args=(rt, BatchRef(update_id, ChannelKind.WEBHOOK, 0)))
        batch.start()
        try:
            assert eventually(lambda: receiver.stats["accepted"] == PEOPLE - 1, within=20)
            recorded = eventually(lambda: sent_rows(rt, update_id) == PEOPLE - 1, within=10)
            still_on_the_wire = batch.is_alive() and receiver.stats["hung"] == 1
        finally:
            receiver.stop()  # releases the hung request
            batch.join(40)
    assert still_on_the_wire, "the hung request was still in flight when the ledger was read"
    assert recorded, "the 149 answered endpoints were in the ledger before the batch finished"
