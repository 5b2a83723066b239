"""What the engine does after each kind of provider answer, observed through the in-memory adapter.

Given subscribers and in-memory providers that answer as scripted, when an update's batch is delivered,
then the calls each provider received, the ledger's states, attempts and errors, and the attempts log
agree with the retry-and-failover rules (``dispatcher.engine.retry``). The unit tests at the end call
the decision functions directly.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from sqlalchemy import select

from channels.base import (
    ChannelError,
    ChannelKind,
    Message,
    PermanentError,
    ProviderUnavailable,
    Recipient,
    Result,
    TransientError,
)
from channels.memory import MemoryAdapter
from dispatcher.comms.publish import publish
from dispatcher.config.settings import ChannelSettings, CircuitSettings, RateLimitSettings, RetrySettings
from dispatcher.engine.claims import ClaimedRow
from dispatcher.engine.delivery import deliver_batch
from dispatcher.engine.fanout import fan_out
from dispatcher.engine.ledger import tries_of
from dispatcher.engine.pacing.circuit_breaker import CircuitBreaker
from dispatcher.engine.retry import RetryPolicy, Step, decide_error, decide_results, unanswered
from dispatcher.engine.runtime import Runtime
from dispatcher.engine.task_queue import BatchRef
from dispatcher.store.schema import deliveries, delivery_attempts
from tests.helpers import RecordingQueue, draft, hand_clock, incident, states, subscribe

EMAIL = [ChannelKind.EMAIL]


def email_runtime(
    make_runtime: Callable[..., Runtime], schedule: list[float], **adapters: MemoryAdapter
) -> Runtime:
    providers = list(adapters) or ["memory"]
    return make_runtime(
        channels={ChannelKind.EMAIL: ChannelSettings(providers=providers)},
        retry=RetrySettings(schedule=schedule, jitter=0),
        circuit_breaker=CircuitSettings(failures=3, reset_after=60),
        adapters=adapters,
    )


def fanned_out(rt: Runtime, people: int) -> BatchRef:
    subscribe(rt, people)
    queue = RecordingQueue()
    published = publish(rt, draft(incident(rt), channels=EMAIL), queue)
    fan_out(rt, published.update.id, queue)
    return BatchRef(published.update.id, ChannelKind.EMAIL, 0)


def ledger(rt: Runtime, ref: BatchRef) -> list[tuple[str, str, int, str | None]]:
    """(address, state, attempts, last error) of the batch's rows, by address."""
    with rt.engine.connect() as conn:
        rows = conn.execute(
            select(deliveries.c.address, deliveries.c.state, deliveries.c.attempts, deliveries.c.last_error)
            .where(deliveries.c.update_id == ref.update_id)
            .order_by(deliveries.c.address)
        ).all()
    return [(r.address, r.state, r.attempts, r.last_error) for r in rows]


def attempts_log(rt: Runtime) -> list[tuple[str, str, int, int, int]]:
    with rt.engine.connect() as conn:
        rows = conn.execute(
            select(
                delivery_attempts.c.provider,
                delivery_attempts.c.outcome,
                delivery_attempts.c.sent,
                delivery_attempts.c.retrying,
                delivery_attempts.c.failed,
            ).order_by(delivery_attempts.c.id)
        ).all()
    return [tuple(r) for r in rows]


def test_every_recipient_is_sent_once_and_the_ledger_keeps_the_providers_ids(
    make_runtime: Callable[..., Runtime],
) -> None:
    memory = MemoryAdapter()
    rt = email_runtime(make_runtime, [1], memory=memory)
    ref = fanned_out(rt, 3)

    outcome = deliver_batch(rt, ref)

    assert outcome.sent == 3 and len(memory.calls) == 1
    assert sorted(memory.addresses()) == [f"person{i}@example.com" for i in range(3)]
    with rt.engine.connect() as conn:
        ids = set(conn.execute(select(deliveries.c.provider_message_id)).scalars())
    assert ids == {"memory-1", "memory-2", "memory-3"}
    assert attempts_log(rt) == [("memory", "sent", 3, 0, 0)]


def test_a_transient_error_requeues_every_row_no_sooner_than_retry_after(
    make_runtime: Callable[..., Runtime],
) -> None:
    memory = MemoryAdapter()
    memory.fail_calls(TransientError("429 Too Many Requests", retry_after=40))
    rt = email_runtime(make_runtime, [5, 10], memory=memory)
    clock = hand_clock(rt)
    ref = fanned_out(rt, 2)

    first = deliver_batch(rt, ref)
    assert first.retrying == 2 and first.retry_in == 40, "Retry-After is a floor under the schedule's 5 s"
    assert [state for _, state, _, _ in ledger(rt, ref)] == ["queued", "queued"]
    clock.advance(seconds=39)
    assert deliver_batch(rt, ref).claimed == 0, "not before Retry-After"
    clock.advance(seconds=1)

    second = deliver_batch(rt, ref)

    assert second.sent == 2
    assert [(state, attempts) for _, state, attempts, _ in ledger(rt, ref)] == [("sent", 2), ("sent", 2)]
    assert attempts_log(rt) == [("memory", "transient", 0, 2, 0), ("memory", "sent", 2, 0, 0)]


