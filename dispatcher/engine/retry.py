"""The one place that decides what happens after a provider call: done, fail over, or halt; and, per
row, sent, failed, suppressed, retried later (with when), handed to the next provider, or given up.

* transient (timeout, 5xx, 429): retried on the channel's schedule, with a little jitter so retries of
  many rows do not land at the same instant, and never sooner than the provider's ``Retry-After``.
  Provider APIs (email, SMS, X, chat, status page) retry within seconds, then every minute
  (``retry.provider_schedule``); customers' webhook endpoints follow Svix's hours-long schedule
  (``retry.endpoint_schedule``). When a row's schedule runs out it goes to the channel's next provider
  if there is one, else it is failed (a dead letter, listed by ``tocsin deliveries``);
* permanent (bad request, invalid address): failed at once, never retried;
* provider unavailable (bad credentials, down), or a circuit that opens on repeated transient errors
  while another provider is left: the rows move to the next provider in the channel's failover order;
  when no provider is left, they stay owed (the providers may come back).

**An attempt is counted only for a row whose request reached a provider.** Each row waits on its own
attempts, never on another row's; rows an adapter stopped before reaching (``Outcome.UNTRIED``) are
owed again uncounted, at once, or when the provider account's pause ends: a provider API's 429 pauses
the whole account (``dispatcher.engine.pacing.pause``), not one row.

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


def is_provider_api(channel: ChannelKind) -> bool:
    """Whether ``channel`` goes through a provider's API (one account, whose 429 concerns every
    request), rather than to customers' own endpoints (webhooks: each endpoint answers for itself)."""
    return channel is not ChannelKind.WEBHOOK


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
        """The channel's own schedule, else ``retry.schedule``, else the default for its destination."""
        retry = settings.retry
        schedule = settings.channels[channel].retry_schedule or retry.schedule
        if schedule is None:
            schedule = retry.provider_schedule if is_provider_api(channel) else retry.endpoint_schedule
        return cls(schedule, retry.jitter)

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
    """The provider failed the whole call, or asked to wait: stop calling it for this batch."""


@dataclass
class Verdict:
    """What one provider call (or one window of its results) means for the batch (``step``) and for
    each of its rows. Rows in ``sent``, ``failed``, ``opted_out`` and ``requeue`` made an attempt (it
    is counted); rows in ``untried`` and ``hand_over`` did not, or are not charged for it."""

    step: Step
    outcome: str
    """For the attempts log: sent, partial, transient, failed, unavailable, failover, stopped."""
    error: str | None = None
    sent: list[tuple[int, str | None]] = field(default_factory=list)
    """(row id, provider message id)."""
    failed: list[tuple[int, str]] = field(default_factory=list)
    """(row id, why): permanent errors, and rows whose retries ran out with no provider left."""
    opted_out: list[int] = field(default_factory=list)
    """Row ids whose recipient told the provider to stop."""
    requeue: list[tuple[int, str, float]] = field(default_factory=list)
    """(row id, why, seconds until it is owed again)."""
    untried: list[tuple[int, str]] = field(default_factory=list)
    """(row id, why): never reached the provider; owed again, uncounted (``untried_wait`` says when)."""
    hand_over: list[int] = field(default_factory=list)
    """Row ids whose schedule ran out on this provider: the channel's next provider tries them now."""
    pause: float | None = None
    """Seconds the provider asked to wait (a Retry-After); for a provider API that is the whole
    account's pause (webhooks: only that endpoint's row waits)."""
    tried: list[tuple[int, str, str]] = field(default_factory=list)
    """(row id, outcome, error) of each counted attempt that did not deliver: the evidence kept per
    row in ``delivery_tries``."""

    @property
    def retry_in(self) -> float | None:
        return min((delay for _, _, delay in self.requeue), default=None)

    @property
    def charged(self) -> int:
        """Rows that made an attempt in this call."""
        return len(self.sent) + len(self.tried)

    def absorb(self, other: Verdict) -> None:
        """Add ``other``'s rows (a later window of the same call) to this one."""
        self.sent += other.sent
        self.failed += other.failed
        self.opted_out += other.opted_out
        self.requeue += other.requeue
        self.untried += other.untried
        self.hand_over += other.hand_over
        self.tried += other.tried
        if other.pause is not None:
            self.pause = max(self.pause or 0.0, other.pause)
        if other.step is not Step.DONE and self.step is not Step.FAILOVER:
            self.step = other.step
        if other.outcome != "sent":
            self.outcome = other.outcome if self.outcome == "sent" and not self.sent else "partial"
        self.error = other.error or self.error


