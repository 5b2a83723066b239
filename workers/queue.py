"""The Celery implementation of the dispatcher's ``TaskQueue``."""

from __future__ import annotations

from dispatcher.engine.task_queue import BatchRef
from workers.app import FANOUT_QUEUE, app

MAX_COUNTDOWN_SECONDS = 60.0
"""Longer waits are not parked in Redis: the database keeps the time and the redrive tick fires it."""


class CeleryQueue:
    def submit_fanout(self, update_id: int) -> None:
        app.send_task("tocsin.fanout", args=[update_id], queue=FANOUT_QUEUE)

    def submit_batch(self, ref: BatchRef, delay: float = 0.0) -> None:
        if delay > MAX_COUNTDOWN_SECONDS:
            return
        app.send_task(
            "tocsin.deliver",
            args=[ref.update_id, ref.channel.value, ref.batch],
            queue=ref.channel.value,
            countdown=delay or None,
        )