def test_transient_failures_give_up_after_the_schedule_and_keep_the_last_error(
    make_runtime: Callable[..., Runtime],
) -> None:
    memory = MemoryAdapter()
    memory.fail_calls(TransientError("503 Service Unavailable"), times=None)
    rt = email_runtime(make_runtime, [1, 1], memory=memory)
    clock = hand_clock(rt)
    ref = fanned_out(rt, 1)

    for _ in range(3):
        deliver_batch(rt, ref)
        clock.advance(seconds=2)

    assert ledger(rt, ref) == [
        ("person0@example.com", "failed", 3, "gave up after 3 attempts: 503 Service Unavailable")
    ]
    assert len(memory.calls) == 3
    assert deliver_batch(rt, ref).claimed == 0, "a dead letter is not retried"


def test_a_permanent_error_fails_the_rows_once_and_is_never_retried(
    make_runtime: Callable[..., Runtime],
) -> None:
    memory = MemoryAdapter()
    memory.fail_calls(PermanentError("400 Bad Request: from address not verified"))
    rt = email_runtime(make_runtime, [0, 0], memory=memory)
    ref = fanned_out(rt, 2)

    outcome = deliver_batch(rt, ref)

    assert outcome.failed == 2 and outcome.retry_in is None
    assert {(state, error) for _, state, _, error in ledger(rt, ref)} == {
        ("failed", "400 Bad Request: from address not verified")
    }
    assert deliver_batch(rt, ref).claimed == 0
    assert len(memory.calls) == 1


def test_one_recipient_failing_fails_alone_and_the_rest_are_sent(
    make_runtime: Callable[..., Runtime],
) -> None:
    memory = MemoryAdapter()

    def reject_one(message: Message, recipient: Recipient) -> Result | None:
        if recipient.address == "person1@example.com":
            return Result.failed(recipient.delivery_id, "mailbox does not exist")
        return None

    memory.answer(reject_one)
    rt = email_runtime(make_runtime, [0], memory=memory)
    ref = fanned_out(rt, 3)

    deliver_batch(rt, ref)

    assert [(a, s) for a, s, _, _ in ledger(rt, ref)] == [
        ("person0@example.com", "sent"),
        ("person1@example.com", "failed"),
        ("person2@example.com", "sent"),
    ]
    assert attempts_log(rt) == [("memory", "partial", 2, 0, 1)]


def test_a_row_the_provider_did_not_answer_for_is_owed_again(make_runtime: Callable[..., Runtime]) -> None:
    class Forgetful(MemoryAdapter):
        def send(self, message: Message, recipients: object) -> list[Result]:
            return super().send(message, list(recipients)[:1])  # type: ignore[call-overload]

    rt = email_runtime(make_runtime, [0], memory=Forgetful())
    ref = fanned_out(rt, 2)

    deliver_batch(rt, ref)

    assert [(s, e) for _, s, _, e in ledger(rt, ref)] == [
        ("sent", None),
        ("queued", "no result from provider"),
    ]


def test_an_opted_out_recipient_is_suppressed_and_never_sent_to_again(
    make_runtime: Callable[..., Runtime],
) -> None:
    memory = MemoryAdapter()
    memory.answer(lambda m, r: Result.opted_out(r.delivery_id, "21610: unsubscribed recipient"))
    rt = email_runtime(make_runtime, [0], memory=memory)
    ref = fanned_out(rt, 1)

    deliver_batch(rt, ref)
    memory.recover()
    again = publish(rt, draft(incident(rt), channels=EMAIL), RecordingQueue())
    fan_out(rt, again.update.id, RecordingQueue())
    deliver_batch(rt, BatchRef(again.update.id, ChannelKind.EMAIL, 0))

    assert states(rt, ref.update_id) == {"suppressed": 1}
    assert states(rt, again.update.id) == {"suppressed": 1}
    assert len(memory.calls) == 1, "the opted-out address is never called again"


