"""The Celery app. One queue per channel kind, so slow SMS never holds back email or webhooks.

Tasks are idempotent (rows are claimed atomically in the database), which is what makes ``acks_late``
and ``reject_on_worker_lost`` safe: a task whose worker died is delivered again, and only rows that
were in flight at that moment can be sent twice.
"""

from __future__ import annotations

from celery import Celery
from kombu.entity import Queue

from channels.base import ChannelKind
from dispatcher.config.settings import Settings
from workers.metrics import WorkerMetrics
from workers.redis_transport import TRANSPORT as SAFE_REDIS_TRANSPORT

FANOUT_QUEUE = "fanout"
MAINTENANCE_QUEUE = "maintenance"
CHANNEL_QUEUES = [kind.value for kind in ChannelKind]
ALL_QUEUES = [FANOUT_QUEUE, MAINTENANCE_QUEUE, *CHANNEL_QUEUES]


def make_app(settings: Settings | None = None) -> Celery:
    settings = settings or Settings()
    broker = settings.redis_url or "memory://"
    app = Celery("tocsin", broker=broker, include=["workers.tasks"])
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_ignore_result=True,
        worker_prefetch_multiplier=1,
        task_serializer="json",
        accept_content=["json"],
        task_default_queue=FANOUT_QUEUE,
        task_queues=[Queue(name) for name in ALL_QUEUES],  # type: ignore[no-untyped-call]
        task_routes={
            "tocsin.fanout": {"queue": FANOUT_QUEUE},
            "tocsin.redrive": {"queue": MAINTENANCE_QUEUE},
            "tocsin.tick": {"queue": MAINTENANCE_QUEUE},
        },
        broker_connection_retry_on_startup=True,
        # Kombu's Redis transport, minus the crash that stopped workers after a Redis restart.
        broker_transport=SAFE_REDIS_TRANSPORT if settings.redis_url else None,
        # A task unacknowledged this long is handed out again; deliveries finish well within it.
        broker_transport_options={"visibility_timeout": 3600},
        worker_hijack_root_logger=False,
        beat_schedule={
            "redrive-owed-work": {"task": "tocsin.redrive", "schedule": settings.retry.redrive_every},
            # Scheduled updates, maintenance stages, next-update reminders and holding messages.
            "periodic-duties": {"task": "tocsin.tick", "schedule": settings.tick_every},
        },
    )
    WorkerMetrics(settings.metrics_port).install()  # the worker's own /metrics, when metrics_port is set
    return app


app = make_app()
