"""The one place that decides what happens after a provider call: done, fail over, or halt; and, per
row, sent, failed, suppressed, retried later (with when) or given up.

* transient (timeout, 5xx, 429): retried on the channel's schedule (Svix's by default: at once, 5 s,
  5 min, 30 min, 2 h, 5 h, 10 h, 10 h), with a little jitter so retries of many rows do not land at
  the same instant, and never sooner than the provider's ``Retry-After``; after the last step of the
  schedule the delivery is failed (a dead letter, listed by ``tocsin deliveries``);
* permanent (bad request, invalid address): failed at once, never retried;
* provider unavailable (bad credentials, down), or a circuit that opens on repeated transient errors
  while another provider is left: the rows move to the next provider in the channel's failover order;
  when no provider is left, they are treated as transient (the providers may come back).

A retry is also capped by the update's relevance: once a newer update of the incident exists for an
address, the older one is superseded instead of retried (``dispatcher.engine.sequencing.ordering``).

``decide_error`` and ``decide_results`` return a ``Verdict``; ``dispatcher.engine.delivery`` only
writes it to the ledger. The retry itself is scheduled by whoever runs the work (a Celery countdown for
short waits, the database tick for long ones), so a worker never sleeps on a provider. The backoff is
plain arithmetic over the schedule (as in dramatiq's ``compute_backoff``).
"""

from __future__ import annotations

import enum
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from channels.base import (
    ChannelError,
    ChannelKind,
    Outcome,
    PermanentError,
    ProviderUnavailable,
    Result,
    TransientError,
)
from dispatcher.config.settings import Settings
from dispatcher.engine.claims import ClaimedRow
from dispatcher.engine.pacing.circuit_breaker import CircuitBreaker


class Action(enum.StrEnum):
    RETRY = "retry"
    GIVE_UP = "give_up"


@dataclass(frozen=True)
class Decision:
    action: Action
    delay: float = 0.0


class RetryPolicy:
    """A channel's retry schedule: seconds to wait after the 1st, 2nd, … failed attempt."""

    def __init__(
        self, schedule: Sequence[float], jitter: float = 0.1, rng: Callable[[], float] = random.random
    ) -> None:
        self.schedule = list(schedule)
        self.jitter = jitter
        self._rng = rng

    @classmethod
    def for_channel(cls, settings: Settings, channel: ChannelKind) -> RetryPolicy:
        own = settings.channels[channel].retry_schedule
        return cls(own if own is not None else settings.retry.schedule, settings.retry.jitter)

    @property
    def max_attempts(self) -> int:
        return len(self.schedule) + 1

    def backoff(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait after the ``attempt``-th failed attempt (1-based): the schedule's step (the
        last one repeats), spread by the jitter, never below the provider's ``Retry-After``."""
        step = self.schedule[min(max(attempt, 1), len(self.schedule)) - 1] if self.schedule else 0.0
        spread = step * self.jitter * (2 * self._rng() - 1)
        return max(step + spread, retry_after or 0.0, 0.0)

    def after_transient(self, attempts: int, retry_after: float | None = None) -> Decision:
        """What to do with a delivery that has had ``attempts`` attempts, the last one transient."""
        if attempts >= self.max_attempts:
            return Decision(Action.GIVE_UP)
        return Decision(Action.RETRY, self.backoff(attempts, retry_after))


class Step(enum.Enum):
    DONE = "done"
    """The rows' results are decided: go on with the next chunk."""
    FAILOVER = "failover"
    """The provider cannot serve: these rows (and the rest) go to the next provider."""
    HALT = "halt"
    """The provider failed the whole call: stop calling it for this batch."""


@dataclass
class Verdict:
    """What one provider call means for the batch (``step``) and for each of its rows."""

    step: Step
    outcome: str
    """For the attempts log: sent, partial, transient, failed, unavailable, failover."""
    error: str | None = None
    sent: list[tuple[int, str | None]] = field(default_factory=list)
    """(row id, provider message id)."""
    failed: list[tuple[int, str]] = field(default_factory=list)
    """(row id, why): permanent errors and rows whose retries ran out."""
    opted_out: list[int] = field(default_factory=list)
    """Row ids whose recipient told the provider to stop."""
    requeue: list[tuple[int, str, float]] = field(default_factory=list)
    """(row id, why, seconds until it is owed again)."""

    @property
    def retry_in(self) -> float | None:
        return min((delay for _, _, delay in self.requeue), default=None)