def test_an_unavailable_provider_hands_every_row_to_the_next_and_opens_its_circuit(
    make_runtime: Callable[..., Runtime],
) -> None:
    primary, fallback = MemoryAdapter(), MemoryAdapter()
    primary.fail_calls(ProviderUnavailable("401 Unauthorized: API key revoked"), times=None)
    rt = email_runtime(make_runtime, [0], sendgrid=primary, smtp=fallback)
    ref = fanned_out(rt, 4)

    deliver_batch(rt, ref)

    assert len(fallback.addresses()) == 4 and primary.addresses() == []
    assert rt.breaker.is_open("sendgrid")
    with rt.engine.connect() as conn:
        assert set(conn.execute(select(deliveries.c.provider)).scalars()) == {"smtp"}
    assert [a[:2] for a in attempts_log(rt)] == [("sendgrid", "unavailable"), ("smtp", "sent")]


def test_a_provider_failing_every_call_is_called_until_a_run_of_failures_then_the_rest_waits_uncounted(
    make_runtime: Callable[..., Runtime],
) -> None:
    memory = MemoryAdapter()
    memory.fail_calls(TransientError("503"), times=None)
    rt = email_runtime(make_runtime, [30], memory=memory)
    rt.settings.rate_limits["memory"] = RateLimitSettings(per_second=1000, burst=1)  # one row per call
    ref = fanned_out(rt, 5)

    outcome = deliver_batch(rt, ref)

    assert len(memory.calls) == 3, "one failed call is about its own rows; three in a row is a run"
    assert outcome.untried == 2 and outcome.retry_in == 1, "a run: the rest waits a second's cool-down"
    assert sorted(attempts for _, _, attempts, _ in ledger(rt, ref)) == [0, 0, 1, 1, 1], (
        "only the rows that were tried count an attempt"
    )
    assert {s for _, s, _, _ in ledger(rt, ref)} == {"queued"}


def test_rows_an_adapter_did_not_reach_are_owed_again_uncounted_and_not_delayed(
    make_runtime: Callable[..., Runtime],
) -> None:
    memory = MemoryAdapter()

    def stop_after_first(message: Message, recipient: Recipient) -> Result | None:
        if recipient.address == "person0@example.com":
            return Result.retry(recipient.delivery_id, "503")
        return Result.untried(recipient.delivery_id, "not tried: the provider stopped")

    memory.answer(stop_after_first)
    rt = email_runtime(make_runtime, [30], memory=memory)
    clock = hand_clock(rt)
    ref = fanned_out(rt, 3)

    outcome = deliver_batch(rt, ref)

    assert outcome.untried == 2 and outcome.retry_in == 0
    assert ledger(rt, ref) == [
        ("person0@example.com", "queued", 1, "503"),
        ("person1@example.com", "queued", 0, "not tried: the provider stopped"),
        ("person2@example.com", "queued", 0, "not tried: the provider stopped"),
    ]
    with rt.engine.connect() as conn:
        due = dict(conn.execute(select(deliveries.c.address, deliveries.c.next_attempt_at)).all())
    assert due["person0@example.com"] == clock.at + timedelta(seconds=30)
    assert due["person1@example.com"] == due["person2@example.com"] == clock.at


def test_a_dead_letter_keeps_the_evidence_of_each_attempt_it_made(
    make_runtime: Callable[..., Runtime],
) -> None:
    memory = MemoryAdapter()
    memory.fail_calls(TransientError("503 Service Unavailable"), times=2)
    memory.fail_calls(TransientError("504 Gateway Timeout"), times=1)
    rt = email_runtime(make_runtime, [1, 1], memory=memory)
    clock = hand_clock(rt)
    ref = fanned_out(rt, 1)

    for _ in range(4):
        deliver_batch(rt, ref)
        clock.advance(seconds=2)

    with rt.engine.connect() as conn:
        row_id = conn.execute(select(deliveries.c.id)).scalar_one()
        evidence = [(provider, outcome, error) for provider, outcome, error, _ in tries_of(conn, row_id)]
    assert ledger(rt, ref) == [
        ("person0@example.com", "failed", 3, "gave up after 3 attempts: 504 Gateway Timeout")
    ]
    assert evidence == [
        ("memory", "retry", "503 Service Unavailable"),
        ("memory", "retry", "503 Service Unavailable"),
        ("memory", "retry", "504 Gateway Timeout"),
    ]
    assert len(memory.calls) == 3


def test_a_row_whose_schedule_ran_out_on_the_primary_gets_a_last_try_on_the_fallback(
    make_runtime: Callable[..., Runtime],
) -> None:
    primary, fallback = MemoryAdapter(), MemoryAdapter()
    primary.answer(
        lambda m, r: Result.retry(r.delivery_id, "mailbox busy") if r.address.startswith("person0") else None
    )
    rt = email_runtime(make_runtime, [1], sendgrid=primary, smtp=fallback)
    clock = hand_clock(rt)
    ref = fanned_out(rt, 3)

    deliver_batch(rt, ref)
    clock.advance(seconds=2)
    deliver_batch(rt, ref)

    assert fallback.addresses() == ["person0@example.com"]
    with rt.engine.connect() as conn:
        carried = dict(conn.execute(select(deliveries.c.address, deliveries.c.provider)).all())
    assert carried == {f"person{i}@example.com": "sendgrid" if i else "smtp" for i in range(3)}
    assert next((a, s, n) for a, s, n, _ in ledger(rt, ref)) == ("person0@example.com", "sent", 3)


