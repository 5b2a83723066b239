"""Deliver one batch: claim its rows, render, send through the provider chain, record per-address results.

This is the function the Celery ``deliver`` task and the embedded runner both call. It never sleeps on
a provider for long: when rows must be retried it returns the delay, and the caller schedules the batch
again.

Results are written to the ledger as the provider's requests complete (webhooks: a small window at a
time, ``WINDOW_ROWS`` results or ``WINDOW_SECONDS``, whichever comes first), not once per batch: a
worker killed mid-batch leaves at most a window and the requests on the wire unrecorded, so that is all
it re-sends. Rows an adapter never reached go back to the queue uncounted. A provider API that asks to wait
(429) pauses its whole account for every worker; the engine looks at that pause before each call, and
before each further request of a per-recipient call.

A paced adapter (Twilio) gets the whole batch in one call and asks the engine's pace before each request
(``_Call.pace``): the account's pause, then one token of its rate limit, waited in place when short; so
it can keep several requests in flight, and one that hangs holds back nobody else.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Connection, update

from channels.base import (
    ChannelError,
    ChannelKind,
    Message,
    Outcome,
    Recipient,
    Result,
    results_of,
)
from dispatcher.domain.errors import ConfigurationError
from dispatcher.domain.models import DeliveryState
from dispatcher.engine.claims import ClaimedRow, claim_batch
from dispatcher.engine.instruments import record_send
from dispatcher.engine.ledger import (
    AttemptRecord,
    count_attempts,
    log_attempt,
    log_tries,
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
    is_provider_api,
    not_reached,
    skip_reason,
    unanswered,
    untried_wait,
)
from dispatcher.engine.runtime import Runtime
from dispatcher.engine.sequencing.missed import missed_updates
from dispatcher.engine.sequencing.ordering import IN_ORDER_WAIT_SECONDS, check_order, overtake
from dispatcher.engine.sequencing.recipient_cap import over_cap
from dispatcher.engine.task_queue import BatchRef
from dispatcher.store.schema import contact_points

WINDOW_ROWS = 64
"""At most this many results wait to be written (the webhook adapter's requests in flight, by default)."""
WINDOW_SECONDS = 0.1
"""And no result waits longer than this to be written."""


@dataclass
class BatchOutcome:
    ref: BatchRef
    claimed: int = 0
    sent: int = 0
    failed: int = 0
    suppressed: int = 0
    retrying: int = 0
    untried: int = 0
    """Rows put back without an attempt: the provider asked to wait, or the adapter stopped early."""
    retry_in: float | None = None
    """Seconds until the earliest row of this batch is owed again, when some must be retried."""

    def note_retry(self, delay: float) -> None:
        self.retrying += 1
        self.due_in(delay)

    def due_in(self, delay: float) -> None:
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


@dataclass
class _Called:
    """What one provider call left to do."""

    step: Step
    onward: list[ClaimedRow] = field(default_factory=list)
    """Rows for the channel's next provider: every unsettled row when this one cannot serve, and rows
    whose retry schedule ran out on it."""
    wait: float = 0.0
    """On HALT: seconds until the rows it did not reach are owed again."""


class _Send:
    """One locale group of a batch going through the channel's providers in failover order."""

    def __init__(self, rt: Runtime, ref: BatchRef, policy: RetryPolicy, outcome: BatchOutcome) -> None:
        self.rt, self.ref, self.policy, self.outcome = rt, ref, policy, outcome
        self.provider_api = is_provider_api(ref.channel)
        self.failing = 0
        """Requests failed in a row (transiently), across the calls of this batch."""

    @property
    def failing_run(self) -> bool:
        """A provider API failed as many requests in a row as open the circuit: it is failing, not the
        recipients (webhooks: each endpoint fails for itself)."""
        return self.provider_api and self.failing >= self.rt.breaker.threshold

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
            self.failing = 0  # a run belongs to one provider
            paced = adapter.capabilities.paced and self.provider_api
            size = adapter.capabilities.max_batch
            if spec is not None and not paced:
                size = min(size, spec.burst)  # the rate limit's tokens are taken a call at a time
            onward: list[ClaimedRow] = []
            remaining = rows
            while remaining:
                chunk, remaining = remaining[:size], remaining[size:]
                if not paced and not self._ready(provider, spec, chunk + remaining):
                    remaining = []
                    break
                called = _Call(self, provider, message, chunk, has_fallback, remaining).run(
                    spec if paced else None, paced
                )
                onward += called.onward
                if called.step is Step.FAILOVER:
                    onward += remaining
                    break
                if called.step is Step.HALT or self.failing_run:
                    # The provider is failing or asked to wait: the rest of the batch waits with the
                    # rows it did not reach, uncounted, instead of meeting the same answer.
                    self._put_back(remaining, f"not tried: {provider} failed or asked to wait", called.wait)
                    break
                if remaining:
                    self._renew_lease(remaining)
            if not onward:
                return
            rows = onward
            errors.append(f"{provider}: unavailable or out of retries")
        self._no_provider(rows, providers, "; ".join(errors))

    # --- before a call --------------------------------------------------------------------------

    def _ready(self, provider: str, spec: BucketSpec | None, owed: list[ClaimedRow]) -> bool:
        """Wait for the provider account's pause and rate limit (short waits in place); False when the
        rows were put back in the queue for a longer wait (uncounted)."""
        while True:
            why = f"{provider} asked every caller to wait (Retry-After)"
            wait = self.rt.pauses.remaining(provider) if self.provider_api else 0.0
            if wait <= 0 and spec is not None:
                why = f"rate limit of {provider}"
                wait = self.rt.limiter.acquire(provider, min(len(owed), spec.burst), spec=spec)
            if wait <= 0:
                return True
            if wait > self.rt.settings.retry.in_process_wait:
                self._put_back(owed, why, wait)
                return False
            time.sleep(wait)

    def _renew_lease(self, rows: list[ClaimedRow]) -> None:
        """A batch sent in several calls (a slow provider, a rate limit) keeps its claim while it works."""
        until = self.rt.clock.now() + timedelta(seconds=self.rt.settings.retry.lease_seconds)
        with self.rt.engine.begin() as conn:
            renew_lease(conn, [r.id for r in rows], until)

    def _put_back(self, rows: Sequence[ClaimedRow], why: str, delay: float = 0.0) -> None:
        """Back to the queue, due after ``delay`` seconds; not counted as an attempt (nothing was tried)."""
        if rows:
            with self.rt.engine.begin() as conn:
                mark_waiting(conn, [(r.id, why, delay) for r in rows], self.rt.clock.now())
            self.outcome.untried += len(rows)
            self.outcome.due_in(delay)

    def _no_provider(self, rows: list[ClaimedRow], providers: list[str], errors: str) -> None:
        """No provider could carry these rows: they stay owed (uncounted) until a circuit closes; a row
        whose retries ran out on the providers it did reach becomes a dead letter."""
        why = f"no provider available ({errors})"
        spent = [r for r in rows if r.attempts >= self.policy.max_attempts]
        if spent:
            gave_up = [(r.id, f"gave up after {r.attempts} attempts: {why}") for r in spent]
            with self.rt.engine.begin() as conn:
                mark_failed(conn, None, gave_up, self.rt.clock.now(), charged=False)
            self.outcome.failed += len(spent)
        reopen = min((self.rt.breaker.closed_in(p) for p in providers), default=0.0)
        wait = max(reopen, untried_wait(0.0, progressed=False))
        self._put_back([r for r in rows if r.attempts < self.policy.max_attempts], why, wait)

    # --- one call ---------------------------------------------------------------------------------

    def write(
        self,
        provider: str,
        verdict: Verdict,
        rows: dict[int, ClaimedRow],
        message: Message | None = None,
        record: AttemptRecord | None = None,
    ) -> None:
        """A verdict, in the ledger: each row's new state, the evidence of each attempt that did not
        deliver, and (at the end of a call) the call in the attempts log."""
        now = self.rt.clock.now()
        opted_out = [rows[i] for i in verdict.opted_out]
        with self.rt.engine.begin() as conn:
            mark_sent(conn, provider, verdict.sent, now)
            if self.ref.channel is ChannelKind.SOCIAL and message and verdict.sent and verdict.sent[-1][1]:
                remember_thread(conn, message.incident_id, str(verdict.sent[-1][1]))
            mark_failed(conn, provider, verdict.failed, now)
            mark_retry(conn, provider, verdict.requeue, now)
            record_opt_outs(conn, provider, opted_out, now)
            count_attempts(conn, verdict.hand_over)
            log_tries(conn, provider, verdict.tried, now)
            if record is not None:
                log_attempt(conn, record, now)
        for row_id, _, _ in verdict.tried:
            rows[row_id].attempts += 1
        for row_id, _ in verdict.sent:
            rows[row_id].attempts += 1
        self.outcome.sent += len(verdict.sent)
        self.outcome.failed += len(verdict.failed)
        self.outcome.suppressed += len(opted_out)
        for _, _, delay in verdict.requeue:
            self.outcome.note_retry(delay)


class _Call:
    """One provider call: ``rows`` sent through ``provider``, its results read as they come and written a
    window at a time; the retry module decides. ``waiting``: the rest of the batch, whose claim a long
    call keeps alive too."""

    def __init__(
        self,
        send: _Send,
        provider: str,
        message: Message,
        rows: list[ClaimedRow],
        has_fallback: bool,
        waiting: list[ClaimedRow],
    ) -> None:
        self.send, self.provider, self.message, self.rows = send, provider, message, rows
        self.has_fallback, self.waiting = has_fallback, waiting
        self.renewed = time.monotonic()
        self.by_id = {r.id: r for r in rows}
        self.answered: set[int] = set()
        self.total = Verdict(Step.DONE, "sent")
        self.pending: list[Result] = []
        self.pending_since = 0.0
        self.writing = 0.0
        """Seconds spent writing windows meanwhile (not the provider's time)."""
        self.stopped: str | None = None
        """Why the engine stopped the call before every row had a result (the rest were not tried)."""
        self.stop_wait = 0.0
        """Seconds the rows it never reached wait, when a long wait stopped a paced call."""
        self.spec: BucketSpec | None = None
        self.paced = False

    def run(self, spec: BucketSpec | None = None, paced: bool = False) -> _Called:
        """Make the call. ``paced``: the adapter asks ``pace`` before each request, under ``spec``."""
        rt, send = self.send.rt, self.send
        self.spec, self.paced = spec, paced
        started_at, started = rt.clock.now(), time.perf_counter()
        error: ChannelError | None = None
        recipients = _recipients(rt, send.ref.channel, self.rows)
        adapter = rt.adapter(self.provider)
        stream = results_of(adapter, self.message, recipients, self.pace if paced else None)
        try:
            self._read(stream)
        except ChannelError as exc:
            error = exc
        finally:
            stream.close()  # a stopped per-recipient call makes no further request
        record_send(send.ref.channel, self.provider, error, time.perf_counter() - started - self.writing)
        self._window()
        rest = [r for r in self.rows if r.id not in self.answered]
        last = self._last(error, rest)
        self.total.absorb(last)
        if self.total.pause and send.provider_api:
            rt.pauses.pause(self.provider, self.total.pause)
        record = None
        if self.answered or error is not None or self.stopped is None:  # else no request was made
            outcome, why = self.total.outcome, self.total.error
            record = AttemptRecord(send.ref, self.provider, len(self.rows), outcome, started_at, error=why)
            record.sent, record.failed = len(self.total.sent), len(self.total.failed)
            record.retrying = len(self.total.requeue)
        send.write(self.provider, last, self.by_id, self.message, record)
        # The provider is failing (not merely busy): a run of failed requests, or whole calls failing.
        failing = send.failing_run or (
            last.step is Step.HALT and not (send.provider_api and self.total.pause)
        )
        wait = self._put_back_untried(failing)
        onward = [self.by_id[i] for i in self.total.hand_over]
        if last.step is Step.FAILOVER:
            return _Called(Step.FAILOVER, onward + rest, wait)
        return _Called(self.total.step, onward, wait)

    def _last(self, error: ChannelError | None, rest: list[ClaimedRow]) -> Verdict:
        """The verdict on the rows left without a result when the call ended."""
        send, rt = self.send, self.send.rt
        if error is not None:
            return decide_error(
                error, rest, send.policy, rt.breaker, self.provider, self.has_fallback, send.provider_api
            )
        if self.stopped is not None:
            return not_reached(rest, self.stopped)
        results = unanswered(rest, self.answered)
        return decide_results(results, rest, send.policy, rt.breaker, self.provider, self.has_fallback)

    def _read(self, stream: Iterator[list[Result]]) -> None:
        send = self.send
        for group in stream:
            if not self.pending and group:
                self.pending_since = time.monotonic()
            self.pending += group
            self.answered.update(r.delivery_id for r in group)
            for result in group:
                send.failing = send.failing + 1 if result.outcome is Outcome.RETRY else 0
            if self._window_full():
                self._window()
            self._keep_claim()
            if self.paced or not send.provider_api or len(self.answered) >= len(self.rows):
                continue  # a paced call is stopped by its pace
            if send.failing_run:
                # A run of failed requests is about the provider, not the recipients: the rest waits.
                send.rt.breaker.trip(self.provider)
                self.stopped = f"not tried: {self.provider} failed {send.failing} requests in a row"
                return
            if self._paused_meanwhile():
                self.stopped = f"not tried: {self.provider} asked every caller to wait (Retry-After)"
                return

    def pace(self) -> float | None:
        """A paced adapter's question before each request (``channels.base.Pace``): None when the call
        must stop (a run of failed requests, or a pause or rate-limit wait longer than is waited in
        place), else the seconds to wait first (0.0: go; a token of the rate limit was taken)."""
        send, rt = self.send, self.send.rt
        if self.stopped is not None:
            return None
        if send.failing_run:
            rt.breaker.trip(self.provider)
            self.stopped = f"not tried: {self.provider} failed {send.failing} requests in a row"
            return None
        why = f"not tried: {self.provider} asked every caller to wait (Retry-After)"
        wait = rt.pauses.remaining(self.provider)
        if wait <= 0 and self.spec is not None:
            why = f"not tried: rate limit of {self.provider}"
            wait = rt.limiter.acquire(self.provider, 1, spec=self.spec)
        if wait > rt.settings.retry.in_process_wait:
            self.stopped, self.stop_wait = why, wait
            return None
        if wait > 0:
            self._keep_claim()  # waiting in place: the rows keep their claim meanwhile
        return max(wait, 0.0)

    def _window_full(self) -> bool:
        """Provider APIs: every request's results are written as it completes (a request carries a
        whole SendGrid batch, or one SMS: few writes either way). Webhooks, many small requests at once:
        ``WINDOW_ROWS`` results or ``WINDOW_SECONDS``, whichever comes first."""
        if not self.pending:
            return False
        if self.send.provider_api or len(self.pending) >= WINDOW_ROWS:
            return True
        return time.monotonic() - self.pending_since >= WINDOW_SECONDS

    def _window(self) -> None:
        """Write the results read so far."""
        if not self.pending:
            return
        began = time.perf_counter()
        send = self.send
        verdict = decide_results(
            self.pending, self.rows, send.policy, send.rt.breaker, self.provider, self.has_fallback
        )
        self.pending = []
        if verdict.pause and send.provider_api:
            send.rt.pauses.pause(self.provider, verdict.pause)  # at once: the other workers stop too
        send.write(self.provider, verdict, self.by_id, self.message)
        self.total.absorb(verdict)
        self.writing += time.perf_counter() - began

    def _keep_claim(self) -> None:
        """A long call (slow endpoints, hangs) renews the lease of the rows it has not finished, and of
        the rest of the batch, before a third of it is gone: no other worker takes them meanwhile."""
        if time.monotonic() - self.renewed < self.send.rt.settings.retry.lease_seconds / 3:
            return
        self.renewed = time.monotonic()
        self.send._renew_lease([r for r in self.rows if r.id not in self.answered] + self.waiting)

    def _paused_meanwhile(self) -> bool:
        """Whether the provider account was paused since the call began (another worker met a 429).
        Looked at before each further request of a provider API (one Redis read: a provider API's
        requests are few, or each carries many recipients)."""
        return self.send.rt.pauses.remaining(self.provider) > 0

    def _put_back_untried(self, failing: bool) -> float:
        """Rows the call never reached go back to the queue, uncounted; returns when they (and the rest
        of the batch, if the call stopped it) are due."""
        send = self.send
        pause = (
            max(send.rt.pauses.remaining(self.provider), self.total.pause or 0.0)
            if send.provider_api
            else 0.0
        )
        wait = max(untried_wait(pause, self.total.charged > 0, failing), self.stop_wait)
        if self.total.untried:
            why = self.total.untried[0][1]
            send._put_back([self.by_id[i] for i, _ in self.total.untried], why, wait)
        return wait


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
    )  # charged: the request reached the provider, which answered for the recipient
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
        mark_failed(
            conn,
            None,
            [(r.id, "opted out") for r in opted_out],
            now,
            state=DeliveryState.SUPPRESSED,
            charged=False,
        )
        order = check_order(conn, ref, [r for r in rows if not r.opted_out], now)
        mark_failed(
            conn,
            None,
            [(r.id, f"superseded by update {newer}") for r, newer in order.superseded],
            now,
            state=DeliveryState.SUPERSEDED,
            charged=False,
        )
        held = over_cap(conn, ref, order.send, channel_settings, now)
        send, raced = overtake(conn, ref, order, [r for r in order.send if r.id not in held], now)
        later = [
            (r.id, f"waiting for update {older} to finish", IN_ORDER_WAIT_SECONDS)
            for r, older in order.wait + raced
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
        missed = missed_updates(conn, ref, send)
    outcome.suppressed += len(opted_out) + len(order.superseded)
    for _, _, delay in later:
        outcome.due_in(delay)
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
