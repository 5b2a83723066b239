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
from dispatcher.config.settings import ChannelSettings, CircuitSettings, RetrySettings
from dispatcher.engine.claims import ClaimedRow
from dispatcher.engine.delivery import deliver_batch
from dispatcher.engine.fanout import fan_out
from dispatcher.engine.pacing.circuit_breaker import CircuitBreaker
from dispatcher.engine.retry import RetryPolicy, Step, decide_error, decide_results
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


def test_a_provider_failing_the_whole_call_is_not_called_again_for_the_rest_of_the_batch(
    make_runtime: Callable[..., Runtime],
) -> None:
    narrow = MemoryAdapter.limited(max_batch=1)
    narrow.fail_calls(TransientError("503"), times=None)
    rt = email_runtime(make_runtime, [30], memory=narrow)
    ref = fanned_out(rt, 5)

    deliver_batch(rt, ref)

    assert len(narrow.calls) == 1, "one failed call, not one per row"
    assert sorted(attempts for _, _, attempts, _ in ledger(rt, ref)) == [0, 0, 0, 0, 1], (
        "only the row that was tried counts an attempt"
    )
    assert {s for _, s, _, _ in ledger(rt, ref)} == {"queued"}


# --- the decision functions on their own ----------------------------------------------------------


def rows(*attempts: int) -> list[ClaimedRow]:
    return [ClaimedRow(i + 1, f"a{i}@example.com", "en", i + 1, n) for i, n in enumerate(attempts)]


POLICY = RetryPolicy([5, 60], jitter=0)


@pytest.mark.parametrize(
    ("error", "has_fallback", "step", "outcome"),
    [
        (ProviderUnavailable("down"), True, Step.FAILOVER, "unavailable"),
        (ProviderUnavailable("down"), False, Step.FAILOVER, "unavailable"),
        (PermanentError("bad"), True, Step.DONE, "failed"),
        (TransientError("503"), True, Step.HALT, "transient"),
    ],
)
def test_each_typed_error_maps_to_one_step(
    error: ChannelError, has_fallback: bool, step: Step, outcome: str
) -> None:
    verdict = decide_error(error, rows(1), POLICY, CircuitBreaker(), "p", has_fallback)
    assert (verdict.step, verdict.outcome) == (step, outcome)


def test_repeated_transient_errors_open_the_circuit_and_fail_over_only_when_a_fallback_exists() -> None:
    breaker = CircuitBreaker(threshold=2)
    first = decide_error(TransientError("503"), rows(1), POLICY, breaker, "p", has_fallback=True)
    second = decide_error(TransientError("503"), rows(1), POLICY, breaker, "p", has_fallback=True)
    alone = CircuitBreaker(threshold=1)
    last = decide_error(TransientError("503"), rows(1), POLICY, alone, "p", has_fallback=False)
    assert (first.step, second.step, last.step) == (Step.HALT, Step.FAILOVER, Step.HALT)


def test_rows_whose_schedule_ran_out_are_given_up_and_the_rest_wait_as_the_most_tried_row() -> None:
    verdict = decide_error(
        TransientError("503", retry_after=7), rows(1, 3), POLICY, CircuitBreaker(), "p", False
    )
    assert verdict.requeue == [(1, "503", 60.0)], "one delay for the batch: the step of its 3rd attempt"
    assert verdict.failed == [(2, "gave up after 3 attempts: 503")]


def test_per_recipient_results_are_sorted_and_unanswered_rows_retried() -> None:
    answers = [Result.sent(1, "m1"), Result.failed(2, "no such user"), Result.opted_out(3, "STOP")]
    verdict = decide_results(answers, rows(1, 1, 1, 1), POLICY, CircuitBreaker(), "p")
    assert verdict.step is Step.DONE and verdict.outcome == "partial"
    assert verdict.sent == [(1, "m1")] and verdict.failed == [(2, "no such user")]
    assert verdict.opted_out == [3]
    assert verdict.requeue == [(4, "no result from provider", 5.0)]
    assert verdict.retry_in == 5.0


def test_a_retry_after_shorter_than_the_schedule_does_not_shorten_it() -> None:
    assert POLICY.backoff(2, retry_after=1) == 60
    assert POLICY.backoff(9) == 60, "the last step repeats"
    assert timedelta(seconds=POLICY.backoff(1)) == timedelta(seconds=5)
