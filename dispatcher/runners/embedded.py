"""The embedded default: the same dispatcher functions the Celery tasks call, run in this process.

No Redis, no broker file: an in-memory timer queue holds what to run next, a few threads deliver batches
(so a slow channel never holds back the others, and deliveries start while the fan-out is still
writing rows), and the database, which decides what is owed anyway, is polled by a periodic tick so
nothing is lost if this process stops.

Fan-outs run one at a time, in the order they were queued. In ``run_until_idle`` (``tocsin publish``)
the batches a fan-out has already written are delivered beside it, as long as nothing else is waiting
(another fan-out, another update's batches): then everything runs in the order it was queued, as if
each fan-out had finished first. ``serve_forever`` runs each fan-out to its end before anything else.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

from dispatcher.comms.tick import run_tick
from dispatcher.engine.delivery import deliver_batch
from dispatcher.engine.fanout import fan_out
from dispatcher.engine.redrive import redrive
from dispatcher.engine.runtime import Runtime
from dispatcher.engine.task_queue import BatchRef

DEFAULT_THREADS = 4
FANOUT_POLL_SECONDS = 0.01
"""While a fan-out runs on a thread, how often the loop looks for the batches it has written."""


@dataclass(order=True)
class _Job:
    due: float
    seq: int
    update_id: int = field(compare=False)
    ref: BatchRef | None = field(compare=False, default=None)


class EmbeddedQueue:
    """A thread-safe ``TaskQueue`` in memory, ordered by due time (monotonic clock)."""

    def __init__(self, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._jobs: list[_Job] = []
        self._seq = itertools.count()
        self._monotonic = monotonic
        self._queued: set[BatchRef] = set()
        self._lock = threading.Lock()

    def submit_fanout(self, update_id: int) -> None:
        with self._lock:
            heapq.heappush(self._jobs, _Job(self._monotonic(), next(self._seq), update_id))

    def submit_batch(self, ref: BatchRef, delay: float = 0.0) -> None:
        with self._lock:
            if ref in self._queued and delay == 0:
                return  # already waiting to run; claiming would make the second run a no-op anyway
            self._queued.add(ref)
            job = _Job(self._monotonic() + delay, next(self._seq), ref.update_id, ref)
            heapq.heappush(self._jobs, job)

    def pop_due(self, beside_fanout_of: int | None = None) -> _Job | None:
        """The next job due, if any. ``beside_fanout_of``: that update is being fanned out; only its own
        batches may start meanwhile, and only while no other job waits (so queued work keeps its order)."""
        with self._lock:
            if beside_fanout_of is not None and any(
                job.ref is None or job.update_id != beside_fanout_of for job in self._jobs
            ):
                return None
            if self._jobs and self._jobs[0].due <= self._monotonic():
                job = heapq.heappop(self._jobs)
                if job.ref is not None:
                    self._queued.discard(job.ref)
                return job
            return None

    def next_due_in(self) -> float | None:
        with self._lock:
            return None if not self._jobs else max(0.0, self._jobs[0].due - self._monotonic())

    def __len__(self) -> int:
        with self._lock:
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
        self,
        rt: Runtime,
        queue: EmbeddedQueue | None = None,
        sleep: Callable[[float], None] = time.sleep,
        threads: int = DEFAULT_THREADS,
    ) -> None:
        self.rt = rt
        self.queue = queue if queue is not None else EmbeddedQueue()  # an empty queue is falsy (__len__)
        self.sleep = sleep
        self.threads = max(1, threads)
        self.stats = RunStats()
        self._stats_lock = threading.Lock()
        self._fanning: int | None = None
        """The update whose fan-out runs on a thread right now, if any."""

    def run_job(self, update_id: int, ref: BatchRef | None) -> None:
        if ref is None:
            fan_out(self.rt, update_id, self.queue)
            with self._stats_lock:
                self.stats.fanouts += 1
            return
        outcome = deliver_batch(self.rt, ref)
        with self._stats_lock:
            self.stats.batches += 1
            self.stats.sent += outcome.sent
            self.stats.failed += outcome.failed
            self.stats.suppressed += outcome.suppressed
        if outcome.retry_in is not None:
            self.queue.submit_batch(ref, outcome.retry_in)

    def _fan_out(self, update_id: int) -> None:
        try:
            self.run_job(update_id, None)
        finally:
            self._fanning = None

    def _drain(self, pool: ThreadPoolExecutor, running: set[Future[None]], overlap: bool = False) -> None:
        """Start every job that may start now: batches on the pool; a fan-out here, or, with
        ``overlap``, on the pool too, its batches starting while it writes the next ones."""
        while True:
            if len(running) >= self.threads * 2:
                self._settle(running, FIRST_COMPLETED)
            job = self.queue.pop_due(beside_fanout_of=self._fanning)
            if job is None:
                return
            if job.ref is not None:
                running.add(pool.submit(self.run_job, job.update_id, job.ref))
            elif overlap:
                self._fanning = job.update_id
                running.add(pool.submit(self._fan_out, job.update_id))
            else:
                self.run_job(job.update_id, None)

    def _wait_at_most(self, pause: float | None) -> float | None:
        """While a fan-out runs, look again soon: the batches it writes can start at once."""
        if self._fanning is None:
            return pause
        return FANOUT_POLL_SECONDS if pause is None else min(pause, FANOUT_POLL_SECONDS)

    @staticmethod
    def _settle(running: set[Future[None]], how: str, timeout: float | None = None) -> None:
        done, _ = wait(running, timeout=timeout, return_when=how)
        for future in done:
            running.discard(future)
            future.result()  # an unexpected error in a batch is not swallowed

    def run_until_idle(self, wait_up_to: float = 0.0) -> RunStats:
        """Run everything due now; also wait for retries due within ``wait_up_to`` seconds."""
        deadline = time.monotonic() + wait_up_to
        running: set[Future[None]] = set()
        with ThreadPoolExecutor(self.threads, thread_name_prefix="tocsin-deliver") as pool:
            while True:
                self._drain(pool, running, overlap=True)
                if running:
                    self._settle(running, FIRST_COMPLETED, timeout=self._wait_at_most(None))
                    continue
                pause = self.queue.next_due_in()
                if pause is None or time.monotonic() + pause > deadline:
                    return self.stats
                self.sleep(pause)

    def serve_forever(self, tick: float = 5.0, stop: Callable[[], bool] = lambda: False) -> None:
        """The embedded ``tocsin worker``: run what is queued, and every ``tick`` ask the database."""
        next_tick = 0.0
        running: set[Future[None]] = set()
        with ThreadPoolExecutor(self.threads, thread_name_prefix="tocsin-deliver") as pool:
            while not stop():
                if time.monotonic() >= next_tick:
                    # Work this process queued itself is in memory; a little staleness spares rewriting it.
                    redrive(self.rt, self.queue, stale_after=2 * tick)
                    run_tick(self.rt, self.queue)  # scheduled updates, maintenance, promises
                    next_tick = time.monotonic() + tick
                self._drain(pool, running)
                pause = self.queue.next_due_in()
                pause = min(pause if pause is not None else tick, max(0.0, next_tick - time.monotonic()), 1.0)
                if running:
                    self._settle(running, FIRST_COMPLETED, timeout=pause)
                else:
                    self.sleep(pause)
