"""The Celery implementation of the dispatcher's ``TaskQueue``."""

from __future__ import annotations

from dispatcher.engine.task_queue import BatchRef
from workers.app import ALL_QUEUES, FANOUT_QUEUE, app

MAX_COUNTDOWN_SECONDS = 60.0
"""Longer waits are not parked in Redis: the database keeps the time and the redrive tick fires it."""
PRIORITY_SEPARATOR = "\x06\x16"
PRIORITY_STEPS = (3, 6, 9)
"""kombu's Redis transport keeps a queue's prioritised messages in ``<queue>\\x06\\x16<step>`` lists."""


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

    @staticmethod
    def queue_lengths(redis_url: str) -> dict[str, int]:
        """Tasks waiting in each Celery queue on Redis (kombu's key layout is this package's to know);
        the hook behind ``tocsin_broker_queue_length``. Raises ``redis.RedisError`` when Redis is down."""
        import redis

        client = redis.Redis.from_url(redis_url, socket_timeout=2)
        try:
            pipe = client.pipeline()
            for queue in ALL_QUEUES:
                pipe.llen(queue)
                for step in PRIORITY_STEPS:
                    pipe.llen(f"{queue}{PRIORITY_SEPARATOR}{step}")
            lengths = pipe.execute()
        finally:
            client.close()
        per_queue = 1 + len(PRIORITY_STEPS)
        return {
            queue: sum(int(n) for n in lengths[index * per_queue : (index + 1) * per_queue])
            for index, queue in enumerate(ALL_QUEUES)
        }
