"""The one place that decides what happens after a failed attempt.

* transient (timeout, 5xx, 429): retried on the channel's schedule (Svix's by default: at once, 5 s,
  5 min, 30 min, 2 h, 5 h, 10 h, 10 h), with a little jitter so retries of many rows do not land at
  the same instant, and never sooner than the provider's ``Retry-After``; after the last step of the
  schedule the delivery is failed (a dead letter, listed by ``tocsin deliveries``);
* permanent (bad request, invalid address): failed at once, never retried;
* provider unavailable: the rows move to the next provider in the channel's failover order; when no
  provider is left, it is treated as transient (the providers may come back).

A retry is also capped by the update's relevance: once a newer update of the incident exists for an
address, the older one is superseded instead of retried (``dispatcher.engine.sequencing.ordering``).

Each attempt is one claim of the rows, counted in ``deliveries.attempts`` and logged in
``delivery_attempts``; the retry itself is scheduled by whoever runs the work (a Celery countdown for
short waits, the database tick for long ones), so a worker never sleeps on a provider.
"""

from __future__ import annotations

import enum
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import tenacity

from channels.base import ChannelKind
from dispatcher.config.settings import Settings


class Action(enum.StrEnum):
    RETRY = "retry"
    GIVE_UP = "give_up"


@dataclass(frozen=True)
class Decision:
    action: Action
    delay: float = 0.0


class RetryPolicy:
    def __init__(
        self, schedule: Sequence[float], jitter: float = 0.1, rng: Callable[[], float] = random.random
    ) -> None:
        self.schedule = list(schedule)
        self.jitter = jitter
        self._rng = rng
        self._wait = tenacity.wait_chain(*(tenacity.wait_fixed(step) for step in self.schedule))

    @classmethod
    def for_channel(cls, settings: Settings, channel: ChannelKind) -> RetryPolicy:
        own = settings.channels[channel].retry_schedule
        return cls(own if own is not None else settings.retry.schedule, settings.retry.jitter)

    @property
    def max_attempts(self) -> int:
        return len(self.schedule) + 1

    def backoff(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait after the ``attempt``-th failed attempt (1-based)."""
        state = tenacity.RetryCallState(None, None, (), {})  # type: ignore[arg-type]
        state.attempt_number = max(attempt, 1)
        step = float(self._wait(state)) if self.schedule else 0.0
        spread = step * self.jitter * (2 * self._rng() - 1)
        return max(step + spread, retry_after or 0.0, 0.0)

    def after_transient(self, attempts: int, retry_after: float | None = None) -> Decision:
        """What to do with a delivery that has had ``attempts`` attempts, the last one transient."""
        if attempts >= self.max_attempts:
            return Decision(Action.GIVE_UP)
        return Decision(Action.RETRY, self.backoff(attempts, retry_after))
