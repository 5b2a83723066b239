"""How the core hands work to whatever runs it, without knowing what that is.

``workers/`` implements this with Celery tasks on Redis; ``dispatcher.runners.embedded`` implements it
in-process.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from channels.base import ChannelKind


@dataclass(frozen=True, order=True)
class BatchRef:
    """One batch of delivery rows: what a deliver task takes (ids, never objects)."""

    update_id: int
    channel: ChannelKind
    batch: int


class TaskQueue(Protocol):
    def submit_fanout(self, update_id: int) -> None: ...

    def submit_batch(self, ref: BatchRef, delay: float = 0.0) -> None: ...
