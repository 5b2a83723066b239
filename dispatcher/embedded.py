"""The embedded default: the same dispatcher functions the Celery tasks call, run in this process.

No Redis, no broker file: an in-memory timer queue holds what to run next, and the database, which
decides what is owed anyway, is polled by a periodic tick so nothing is lost if this process stops.
"""

from __future__ import annotations

import heapq
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from dispatcher.delivery import deliver_batch
from dispatcher.fanout import fan_out
from dispatcher.redrive import redrive
from dispatcher.retry_policy import RetryPolicy
from dispatcher.runtime import Runtime
from dispatcher.task_queue import BatchRef


@dataclass(order=True)
class _Job:
    due: float
    seq: int
    update_id: int = field(compare=False)
    ref: BatchRef | None = field(compare=False, default=None)


class EmbeddedQueue:
    """A ``TaskQueue`` in memory, ordered by due time (monotonic clock)."""

    def __init__(self, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._jobs: list[_Job] = []
        self._seq = itertools.count()
        self._monotonic = monotonic
        self._queued: set[BatchRef] = set()

    def submit_fanout(self, update_id: int) -> None:
        heapq.heappush(self._jobs, _Job(self._monotonic(), next(self._seq), update_id))

    def submit_batch(self, ref: BatchRef, delay: float = 0.0) -> None:
        if ref in self._queued and delay == 0:
            return  # already waiting to run; claiming would make the second run a no-op anyway
        self._queued.add(ref)
        heapq.heappush(self._jobs, _Job(self._monotonic() + delay, next(self._seq), ref.update_id, ref))

    def pop_due(self) -> _Job | None:
        if self._jobs and self._jobs[0].due <= self._monotonic():
            job = heapq.heappop(self._jobs)
            if job.ref is not None:
                self._queued.discard(job.ref)
            return job
        return None

    def next_due_in(self) -> float | None:
        return None if not self._jobs else max(0.0, self._jobs[0].due - self._monotonic())

    def __len__(self) -> int:
        return len(self._jobs)


@dataclass
class RunStats:
    fanouts: int = 0
    batches: int = 0
    sent: int = 0
    failed: int = 0
    suppressed: int = 0


class EmbeddedRunner:
    def __init__(
        self, rt: Runtime, queue: EmbeddedQueue | None = None, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        self.rt = rt
        self.queue = queue or EmbeddedQueue()
        self.policy = RetryPolicy(rt.settings.retry)
        self.sleep = sleep
        self.stats = RunStats()

    def run_job(self, update_id: int, ref: BatchRef | None) -> None:
        if ref is None:
            fan_out(self.rt, update_id, self.queue)
            self.stats.fanouts += 1
            return
        outcome = deliver_batch(self.rt, ref, self.policy)
        self.stats.batches += 1
        self.stats.sent += outcome.sent
        self.stats.failed += outcome.failed
        self.stats.suppressed += outcome.suppressed
        if outcome.retry_in is not None:
            self.queue.submit_batch(ref, outcome.retry_in)

    def run_until_idle(self, wait_up_to: float = 0.0) -> RunStats:
        """Run everything due now; also wait for retries due within ``wait_up_to`` seconds."""
        deadline = time.monotonic() + wait_up_to
        while True:
            job = self.queue.pop_due()
            if job is not None:
                self.run_job(job.update_id, job.ref)
                continue
            wait = self.queue.next_due_in()
            if wait is None or time.monotonic() + wait > deadline:
                return self.stats
            self.sleep(wait)

    def serve_forever(self, tick: float = 5.0, stop: Callable[[], bool] = lambda: False) -> None:
        """The embedded ``tocsin worker``: run what is queued, and every ``tick`` ask the database."""
        next_tick = 0.0
        while not stop():
            if time.monotonic() >= next_tick:
                redrive(self.rt, self.queue, stale_after=0.0)
                next_tick = time.monotonic() + tick
            job = self.queue.pop_due()
            if job is not None:
                self.run_job(job.update_id, job.ref)
                continue
            wait = self.queue.next_due_in()
            self.sleep(min(wait if wait is not None else tick, max(0.0, next_tick - time.monotonic()), 1.0))
