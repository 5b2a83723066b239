"""Sending from the console: publish (or approve), then make sure someone delivers.

With Redis (``REDIS_URL``) the Celery workers deliver. Without it (embedded mode) nobody else would, so
the console runs an ``EmbeddedRunner`` in a background thread once the update is released, as
``tocsin publish`` runs one in the foreground; the progress page then shows deliveries arriving.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from typing import TypeVar

from dispatcher.engine.runtime import Runtime
from dispatcher.engine.task_queue import TaskQueue
from dispatcher.runners.embedded import EmbeddedRunner
from dispatcher.runners.factory import work_for

log = logging.getLogger(__name__)

T = TypeVar("T")

MAX_PROBLEMS = 5
RETRY_WAIT = 30.0
"""The background runner also waits this long for retries due soon (later ones: ``tocsin worker``)."""


class BackgroundDelivery:
    """The embedded runners this process started; tests and shutdown can wait for them."""

    def __init__(self, wait: float = RETRY_WAIT) -> None:
        self.wait = wait
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._problems: deque[str] = deque(maxlen=MAX_PROBLEMS)

    @property
    def problems(self) -> list[str]:
        """Why background deliveries of this process stopped early, newest last: every console page
        shows them, so the person who pressed Send is told (the ledger still owes those rows)."""
        with self._lock:
            return list(self._problems)

    def start(self, runner: EmbeddedRunner) -> None:
        def run() -> None:
            try:
                runner.run_until_idle(wait_up_to=self.wait)
            except Exception as exc:  # a thread dies silently otherwise: logged, and shown on every page
                log.exception("console: background delivery stopped early")
                with self._lock:
                    self._problems.append(
                        f"{type(exc).__name__}: {exc}"[:500]
                        + " (what is still owed is delivered by `tocsin worker`)"
                    )

        thread = threading.Thread(target=run, name="tocsin-console-deliver", daemon=True)
        with self._lock:
            self._threads = [t for t in self._threads if t.is_alive()]
            self._threads.append(thread)
        thread.start()

    def join(self, timeout: float = 30.0) -> None:
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join(timeout)


def delivering(rt: Runtime, background: BackgroundDelivery, action: Callable[[TaskQueue], T]) -> T:
    """Run ``action`` (a publish or an approval) with a queue whose work someone will carry out."""
    work = work_for(rt)
    result = action(work.queue)
    if work.runner is not None and len(work.runner.queue):
        background.start(work.runner)
    return result
