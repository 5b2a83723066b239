"""Doing something that sends, then making sure it is delivered: by the workers, or here and now."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from dispatcher.cli.common import console, work_here
from dispatcher.cli.views import status_table
from dispatcher.cli.watch import watch
from dispatcher.domain.ids import update_ref

if TYPE_CHECKING:
    from dispatcher.domain.models import Update
    from dispatcher.engine.runtime import Runtime
    from dispatcher.engine.task_queue import TaskQueue
    from dispatcher.runners.factory import Work


def deliver_now(
    rt: Runtime, act: Callable[[TaskQueue], Update | None], wait: float, live: bool = False
) -> Update | None:
    """Run ``act`` with the right queue. On Redis the workers deliver (and this says so); embedded,
    deliver here and now (waiting up to ``wait`` seconds for retries due soon) and print what went
    out per channel. ``live``: show the progress per channel as it happens (``--watch``)."""
    from dispatcher.reporting.status import report

    work = work_here(rt)
    try:
        upd = act(work.queue)
        if live and upd is not None:
            _deliver_watching(rt, work, upd.id, wait)
        else:
            work.finish(wait)
    finally:
        rt.close()  # providers' pooled connections
    if live and upd is not None:
        if not work.by_workers and report(rt, upd.id).owed:
            console.print("deliveries still owed: `tocsin worker` retries them when due")
        return upd
    if work.by_workers:
        if upd is not None:
            console.print(
                f"workers are delivering update {update_ref(upd.id)} "
                f"(follow with `tocsin status {update_ref(upd.id)}`)"
            )
        return upd
    if upd is not None:
        result = report(rt, upd.id)
        console.print(status_table(result.update, result.channels, result.providers))
        if result.owed:
            console.print(f"{result.owed} deliveries still owed: `tocsin worker` retries them when due")
    return upd


def _deliver_watching(rt: Runtime, work: Work, update_id: int, wait: float) -> None:
    """Embedded: deliver in a thread of this process while the ledger is shown live; with workers,
    watch until they have delivered everything."""
    if work.by_workers:
        watch(rt, update_id, console)
        return
    delivering = threading.Thread(target=work.finish, args=(wait,), name="tocsin-deliver", daemon=True)
    delivering.start()
    watch(rt, update_id, console, every=0.5, stop=lambda: not delivering.is_alive())
    delivering.join()
