"""Deliver one batch: claim its rows, render, send through the provider chain, record per-address results.

This is the function the Celery ``deliver`` task and the embedded runner both call. It never sleeps:
when rows must be retried it returns the delay, and the caller schedules the batch again.
"""

from __future__ import annotations

import enum
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, update

from channels.base import (
    ChannelError,
    ChannelKind,
    Message,
    Outcome,
    PermanentError,
    ProviderUnavailable,
    Recipient,
    Result,
    TransientError,
)
from dispatcher.domain.errors import ConfigurationError
from dispatcher.domain.models import DeliveryState
from dispatcher.engine.claims import ClaimedRow, claim_batch
from dispatcher.engine.instruments import observe_send
from dispatcher.engine.ledger import (
    AttemptRecord,
    log_attempt,
    mark_failed,
    mark_retry,
    mark_sent,
    mark_waiting,
    renew_lease,
)
from dispatcher.engine.messages import message_for, remember_thread, unsubscribe_links
from dispatcher.engine.pacing.rate_limit import BucketSpec
from dispatcher.engine.retry import Action, RetryPolicy
from dispatcher.engine.runtime import Runtime
from dispatcher.engine.sequencing.missed import missed_updates
from dispatcher.engine.sequencing.ordering import IN_ORDER_WAIT_SECONDS, check_order
from dispatcher.engine.sequencing.recipient_cap import over_cap
from dispatcher.engine.task_queue import BatchRef
from dispatcher.store.schema import contact_points


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


def _recipients(rt: Runtime, channel: ChannelKind, rows: Sequence[ClaimedRow]) -> list[Recipient]:
    # Email carries each recipient's own one-click unsubscribe link (RFC 8058; dispatcher.audience.consent).
    links = unsubscribe_links(rt, rows) if channel is ChannelKind.EMAIL else {}
    return [
        Recipient(delivery_id=r.id, address=r.address, secret=r.secret, unsubscribe_url=links.get(r.id))
        for r in rows
    ]


class _Step(enum.Enum):
    DONE = "done"
    """The rows' results are recorded: go on with the next chunk."""
    FAILOVER = "failover"
    """The provider cannot serve: these rows (and the rest) go to the next provider."""
    HALT = "halt"
    """The provider failed the whole call: stop calling it for this batch."""


