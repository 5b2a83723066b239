"""Choosing what runs the work: Celery on Redis when ``REDIS_URL`` is set, the embedded runner otherwise.

The core never imports Celery: the Celery queue and worker are found by entry point
(``tocsin.queues`` / ``tocsin.workers``, provided by ``workers/``), the same way providers are.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any, cast

from dispatcher.config.settings import Settings
from dispatcher.domain.errors import ConfigurationError
from dispatcher.engine.task_queue import TaskQueue


def _load(group: str, name: str = "celery") -> Any:
    for ep in entry_points(group=group, name=name):
        return ep.load()
    raise ConfigurationError(
        f"REDIS_URL is set but no {group} entry point is installed: install Tocsin (pip install -e .)"
    )


def uses_broker(settings: Settings) -> bool:
    return settings.redis_url is not None


def broker_queue() -> TaskQueue:
    return cast(TaskQueue, _load("tocsin.queues")())


def broker_worker() -> Callable[..., None]:
    return cast(Callable[..., None], _load("tocsin.workers"))
