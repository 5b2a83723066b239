"""The broker side of the choice (``dispatcher.runners.factory``): Celery's queue and worker.

The core never imports Celery: the Celery queue and worker are found by entry point
(``tocsin.queues`` / ``tocsin.workers``, provided by ``workers/``), the same way providers are.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from importlib.metadata import EntryPoint, PackageNotFoundError, distribution, entry_points
from typing import Any, cast

from dispatcher.domain.errors import ConfigurationError
from dispatcher.engine.task_queue import TaskQueue


def _own(group: str, name: str) -> Iterable[EntryPoint]:
    """Tocsin's own entry points: reading one package's metadata, not every installed package's, saves
    a few dozen milliseconds of ``tocsin publish``."""
    try:
        found = distribution("tocsin").entry_points
    except PackageNotFoundError:  # run from a source tree that is not installed
        return []
    return [ep for ep in found if ep.group == group and ep.name == name]


def _candidates(group: str, name: str) -> Iterator[EntryPoint]:
    yield from _own(group, name)
    yield from entry_points(group=group, name=name)  # only scanned when Tocsin has none of its own


def _load(group: str, name: str = "celery") -> Any:
    for ep in _candidates(group, name):
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