def _schedule(
    policy: RetryPolicy, retry: list[tuple[ClaimedRow, str, float | None]], has_fallback: bool
) -> tuple[list[tuple[int, str, float]], list[tuple[int, str]], list[int]]:
    """Rows to requeue (each after the wait its own attempt count calls for, one jitter draw per count so
    rows tried as often stay together, never before its own Retry-After), rows to give up on, and rows
    to hand to the next provider."""
    requeue: list[tuple[int, str, float]] = []
    give_up: list[tuple[int, str]] = []
    hand_over: list[int] = []
    delays: dict[int, float] = {}
    for row, error, after in retry:
        made = row.attempts + 1  # the attempt that just failed counts
        if policy.after_transient(made).action is Action.GIVE_UP:
            if has_fallback:
                hand_over.append(row.id)
            else:
                give_up.append((row.id, f"gave up after {made} attempts: {error}"))
            continue
        if made not in delays:
            delays[made] = policy.backoff(made)
        requeue.append((row.id, error, max(delays[made], after or 0.0)))
    return requeue, give_up, hand_over


def retry_later(
    policy: RetryPolicy,
    rows: Sequence[ClaimedRow],
    error: str,
    retry_after: float | None,
    has_fallback: bool = False,
) -> Verdict:
    """Every row was in a request that failed transiently: requeue, hand over or give up."""
    requeue, give_up, hand_over = _schedule(policy, [(r, error, retry_after) for r in rows], has_fallback)
    verdict = Verdict(Step.HALT, "transient", error, failed=give_up, requeue=requeue, hand_over=hand_over)
    verdict.tried = [(r.id, "retry", error) for r in rows]
    return verdict


def not_reached(rows: Sequence[ClaimedRow], why: str) -> Verdict:
    """The call was stopped before these rows (the provider asked every caller to wait, or failed a run
    of requests): they stay owed, uncounted."""
    return Verdict(Step.HALT, "stopped", why, untried=[(r.id, why) for r in rows])


COOL_DOWN = 1.0
"""Seconds the rows a stopped call never reached wait after a run of failed requests (or when no
request reached the provider at all): the provider is probed about once a second, not hammered, and no
row waits for another row's backoff."""


def untried_wait(pause: float, progressed: bool, failing: bool = False) -> float:
    """When rows a call never reached are owed again: when the provider account's pause ends; after
    ``COOL_DOWN`` when the provider failed a run of requests (``failing``) or nothing reached it; else at
    once."""
    if pause > 0:
        return pause
    return COOL_DOWN if failing or not progressed else 0.0


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
    account_wide: bool = True,
) -> Verdict:
    """The provider refused the whole request carrying ``rows`` with ``error``. ``account_wide``: its
    Retry-After concerns the provider account (a provider API), not only these rows."""
    if isinstance(error, ProviderUnavailable):
        breaker.trip(provider)
        return Verdict(Step.FAILOVER, "unavailable", error.message)
    if isinstance(error, PermanentError):
        verdict = Verdict(Step.DONE, "failed", error.message, failed=[(r.id, error.message) for r in rows])
        verdict.tried = [(r.id, "failed", error.message) for r in rows]
        return verdict
    retry_after = error.retry_after if isinstance(error, TransientError) else None
    opened = breaker.record_failure(provider)
    if opened and has_fallback:
        return Verdict(Step.FAILOVER, "failover", f"circuit opened: {error.message}")
    # An adapter's own subclass we don't know is treated as transient too.
    verdict = retry_later(policy, rows, error.message, retry_after, has_fallback)
    if account_wide and retry_after:
        verdict.pause = retry_after
    # One failed request concerns its own rows; a run of them (the breaker's threshold), or a provider
    # asking every caller to wait, stops the rest of the batch.
    verdict.step = Step.HALT if opened or verdict.pause else Step.DONE
    return verdict


def decide_results(
    results: Sequence[Result],
    rows: Sequence[ClaimedRow],
    policy: RetryPolicy,
    breaker: CircuitBreaker,
    provider: str,
    has_fallback: bool = False,
) -> Verdict:
    """The provider answered per recipient: sort each row by its result. Results for rows not in
    ``rows`` are ignored; rows without a result are not judged here (see ``unanswered``)."""
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
            verdict.tried.append((row.id, "failed", res.error or "failed"))
        elif res.outcome is Outcome.OPTED_OUT:
            verdict.opted_out.append(row.id)
            verdict.tried.append((row.id, "opted_out", res.error or "opted out"))
        elif res.outcome is Outcome.UNTRIED:
            verdict.untried.append((row.id, res.error or "not tried"))
            if res.retry_after:
                verdict.pause = max(verdict.pause or 0.0, res.retry_after)
        else:
            retry.append((row, res.error or "retry", res.retry_after))
            verdict.tried.append((row.id, "retry", res.error or "retry"))
            if res.retry_after:  # a provider API's "come back later" is its account's (the caller decides)
                verdict.pause = max(verdict.pause or 0.0, res.retry_after)
    if verdict.failed or retry or verdict.untried:
        verdict.outcome = "partial"
    if verdict.untried:
        verdict.step = Step.HALT  # the adapter stopped: the provider is failing or asked to wait
    verdict.requeue, give_up, verdict.hand_over = _schedule(policy, retry, has_fallback)
    verdict.failed += give_up
    return verdict


def unanswered(rows: Sequence[ClaimedRow], answered: set[int]) -> list[Result]:
    """A row the adapter returned no result for is owed again, never silently dropped. It may have
    reached the provider, so it counts as an attempt."""
    return [Result.retry(r.id, "no result from provider") for r in rows if r.id not in answered]