def _schedule(
    policy: RetryPolicy, retry: list[tuple[ClaimedRow, str, float | None]]
) -> tuple[list[tuple[int, str, float]], list[tuple[int, str]]]:
    """Rows to requeue (with one shared delay, so the batch stays whole) and rows to give up on."""
    requeue: list[tuple[int, str, float]] = []
    give_up: list[tuple[int, str]] = []
    if not retry:
        return requeue, give_up
    attempts = max(row.attempts for row, _, _ in retry)
    hints = [after for _, _, after in retry if after is not None]
    delay = policy.backoff(attempts, max(hints) if hints else None)
    for row, error, _ in retry:
        if policy.after_transient(row.attempts).action is Action.GIVE_UP:
            give_up.append((row.id, f"gave up after {row.attempts} attempts: {error}"))
        else:
            requeue.append((row.id, error, delay))
    return requeue, give_up


def retry_later(
    policy: RetryPolicy, rows: Sequence[ClaimedRow], error: str, retry_after: float | None
) -> Verdict:
    """Every row failed transiently (or no provider could take them): requeue or give up."""
    requeue, give_up = _schedule(policy, [(r, error, retry_after) for r in rows])
    return Verdict(Step.HALT, "transient", error, failed=give_up, requeue=requeue)


def skip_reason(breaker: CircuitBreaker, provider: str, has_fallback: bool) -> str | None:
    """Why not to call ``provider`` now (its circuit is open and another provider is left), if so."""
    if has_fallback and not breaker.allows(provider):
        return f"{provider}: circuit open"
    return None


def decide_error(
    error: ChannelError,
    rows: Sequence[ClaimedRow],
    policy: RetryPolicy,
    breaker: CircuitBreaker,
    provider: str,
    has_fallback: bool,
) -> Verdict:
    """The provider refused the whole call with ``error``."""
    if isinstance(error, ProviderUnavailable):
        breaker.trip(provider)
        return Verdict(Step.FAILOVER, "unavailable", error.message)
    if isinstance(error, PermanentError):
        return Verdict(Step.DONE, "failed", error.message, failed=[(r.id, error.message) for r in rows])
    if isinstance(error, TransientError):
        if breaker.record_failure(provider) and has_fallback:
            return Verdict(Step.FAILOVER, "failover", f"circuit opened: {error.message}")
        return retry_later(policy, rows, error.message, error.retry_after)
    # An adapter's own subclass we don't know: treat it as transient.
    return retry_later(policy, rows, error.message, None)


def decide_results(
    results: Sequence[Result],
    rows: Sequence[ClaimedRow],
    policy: RetryPolicy,
    breaker: CircuitBreaker,
    provider: str,
) -> Verdict:
    """The provider answered per recipient: sort each row by its result."""
    if any(r.outcome is Outcome.SENT for r in results):
        breaker.record_success(provider)
    elif any(r.outcome is Outcome.RETRY for r in results):
        breaker.record_failure(provider)
    by_id = {r.id: r for r in rows}
    verdict = Verdict(Step.DONE, "sent")
    retry: list[tuple[ClaimedRow, str, float | None]] = []
    for res in results:
        row = by_id.get(res.delivery_id)
        if row is None:
            continue
        if res.outcome is Outcome.SENT:
            verdict.sent.append((row.id, res.provider_message_id))
        elif res.outcome is Outcome.FAILED:
            verdict.failed.append((row.id, res.error or "failed"))
        elif res.outcome is Outcome.OPTED_OUT:
            verdict.opted_out.append(row.id)
        else:
            retry.append((row, res.error or "retry", res.retry_after))
    # A row the adapter did not answer for is owed again, never silently dropped.
    answered = {res.delivery_id for res in results}
    retry += [(r, "no result from provider", None) for r in rows if r.id not in answered]
    if verdict.failed or retry:
        verdict.outcome = "partial"
    verdict.requeue, give_up = _schedule(policy, retry)
    verdict.failed += give_up
    return verdict
