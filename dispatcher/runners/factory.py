"""The one place that chooses what runs the work: Celery workers on Redis when ``REDIS_URL`` is set,
the embedded runner in this process otherwise. Every interface (CLI, API, console) asks here.

Three shapes of the same choice:

- ``work_for(rt)`` — one action (a publish, an approval, a re-drive): the queue to hand it, and, in
  embedded mode, the runner that delivers what it queued (``Work.finish`` in the foreground, or
  ``Work.serve_in_background`` in a server process);
- ``run_worker(…)`` — ``tocsin worker``: a Celery worker, or the embedded runner serving forever;
- ``queue_lengths(settings)`` — what waits in the broker's queues, for the metrics (none embedded).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from dispatcher.domain.errors import InvalidInput
from dispatcher.engine.task_queue import TaskQueue
from dispatcher.runners.broker import broker_queue, broker_queue_lengths, broker_worker

if TYPE_CHECKING:
    # The embedded runner brings the whole delivery machine (adapters' SDKs, rendering): only the side
    # that delivers in this process imports it, so `tocsin publish` on Redis stays quick to start.
    from dispatcher.config.settings import Settings
    from dispatcher.engine.runtime import Runtime
    from dispatcher.runners.embedded import EmbeddedRunner, RunStats


def uses_broker(settings: Settings) -> bool:
    return settings.redis_url is not None


@dataclass
class Work:
    """Where an action's work goes, and who carries it out."""

    queue: TaskQueue
    runner: EmbeddedRunner | None = None
    """Embedded mode: the runner in this process that delivers what was queued; ``None`` when the
    broker's workers do."""

    @property
    def by_workers(self) -> bool:
        return self.runner is None

    def finish(self, wait: float) -> RunStats | None:
        """Embedded: deliver what the action queued, now, also waiting up to ``wait`` seconds for
        retries due soon. With a broker there is nothing to do here: the workers deliver."""
        return None if self.runner is None else self.runner.run_until_idle(wait_up_to=wait)

    def serve_in_background(self, tick: float) -> None:
        """Embedded: keep delivering in a daemon thread of this (server) process, polling the database
        every ``tick`` seconds for anything owed, so nothing published is lost if it restarts."""
        if self.runner is not None:
            thread = threading.Thread(
                target=self.runner.serve_forever,
                kwargs={"tick": tick},
                name="tocsin-embedded-runner",
                daemon=True,
            )
            thread.start()


def work_for(rt: Runtime) -> Work:
    if uses_broker(rt.settings):
        return Work(broker_queue())
    from dispatcher.runners.embedded import EmbeddedRunner

    runner = EmbeddedRunner(rt)
    return Work(runner.queue, runner)


def run_worker(
    settings: Settings,
    runtime: Callable[[], Runtime],
    *,
    queues: list[str] | None,
    concurrency: int | None,
    beat: bool,
    loglevel: str,
    tick: float,
    announce: Callable[[str], None],
) -> None:
    """``tocsin worker``: deliver what is owed until stopped."""
    if uses_broker(settings):
        broker_worker()(queues, concurrency, beat, loglevel)
        return
    if queues:
        raise InvalidInput("-Q needs Redis (REDIS_URL): the embedded runner serves every channel")
    from dispatcher.runners.embedded import EmbeddedRunner

    rt = runtime()
    announce("embedded worker: delivering owed updates from the database (Ctrl-C to stop)")
    EmbeddedRunner(rt).serve_forever(tick=tick)


def queue_lengths(settings: Settings) -> Callable[[], Mapping[str, int]] | None:
    """For ``tocsin_broker_queue_length``: the broker's queues, or nothing in embedded mode."""
    if settings.redis_url is None:
        return None
    return broker_queue_lengths(settings.redis_url)