class _Send:
    """One locale group of a batch going through the channel's providers in failover order."""

    def __init__(self, rt: Runtime, ref: BatchRef, policy: RetryPolicy, outcome: BatchOutcome) -> None:
        self.rt, self.ref, self.policy, self.outcome = rt, ref, policy, outcome

    def run(self, message: Message, rows: list[ClaimedRow]) -> None:
        providers = self.rt.providers_for(self.ref.channel)
        breaker = self.rt.breaker
        errors: list[str] = []
        for position, provider in enumerate(providers):
            has_fallback = position < len(providers) - 1
            if has_fallback and not breaker.allows(provider):
                errors.append(f"{provider}: circuit open")
                continue
            try:
                adapter = self.rt.adapter(provider)
            except ConfigurationError as exc:
                errors.append(f"{provider}: {exc}")
                continue
            spec = self.rt.rate_spec(provider)
            size = min(adapter.capabilities.max_batch, spec.burst if spec else adapter.capabilities.max_batch)
            remaining = rows
            while remaining:
                chunk, remaining = remaining[:size], remaining[size:]
                if spec is not None and not self._take_tokens(provider, spec, chunk + remaining):
                    return
                step = self._attempt(provider, message, chunk, has_fallback)
                if step is _Step.FAILOVER:
                    remaining = chunk + remaining
                    break
                if step is _Step.HALT:
                    # The provider failed the whole call: the rest of the batch waits with this chunk
                    # instead of hammering it (and spending rate tokens and lease time) call by call.
                    self._postpone(remaining, f"not tried: {provider} failed the call before")
                    return
                if remaining:
                    self._renew_lease(remaining)
            if not remaining:
                return
            rows = remaining
            errors.append(f"{provider}: unavailable")
        # No provider could carry these rows: they stay owed and are retried later.
        self._finish_transient(None, rows, "no provider available (" + "; ".join(errors) + ")", None)

    def _postpone(self, rows: list[ClaimedRow], why: str) -> None:
        """Back to the queue, due with the rows that were tried; not counted as an attempt."""
        if rows:
            delay = self.outcome.retry_in if self.outcome.retry_in is not None else 0.0
            with self.rt.engine.begin() as conn:
                mark_waiting(conn, [(r.id, why, delay) for r in rows], self.rt.clock.now())

    def _renew_lease(self, rows: list[ClaimedRow]) -> None:
        """A batch sent in several calls (a slow provider, a rate limit) keeps its claim while it works."""
        until = self.rt.clock.now() + timedelta(seconds=self.rt.settings.retry.lease_seconds)
        with self.rt.engine.begin() as conn:
            renew_lease(conn, [r.id for r in rows], until)

    def _take_tokens(self, provider: str, spec: BucketSpec, owed: list[ClaimedRow]) -> bool:
        """Wait for the provider's rate limit (short waits in place); False when the rows were put
        back in the queue for a longer wait."""
        size = min(len(owed), spec.burst)
        while True:
            wait = self.rt.limiter.acquire(provider, size, spec=spec)
            if wait <= 0:
                return True
            if wait > self.rt.settings.retry.in_process_wait:
                with self.rt.engine.begin() as conn:
                    mark_waiting(
                        conn, [(r.id, f"rate limit of {provider}", wait) for r in owed], self.rt.clock.now()
                    )
                self.outcome.retry_in = min(self.outcome.retry_in or wait, wait)
                return False
            time.sleep(wait)

    def _attempt(self, provider: str, message: Message, rows: list[ClaimedRow], has_fallback: bool) -> _Step:
        """Send ``rows`` through ``provider`` and record what happened to them."""
        breaker = self.rt.breaker
        started = self.rt.clock.now()
        record = AttemptRecord(self.ref, provider, len(rows), "sent", started)
        try:
            with observe_send(self.ref.channel, provider):
                recipients = _recipients(self.rt, self.ref.channel, rows)
                results = self.rt.adapter(provider).send(message, recipients)
        except ProviderUnavailable as exc:
            breaker.trip(provider)
            record.outcome, record.error = "unavailable", exc.message
            self._log(record)
            return _Step.FAILOVER
        except TransientError as exc:
            if breaker.record_failure(provider) and has_fallback:
                record.outcome, record.error = "failover", f"circuit opened: {exc.message}"
                self._log(record)
                return _Step.FAILOVER
            record.outcome, record.error = "transient", exc.message
            self._finish_transient(provider, rows, exc.message, exc.retry_after, record)
            return _Step.HALT
        except PermanentError as exc:
            record.outcome, record.error, record.failed = "failed", exc.message, len(rows)
            self._finish_failed(provider, rows, exc.message, record)
            return _Step.DONE
        except ChannelError as exc:  # an adapter's own subclass we don't know: treat as transient
            self._finish_transient(provider, rows, exc.message, None, record)
            return _Step.HALT
        if any(r.outcome is Outcome.SENT for r in results):
            breaker.record_success(provider)
        elif any(r.outcome is Outcome.RETRY for r in results):
            breaker.record_failure(provider)
        self._record(provider, message, rows, results, record)
        return _Step.DONE

    def _record(
        self,
        provider: str,
        message: Message,
        rows: list[ClaimedRow],
        results: list[Result],
        record: AttemptRecord,
    ) -> None:
        by_id = {r.id: r for r in rows}
        answered = {res.delivery_id for res in results}
        sent, failed, retry, opted_out = [], [], [], []
        for res in results:
            row = by_id.get(res.delivery_id)
            if row is None:
                continue
            if res.outcome is Outcome.SENT:
                sent.append((row.id, res.provider_message_id))
            elif res.outcome is Outcome.FAILED:
                failed.append((row.id, res.error or "failed"))
            elif res.outcome is Outcome.OPTED_OUT:
                opted_out.append(row)
            else:
                retry.append((row, res.error or "retry", res.retry_after))
        # A row the adapter did not answer for is owed again, never silently dropped.
        retry += [(r, "no result from provider", None) for r in rows if r.id not in answered]
        now = self.rt.clock.now()
        requeue, give_up = self._decide(retry)
        with self.rt.engine.begin() as conn:
            mark_sent(conn, provider, sent, now)
            if self.ref.channel is ChannelKind.SOCIAL and sent and sent[-1][1]:
                remember_thread(conn, message.incident_id, str(sent[-1][1]))
            mark_failed(conn, provider, failed + give_up, now)
            mark_retry(conn, provider, requeue, now)
            record_opt_outs(conn, provider, opted_out, now)
            record.sent, record.failed, record.retrying = len(sent), len(failed) + len(give_up), len(requeue)
            record.outcome = "sent" if not (failed or retry) else "partial"
            log_attempt(conn, record, now)
        self.outcome.sent += len(sent)
        self.outcome.failed += len(failed) + len(give_up)
        self.outcome.suppressed += len(opted_out)

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


