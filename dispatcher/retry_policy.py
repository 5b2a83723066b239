"""The one place that decides what happens after a failed attempt.

* transient (timeout, 5xx, 429): back off exponentially with jitter (tenacity's strategy), never
  sooner than the provider's ``Retry-After``, until ``max_attempts`` is reached;
* permanent (bad request, invalid address): failed at once, never retried;
* provider unavailable: the rows move to the next provider in the channel's failover order; when no
  provider is left, it is treated as transient (the providers may come back).

Each attempt is one claim of the rows, counted in ``deliveries.attempts`` and logged in
``delivery_attempts``; the retry itself is scheduled by whoever runs the work (a Celery countdown for
short waits, the database tick for long ones), so a worker never sleeps on a provider.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import tenacity

from dispatcher.settings import RetrySettings


class Action(enum.StrEnum):
    RETRY = "retry"
    GIVE_UP = "give_up"


@dataclass(frozen=True)
class Decision:
    action: Action
    delay: float = 0.0


class RetryPolicy:
    def __init__(self, settings: RetrySettings) -> None:
        self.settings = settings
        self._wait = tenacity.wait_exponential_jitter(
            multiplier=settings.initial_backoff, max=settings.max_backoff, jitter=settings.initial_backoff
        )

    def backoff(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait after the ``attempt``-th failed attempt (1-based)."""
        state = tenacity.RetryCallState(None, None, (), {})  # type: ignore[arg-type]
        state.attempt_number = max(attempt, 1)
        computed = float(self._wait(state))
        return max(computed, retry_after or 0.0)

    def after_transient(self, attempts: int, retry_after: float | None = None) -> Decision:
        """What to do with a delivery that has had ``attempts`` attempts, the last one transient."""
        if attempts >= self.settings.max_attempts:
            return Decision(Action.GIVE_UP)
        return Decision(Action.RETRY, self.backoff(attempts, retry_after))