# --- the decision functions on their own ----------------------------------------------------------


def rows(*attempts: int) -> list[ClaimedRow]:
    """Claimed rows that made ``attempts`` attempts before this call."""
    return [ClaimedRow(i + 1, f"a{i}@example.com", "en", i + 1, n) for i, n in enumerate(attempts)]


POLICY = RetryPolicy([5, 60], jitter=0)


@pytest.mark.parametrize(
    ("error", "has_fallback", "step", "outcome"),
    [
        (ProviderUnavailable("down"), True, Step.FAILOVER, "unavailable"),
        (ProviderUnavailable("down"), False, Step.FAILOVER, "unavailable"),
        (PermanentError("bad"), True, Step.DONE, "failed"),
        (TransientError("503"), True, Step.DONE, "transient"),
        (TransientError("429", retry_after=3), False, Step.HALT, "transient"),
    ],
)
def test_each_typed_error_maps_to_one_step(
    error: ChannelError, has_fallback: bool, step: Step, outcome: str
) -> None:
    verdict = decide_error(error, rows(0), POLICY, CircuitBreaker(), "p", has_fallback)
    assert (verdict.step, verdict.outcome) == (step, outcome)


def test_a_provider_apis_retry_after_pauses_the_account_and_a_webhook_endpoints_does_not() -> None:
    throttled = TransientError("429", retry_after=12)
    api = decide_error(throttled, rows(0), POLICY, CircuitBreaker(), "p", False, account_wide=True)
    endpoint = decide_error(throttled, rows(0), POLICY, CircuitBreaker(), "p", False, account_wide=False)
    assert (api.pause, endpoint.pause) == (12, None)
    assert api.requeue == endpoint.requeue == [(1, "429", 12.0)]


def test_repeated_transient_errors_open_the_circuit_and_fail_over_only_when_a_fallback_exists() -> None:
    breaker = CircuitBreaker(threshold=2)
    first = decide_error(TransientError("503"), rows(0), POLICY, breaker, "p", has_fallback=True)
    second = decide_error(TransientError("503"), rows(0), POLICY, breaker, "p", has_fallback=True)
    alone = CircuitBreaker(threshold=1)
    last = decide_error(TransientError("503"), rows(0), POLICY, alone, "p", has_fallback=False)
    assert (first.step, second.step, last.step) == (Step.DONE, Step.FAILOVER, Step.HALT)


def test_each_row_waits_on_its_own_attempts_and_rows_whose_schedule_ran_out_are_given_up() -> None:
    verdict = decide_error(
        TransientError("503", retry_after=7), rows(0, 2), POLICY, CircuitBreaker(), "p", False
    )
    assert verdict.requeue == [(1, "503", 7.0)], "its 1st attempt: 5 s, raised to the Retry-After"
    assert verdict.failed == [(2, "gave up after 3 attempts: 503")]
    handed = decide_error(TransientError("503"), rows(2), POLICY, CircuitBreaker(), "p", has_fallback=True)
    assert handed.hand_over == [1] and handed.failed == [], "with a fallback left, it goes there instead"


def test_per_recipient_results_are_sorted_and_unanswered_rows_retried() -> None:
    claimed = rows(0, 0, 0, 0, 0)
    answers = [
        Result.sent(1, "m1"),
        Result.failed(2, "no such user"),
        Result.opted_out(3, "STOP"),
        Result.untried(5, "not tried", retry_after=9),
    ]
    answers += unanswered(claimed, {r.delivery_id for r in answers})
    verdict = decide_results(answers, claimed, POLICY, CircuitBreaker(), "p")
    assert verdict.step is Step.HALT and verdict.outcome == "partial"
    assert verdict.sent == [(1, "m1")] and verdict.failed == [(2, "no such user")]
    assert verdict.opted_out == [3]
    assert verdict.requeue == [(4, "no result from provider", 5.0)]
    assert verdict.untried == [(5, "not tried")] and verdict.pause == 9
    assert [(row_id, outcome) for row_id, outcome, _ in verdict.tried] == [
        (2, "failed"),
        (3, "opted_out"),
        (4, "retry"),
    ], "the evidence of each counted attempt that did not deliver"


def test_a_retry_after_shorter_than_the_schedule_does_not_shorten_it() -> None:
    assert POLICY.backoff(2, retry_after=1) == 60
    assert POLICY.backoff(9) == 60, "the last step repeats"
    assert timedelta(seconds=POLICY.backoff(1)) == timedelta(seconds=5)