def record_opt_outs(conn: Connection, provider: str, rows: list[ClaimedRow], now: datetime) -> None:
    """The recipient told the provider to stop: suppress this row and every later send to them."""
    if not rows:
        return
    mark_failed(
        conn,
        provider,
        [(r.id, "recipient opted out at the provider") for r in rows],
        now,
        state=DeliveryState.SUPPRESSED,
    )
    points = [r.contact_point_id for r in rows if r.contact_point_id is not None]
    if points:
        conn.execute(update(contact_points).where(contact_points.c.id.in_(points)).values(opted_out=True))


@dataclass
class _ToSend:
    rows: list[ClaimedRow]
    missed: dict[int, tuple[int, ...]]
    """Row id -> earlier updates its address did not get; they ride along with this message."""


def _set_aside(rt: Runtime, ref: BatchRef, rows: list[ClaimedRow], outcome: BatchOutcome) -> _ToSend:
    """Settle the rows that must not be sent now (opted out, superseded, out of order, over the
    per-recipient cap); return the ones to send."""
    now = rt.clock.now()
    channel_settings = rt.settings.channels[ref.channel]
    with rt.engine.begin() as conn:
        opted_out = [r for r in rows if r.opted_out]
        mark_failed(conn, None, [(r.id, "opted out") for r in opted_out], now, state=DeliveryState.SUPPRESSED)
        order = check_order(conn, ref, [r for r in rows if not r.opted_out], now)
        mark_failed(
            conn,
            None,
            [(r.id, f"superseded by update {newer}") for r, newer in order.superseded],
            now,
            state=DeliveryState.SUPERSEDED,
        )
        held = over_cap(conn, ref, order.send, channel_settings, now)
        later = [
            (r.id, f"waiting for update {older} to finish", IN_ORDER_WAIT_SECONDS) for r, older in order.wait
        ]
        later += [
            (
                row_id,
                f"held: over {channel_settings.cap_messages} messages per {channel_settings.cap_window:g}s",
                max((at - now).total_seconds(), 0.0),
            )
            for row_id, at in held.items()
        ]
        mark_waiting(conn, later, now)
        send = [r for r in order.send if r.id not in held]
        missed = missed_updates(conn, ref, send)
    outcome.suppressed += len(opted_out) + len(order.superseded)
    if later:
        outcome.retry_in = min(delay for _, _, delay in later)
    return _ToSend(send, missed)


def deliver_batch(rt: Runtime, ref: BatchRef) -> BatchOutcome:
    """Claim what is owed in batch ``ref`` and send it. Safe to call twice: claimed rows are skipped."""
    policy = RetryPolicy.for_channel(rt.settings, ref.channel)
    outcome = BatchOutcome(ref)
    rows = claim_batch(rt, ref)
    outcome.claimed = len(rows)
    if not rows:
        return outcome
    to_send = _set_aside(rt, ref, rows, outcome)
    groups: dict[tuple[str, tuple[int, ...]], list[ClaimedRow]] = defaultdict(list)
    for row in to_send.rows:
        groups[(row.locale, to_send.missed.get(row.id, ()))].append(row)
    sender = _Send(rt, ref, policy, outcome)
    for (locale, earlier), group in groups.items():
        sender.run(message_for(rt, ref, locale, earlier), group)
    return outcome
