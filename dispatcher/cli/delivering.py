"""Doing something that sends, then making sure it is delivered: by the workers, or here and now."""

from __future__ import annotations

from collections.abc import Callable

from dispatcher.cli.common import console
from dispatcher.cli.views import status_table
from dispatcher.domain.models import Update
from dispatcher.engine.runtime import Runtime
from dispatcher.engine.task_queue import TaskQueue
from dispatcher.reporting.status import report
from dispatcher.runners.factory import work_for


def deliver_now(rt: Runtime, act: Callable[[TaskQueue], Update | None], wait: float) -> Update | None:
    """Run ``act`` with the right queue. On Redis the workers deliver (and this says so); embedded,
    deliver here and now (waiting up to ``wait`` seconds for retries due soon) and print what went
    out per channel."""
    work = work_for(rt)
    try:
        upd = act(work.queue)
        work.finish(wait)
    finally:
        rt.close()  # providers' pooled connections
    if work.by_workers:
        if upd is not None:
            console.print(f"workers are delivering update {upd.id} (follow with `tocsin status {upd.id}`)")
        return upd
    if upd is not None:
        result = report(rt, upd.id)
        console.print(status_table(result.update, result.channels, result.providers))
        if result.owed:
            console.print(f"{result.owed} deliveries still owed: `tocsin worker` retries them when due")
    return upd
