"""Deliver one batch: claim its rows, render, send through the provider chain, record per-address results.

This is the function the Celery ``deliver`` task and the embedded runner both call. It never sleeps:
when rows must be retried it returns the delay, and the caller schedules the batch again.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from channels.base import (
    ChannelError,
    Message,
    Outcome,
    PermanentError,
    ProviderUnavailable,
    Recipient,
    Result,
    TransientError,
)
from dispatcher.claims import ClaimedRow, claim_batch
from dispatcher.errors import ConfigurationError
from dispatcher.ledger import AttemptRecord, log_attempt, mark_failed, mark_retry, mark_sent
from dispatcher.messages import render_for
from dispatcher.models import DeliveryState
from dispatcher.retry_policy import Action, RetryPolicy
from dispatcher.runtime import Runtime
from dispatcher.task_queue import BatchRef


@dataclass
class BatchOutcome:
    ref: BatchRef
    claimed: int = 0
    sent: int = 0
    failed: int = 0
    suppressed: int = 0
    retrying: int = 0
    retry_in: float | None = None
    """Seconds until the earliest row of this batch is owed again, when some must be retried."""

    def note_retry(self, delay: float) -> None:
        self.retrying += 1
        self.retry_in = delay if self.retry_in is None else min(self.retry_in, delay)


def _recipients(rows: Sequence[ClaimedRow]) -> list[Recipient]:
    return [Recipient(delivery_id=r.id, address=r.address, secret=r.secret) for r in rows]


class _Send:
    """One locale group of a batch going through the channel's providers in failover order."""

    def __init__(self, rt: Runtime, ref: BatchRef, policy: RetryPolicy, outcome: BatchOutcome) -> None:
        self.rt, self.ref, self.policy, self.outcome = rt, ref, policy, outcome

    def run(self, message: Message, rows: list[ClaimedRow]) -> None:
        providers = self.rt.providers_for(self.ref.channel)
        errors: list[str] = []
        for provider in providers:
            try:
                adapter = self.rt.adapter(provider)
            except ConfigurationError as exc:
                errors.append(f"{provider}: {exc}")
                continue
            size = adapter.capabilities.max_batch
            remaining = rows
            while remaining:
                chunk, remaining = remaining[:size], remaining[size:]
                if not self._attempt(provider, message, chunk):
                    remaining = chunk + remaining
                    break
            if not remaining:
                return
            rows = remaining
            errors.append(f"{provider}: unavailable")
        # No provider could carry these rows: they stay owed and are retried later.
        self._finish_transient(None, rows, "no provider available (" + "; ".join(errors) + ")", None)

    def _attempt(self, provider: str, message: Message, rows: list[ClaimedRow]) -> bool:
        """Send ``rows`` through ``provider``. False when the provider is unavailable (try the next)."""
        started = self.rt.clock.now()
        record = AttemptRecord(self.ref, provider, len(rows), "sent", started)
        try:
            results = self.rt.adapter(provider).send(message, _recipients(rows))
        except ProviderUnavailable as exc:
            record.outcome, record.error = "unavailable", exc.message
            self._log(record)
            return False
        except TransientError as exc:
            record.outcome, record.error = "transient", exc.message
            self._finish_transient(provider, rows, exc.message, exc.retry_after, record)
            return True
        except PermanentError as exc:
            record.outcome, record.error, record.failed = "failed", exc.message, len(rows)
            self._finish_failed(provider, rows, exc.message, record)
            return True
        except ChannelError as exc:  # an adapter's own subclass we don't know: treat as transient
            self._finish_transient(provider, rows, exc.message, None, record)
            return True
        self._record(provider, rows, results, record)
        return True

    def _record(
        self, provider: str, rows: list[ClaimedRow], results: list[Result], record: AttemptRecord
    ) -> None:
        by_id = {r.id: r for r in rows}
        answered = {res.delivery_id for res in results}
        sent, failed, retry = [], [], []
        for res in results:
            row = by_id.get(res.delivery_id)
            if row is None:
                continue
            if res.outcome is Outcome.SENT:
                sent.append((row.id, res.provider_message_id))
            elif res.outcome is Outcome.FAILED:
                failed.append((row.id, res.error or "failed"))
            else:
                retry.append((row, res.error or "retry", res.retry_after))
        # A row the adapter did not answer for is owed again, never silently dropped.
        retry += [(r, "no result from provider", None) for r in rows if r.id not in answered]
        now = self.rt.clock.now()
        requeue, give_up = self._decide(retry)
        with self.rt.engine.begin() as conn:
            mark_sent(conn, provider, sent, now)
            mark_failed(conn, provider, failed + give_up, now)
            mark_retry(conn, provider, requeue, now)
            record.sent, record.failed, record.retrying = len(sent), len(failed) + len(give_up), len(requeue)
            record.outcome = "sent" if not (failed or retry) else "partial"
            log_attempt(conn, record, now)
        self.outcome.sent += len(sent)
        self.outcome.failed += len(failed) + len(give_up)

    def _decide(
        self, retry: list[tuple[ClaimedRow, str, float | None]]
    ) -> tuple[list[tuple[int, str, float]], list[tuple[int, str]]]:
        """Rows to requeue (with one shared delay, so the batch stays whole) and rows to give up on."""
        requeue: list[tuple[int, str, float]] = []
        give_up: list[tuple[int, str]] = []
        if not retry:
            return requeue, give_up
        attempts = max(row.attempts for row, _, _ in retry)
        hints = [after for _, _, after in retry if after is not None]
        delay = self.policy.backoff(attempts, max(hints) if hints else None)
        for row, error, _ in retry:
            if self.policy.after_transient(row.attempts).action is Action.GIVE_UP:
                give_up.append((row.id, f"gave up after {row.attempts} attempts: {error}"))
            else:
                requeue.append((row.id, error, delay))
                self.outcome.note_retry(delay)
        return requeue, give_up

    def _finish_transient(
        self,
        provider: str | None,
        rows: list[ClaimedRow],
        error: str,
        retry_after: float | None,
        record: AttemptRecord | None = None,
    ) -> None:
        requeue, give_up = self._decide([(r, error, retry_after) for r in rows])
        now = self.rt.clock.now()
        with self.rt.engine.begin() as conn:
            mark_retry(conn, provider, requeue, now)
            mark_failed(conn, provider, give_up, now)
            if record is not None:
                record.retrying, record.failed = len(requeue), len(give_up)
                log_attempt(conn, record, now)
        self.outcome.failed += len(give_up)

    def _finish_failed(
        self, provider: str, rows: list[ClaimedRow], error: str, record: AttemptRecord
    ) -> None:
        now = self.rt.clock.now()
        with self.rt.engine.begin() as conn:
            mark_failed(conn, provider, [(r.id, error) for r in rows], now)
            log_attempt(conn, record, now)
        self.outcome.failed += len(rows)

    def _log(self, record: AttemptRecord) -> None:
        with self.rt.engine.begin() as conn:
            log_attempt(conn, record, self.rt.clock.now())


def deliver_batch(rt: Runtime, ref: BatchRef, policy: RetryPolicy | None = None) -> BatchOutcome:
    """Claim what is owed in batch ``ref`` and send it. Safe to call twice: claimed rows are skipped."""
    policy = policy or RetryPolicy(rt.settings.retry)
    outcome = BatchOutcome(ref)
    rows = claim_batch(rt, ref)
    outcome.claimed = len(rows)
    if not rows:
        return outcome
    opted_out = [r for r in rows if r.opted_out]
    if opted_out:
        with rt.engine.begin() as conn:
            mark_failed(
                conn,
                None,
                [(r.id, "opted out") for r in opted_out],
                rt.clock.now(),
                state=DeliveryState.SUPPRESSED,
            )
        outcome.suppressed = len(opted_out)
    by_locale: dict[str, list[ClaimedRow]] = defaultdict(list)
    for row in rows:
        if not row.opted_out:
            by_locale[row.locale].append(row)
    sender = _Send(rt, ref, policy, outcome)
    for locale, group in by_locale.items():
        sender.run(render_for(rt, ref.update_id, ref.channel, locale), group)
    return outcome
