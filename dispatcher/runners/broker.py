"""The broker side of the choice (``dispatcher.runners.factory``): Celery's queue and worker.

The core never imports Celery: the Celery queue and worker are found by entry point
(``tocsin.queues`` / ``tocsin.workers``, provided by ``workers/``), the same way providers are.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from importlib.metadata import entry_points
from typing import Any, cast

from dispatcher.domain.errors import ConfigurationError
from dispatcher.engine.task_queue import TaskQueue


def _load(group: str, name: str = "celery") -> Any:
    for ep in entry_points(group=group, name=name):
        return ep.load()
    raise ConfigurationError(
        f"REDIS_URL is set but no {group} entry point is installed: install Tocsin (pip install -e .)"
    )


def broker_queue() -> TaskQueue:
    return cast(TaskQueue, _load("tocsin.queues")())


def broker_worker() -> Callable[..., None]:
    return cast(Callable[..., None], _load("tocsin.workers"))


def broker_queue_lengths(redis_url: str) -> Callable[[], Mapping[str, int]] | None:
    """Tasks waiting per broker queue, read through the broker's own package (``workers``), if it
    offers that; the core does not know the broker's storage layout."""
    lengths = getattr(_load("tocsin.queues"), "queue_lengths", None)
    if lengths is None:
        return None
    return lambda: cast(Mapping[str, int], lengths(redis_url))
