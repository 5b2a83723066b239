"""A big fan-out goes quickly and stays exact: rows written once whatever runs twice, and delivered while
the fan-out is still writing.

The quick write (``dispatcher.store.bulk.insert_fresh_deliveries``: a plain ``COPY`` on PostgreSQL) is
only for an update whose rows do not exist yet; these tests make a second fan-out of the same update
run in the middle of the first one, as two workers handed the same task would, and check that every
owed address still has exactly one row. The embedded runner's overlap is checked with a queue that
holds the fan-out back until a batch it wrote has been delivered: without the overlap, that never
happens.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

import pytest
from sqlalchemy import func, select

from channels.base import ChannelKind, Message, Recipient, Result
from channels.memory import MemoryAdapter
from dispatcher.comms.publish import publish
from dispatcher.config.settings import ChannelSettings
from dispatcher.engine.fanout import fan_out
from dispatcher.engine.runtime import Runtime
from dispatcher.engine.task_queue import BatchRef
from dispatcher.runners.embedded import EmbeddedQueue, EmbeddedRunner
from dispatcher.store.schema import deliveries, updates
from tests.helpers import RecordingQueue, draft, incident, states, subscribe

EMAIL = [ChannelKind.EMAIL]


def small_batches(make_runtime: Callable[..., Runtime], memory: MemoryAdapter | None = None) -> Runtime:
    email = ChannelSettings(providers=["memory"] if memory else ["outbox"], batch_size=5)
    adapters = {"memory": memory} if memory else None
    return make_runtime(fanout_page_size=4, channels={ChannelKind.EMAIL: email}, adapters=adapters)


def rows_per_address(rt: Runtime, update_id: int) -> dict[str, int]:
    with rt.engine.connect() as conn:
        found = conn.execute(
            select(deliveries.c.address, func.count())
            .where(deliveries.c.update_id == update_id)
            .group_by(deliveries.c.address)
        ).all()
    return {address: int(n) for address, n in found}


class SecondFanoutMidway(RecordingQueue):
    """After the first batch is committed, the same update's fan-out runs again, to the end: as if
    Redis had handed the fan-out task to a second worker too."""

    def __init__(self, rt: Runtime) -> None:
        super().__init__()
        self.rt = rt
        self.second: RecordingQueue | None = None

    def submit_batch(self, ref: BatchRef, delay: float = 0.0) -> None:
        super().submit_batch(ref, delay)
        if self.second is None:
            self.second = RecordingQueue()
            fan_out(self.rt, ref.update_id, self.second)


def test_two_fan_outs_of_one_update_at_once_write_each_row_once(make_runtime: Callable[..., Runtime]) -> None:
    rt = small_batches(make_runtime)
    subscribe(rt, 23)
    queue = SecondFanoutMidway(rt)
    published = publish(rt, draft(incident(rt), channels=EMAIL), queue)

    first = fan_out(rt, published.update.id, queue)

    assert queue.second is not None and queue.second.batches, "the second fan-out ran in the middle"
    # The first found the rows the second had written, skipped them, and still wrote what was missing.
    assert first.rows[ChannelKind.EMAIL] == 23
    assert rows_per_address(rt, published.update.id) == {f"person{i}@example.com": 1 for i in range(23)}
    assert states(rt, published.update.id) == {"queued": 23}
    assert sorted({ref.batch for ref, _ in queue.batches}) == [0, 1, 2, 3, 4]


class CrashAfterFirstBatch(RecordingQueue):
    def submit_batch(self, ref: BatchRef, delay: float = 0.0) -> None:
        super().submit_batch(ref, delay)
        raise RuntimeError("worker lost after its first batch")


def test_a_fan_out_that_died_midway_is_finished_by_the_next_one(make_runtime: Callable[..., Runtime]) -> None:
    rt = small_batches(make_runtime)
    subscribe(rt, 12)
    published = publish(rt, draft(incident(rt), channels=EMAIL), RecordingQueue())
    with pytest.raises(RuntimeError, match="worker lost"):
        fan_out(rt, published.update.id, CrashAfterFirstBatch())
    assert states(rt, published.update.id) == {"queued": 5}, "the first batch was committed"

    again = RecordingQueue()
    fan_out(rt, published.update.id, again)

    assert rows_per_address(rt, published.update.id) == {f"person{i}@example.com": 1 for i in range(12)}
    assert [ref.batch for ref, _ in again.batches] == [0, 1, 2]


class HoldsTheFanout(EmbeddedQueue):
    """The fan-out may not hand over its second batch before one of its batches has been delivered."""

    def __init__(self, delivered: threading.Event) -> None:
        super().__init__()
        self.delivered = delivered
        self.waited_for_delivery: bool | None = None

    def submit_batch(self, ref: BatchRef, delay: float = 0.0) -> None:
        if ref.batch == 1 and self.waited_for_delivery is None:
            self.waited_for_delivery = self.delivered.wait(timeout=10)
        super().submit_batch(ref, delay)


class SignalsDelivery(MemoryAdapter):
    def __init__(self) -> None:
        super().__init__()
        self.first_send = threading.Event()

    def send(self, message: Message, recipients: Sequence[Recipient]) -> list[Result]:
        results = super().send(message, recipients)
        self.first_send.set()
        return results


def test_the_embedded_runner_delivers_batches_while_their_fan_out_is_still_writing(
    make_runtime: Callable[..., Runtime],
) -> None:
    memory = SignalsDelivery()
    rt = small_batches(make_runtime, memory)
    subscribe(rt, 15)
    runner = EmbeddedRunner(rt, queue=HoldsTheFanout(memory.first_send))
    published = publish(rt, draft(incident(rt), channels=EMAIL), runner.queue)

    runner.run_until_idle()

    assert isinstance(runner.queue, HoldsTheFanout)
    assert runner.queue.waited_for_delivery is True, "batch 0 went out while the fan-out was writing batch 1"
    assert sorted(memory.addresses(published.update.id)) == sorted(
        f"person{i}@example.com" for i in range(15)
    )
    assert states(rt, published.update.id) == {"sent": 15}


class RecordsWhatWasFannedOut(MemoryAdapter):
    """Notes, at each send, which updates had finished their fan-out."""

    def __init__(self) -> None:
        super().__init__()
        self.rt: Runtime | None = None
        self.seen: list[set[int]] = []

    def send(self, message: Message, recipients: Sequence[Recipient]) -> list[Result]:
        assert self.rt is not None
        with self.rt.engine.connect() as conn:
            done = conn.execute(select(updates.c.id).where(updates.c.state == "fanned_out")).scalars()
            self.seen.append(set(done))
        return super().send(message, recipients)


def test_updates_queued_together_are_all_fanned_out_before_any_is_delivered(
    make_runtime: Callable[..., Runtime],
) -> None:
    """What overlaps is one fan-out with its own batches: work queued together keeps its order, so a
    newer update written before delivery starts can still supersede an older one."""
    memory = RecordsWhatWasFannedOut()
    rt = memory.rt = small_batches(make_runtime, memory)
    subscribe(rt, 12)
    inc = incident(rt)
    runner = EmbeddedRunner(rt)
    first = publish(
        rt, draft(inc, "We are investigating failed checkouts. Sorry.", channels=EMAIL), runner.queue
    )
    second = publish(rt, draft(inc, "Checkouts fail for card payments. Sorry.", channels=EMAIL), runner.queue)

    runner.run_until_idle()

    both = {first.update.id, second.update.id}
    assert memory.seen and all(seen == both for seen in memory.seen)
