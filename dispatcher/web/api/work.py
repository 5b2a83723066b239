"""Where the API hands work (fan-outs, re-driven batches): the broker's workers when ``REDIS_URL`` is
set; otherwise an embedded runner in this process, started on first use, which also polls the database
for anything owed (so nothing published is lost if the server restarts).

Tests put their own queue factory in ``app.state.task_queue`` and run the embedded runner themselves.
"""

from __future__ import annotations

import threading
from typing import Annotated

from fastapi import Depends, Request

from dispatcher.engine.task_queue import TaskQueue
from dispatcher.runners.factory import Work, work_for
from dispatcher.web.api.auth import runtime_of

_lock = threading.Lock()
TICK_SECONDS = 5.0


def task_queue(request: Request) -> TaskQueue:
    factory = getattr(request.app.state, "task_queue", None)
    if factory is not None:
        queue: TaskQueue = factory()
        return queue
    app = request.app
    with _lock:
        work: Work | None = getattr(app.state, "work", None)
        if work is None:
            work = work_for(runtime_of(request))
            work.serve_in_background(TICK_SECONDS)
            app.state.work = work
    return work.queue


QueueDep = Annotated[TaskQueue, Depends(task_queue)]
