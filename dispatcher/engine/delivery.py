"""Deliver one batch: claim its rows, render, send through the provider chain, record per-address results.

This is the function the Celery ``deliver`` task and the embedded runner both call. It never sleeps:
when rows must be retried it returns the delay, and the caller schedules the batch again.
"""

from __future__ import annotations

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
    Recipient,
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
from dispatcher.engine.messages import message_for, personal_links, remember_thread
from dispatcher.engine.pacing.rate_limit import BucketSpec
from dispatcher.engine.retry import (
    RetryPolicy,
    Step,
    Verdict,
    decide_error,
    decide_results,
    retry_later,
    skip_reason,
)
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
    # Email carries each recipient's own one-click unsubscribe link (RFC 8058; dispatcher.audience.consent)
    # and their own manage page (dispatcher.web.self_service), in the body and in List-Help.
    links = personal_links(rt, rows) if channel is ChannelKind.EMAIL else {}
    found = []
    for r in rows:
        own = links.get(r.id)
        found.append(
            Recipient(
                delivery_id=r.id,
                address=r.address,
                secret=r.secret,
                unsubscribe_url=own.unsubscribe if own else None,
                manage_url=own.manage if own else None,
            )
        )
    return found


class _Send:
    """One locale group of a batch going through the channel's providers in failover order."""

    def __init__(self, rt: Runtime, ref: BatchRef, policy: RetryPolicy, outcome: BatchOutcome) -> None:
        self.rt, self.ref, self.policy, self.outcome = rt, ref, policy, outcome

    def run(self, message: Message, rows: list[ClaimedRow]) -> None:
        providers = self.rt.providers_for(self.ref.channel)
        errors: list[str] = []
        for position, provider in enumerate(providers):
            has_fallback = position < len(providers) - 1
            skip = skip_reason(self.rt.breaker, provider, has_fallback)
            if skip is not None:
                errors.append(skip)
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
                if step is Step.FAILOVER:
                    remaining = chunk + remaining
                    break
                if step is Step.HALT:
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
        verdict = retry_later(self.policy, rows, "no provider available (" + "; ".join(errors) + ")", None)
        self._write(None, rows, verdict, None)

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

    def _attempt(self, provider: str, message: Message, rows: list[ClaimedRow], has_fallback: bool) -> Step:
        """Send ``rows`` through ``provider``; the retry module decides, this records it."""
        started = self.rt.clock.now()
        try:
            with observe_send(self.ref.channel, provider):
                recipients = _recipients(self.rt, self.ref.channel, rows)
                results = self.rt.adapter(provider).send(message, recipients)
        except ChannelError as exc:
            verdict = decide_error(exc, rows, self.policy, self.rt.breaker, provider, has_fallback)
        else:
            verdict = decide_results(results, rows, self.policy, self.rt.breaker, provider)
        record = AttemptRecord(self.ref, provider, len(rows), verdict.outcome, started, error=verdict.error)
        self._write(provider, rows, verdict, record, message)
        return verdict.step

    def _write(
        self,
        provider: str | None,
        rows: list[ClaimedRow],
        verdict: Verdict,
        record: AttemptRecord | None,
        message: Message | None = None,
    ) -> None:
        """The verdict, in the ledger: each row's new state, and the attempt in the attempts log."""
        now = self.rt.clock.now()
        stopped = set(verdict.opted_out)
        opted_out = [r for r in rows if r.id in stopped]
        with self.rt.engine.begin() as conn:
            mark_sent(conn, provider or "", verdict.sent, now)
            if self.ref.channel is ChannelKind.SOCIAL and message and verdict.sent and verdict.sent[-1][1]:
                remember_thread(conn, message.incident_id, str(verdict.sent[-1][1]))
            mark_failed(conn, provider, verdict.failed, now)
            mark_retry(conn, provider, verdict.requeue, now)
            record_opt_outs(conn, provider or "", opted_out, now)
            if record is not None:
                record.sent, record.failed = len(verdict.sent), len(verdict.failed)
                record.retrying = len(verdict.requeue)
                log_attempt(conn, record, now)
        self.outcome.sent += len(verdict.sent)
        self.outcome.failed += len(verdict.failed)
        self.outcome.suppressed += len(opted_out)
        for _, _, delay in verdict.requeue:
            self.outcome.note_retry(delay)


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
