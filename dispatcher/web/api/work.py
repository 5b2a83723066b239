"""Where the API hands work (fan-outs, re-driven batches): the broker's workers when ``REDIS_URL`` is
set; otherwise an embedded runner in this process, started on first use, which also polls the database
for anything owed (so nothing published is lost if the server restarts).

Tests put their own queue factory in ``app.state.task_queue`` and run the embedded runner themselves.
"""

from __future__ import annotations

import threading
from typing import Annotated

from fastapi import Depends, FastAPI, Request

from dispatcher.engine.task_queue import TaskQueue
from dispatcher.runners.broker import broker_queue, uses_broker
from dispatcher.runners.embedded import EmbeddedRunner
from dispatcher.web.api.auth import runtime_of

_lock = threading.Lock()
TICK_SECONDS = 5.0


def _background_runner(app: FastAPI, request: Request) -> EmbeddedRunner:
    with _lock:
        runner: EmbeddedRunner | None = getattr(app.state, "embedded_runner", None)
        if runner is None:
            runner = EmbeddedRunner(runtime_of(request))
            thread = threading.Thread(
                target=runner.serve_forever,
                kwargs={"tick": TICK_SECONDS},
                name="tocsin-api-embedded-runner",
                daemon=True,
            )
            thread.start()
            app.state.embedded_runner = runner
        return runner


def task_queue(request: Request) -> TaskQueue:
    factory = getattr(request.app.state, "task_queue", None)
    if factory is not None:
        queue: TaskQueue = factory()
        return queue
    if uses_broker(runtime_of(request).settings):
        return broker_queue()
    return _background_runner(request.app, request).queue


QueueDep = Annotated[TaskQueue, Depends(task_queue)]
