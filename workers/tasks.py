"""Thin Celery tasks: they take ids and call dispatcher functions. Policy lives in the dispatcher."""

from __future__ import annotations

import logging
from typing import Any

from celery.signals import worker_process_init

from channels.base import ChannelKind
from dispatcher.comms.tick import run_tick
from dispatcher.engine.delivery import deliver_batch
from dispatcher.engine.fanout import fan_out
from dispatcher.engine.redrive import redrive as redrive_owed
from dispatcher.engine.runtime import Runtime, build_runtime
from dispatcher.engine.task_queue import BatchRef
from dispatcher.store.engine import get_engine
from workers.app import app
from workers.queue import CeleryQueue

log = logging.getLogger(__name__)
_runtime: Runtime | None = None


def runtime() -> Runtime:
    global _runtime
    if _runtime is None:
        _runtime = build_runtime()
    return _runtime


@worker_process_init.connect  # type: ignore[untyped-decorator]
def _fresh_connections(**_: Any) -> None:
    # A forked child must not share the parent's database connections or provider sessions.
    global _runtime
    get_engine.cache_clear()
    _runtime = None


@app.task(name="tocsin.fanout")  # type: ignore[untyped-decorator]
def fanout(update_id: int) -> None:
    summary = fan_out(runtime(), update_id, CeleryQueue())
    log.info("fanned out update %s: %s", update_id, summary.rows)


@app.task(name="tocsin.deliver")  # type: ignore[untyped-decorator]
def deliver(update_id: int, channel: str, batch: int) -> None:
    ref = BatchRef(update_id, ChannelKind(channel), batch)
    outcome = deliver_batch(runtime(), ref)
    if outcome.retry_in is not None:
        CeleryQueue().submit_batch(ref, outcome.retry_in)


@app.task(name="tocsin.redrive")  # type: ignore[untyped-decorator]
def redrive() -> None:
    # Wait a lease before re-driving fresh work: a batch may sit in a long queue behind a big fan-out.
    rt = runtime()
    found = redrive_owed(rt, CeleryQueue(), stale_after=rt.settings.retry.lease_seconds)
    if found.updates or found.batches:
        log.info("re-drove %s updates and %s batches", found.updates, found.batches)


@app.task(name="tocsin.tick")  # type: ignore[untyped-decorator]
def tick() -> None:
    """Scheduled updates, maintenance stages, next-update reminders and holding messages, once."""
    report = run_tick(runtime(), CeleryQueue())
    if report.acted or report.errors:
        log.info("tick: %s", report.summary())
