"""Every SMS attempt the ledger counts is a request Twilio received, and a request that fails affects only
its own recipient.

Given SMS subscribers and the real twilio SDK talking to the Twilio emulator, with a rate limit of burst
10, requests one at a time (``in_flight = 1``, so the emulator's scripted faults strike a known request)
or several at once, when a request in the middle of a batch fails, then:
the rows after it are still sent (a 5xx or a hang is about one request); rows that no request reached
are never charged an attempt and never wait for another row's backoff; a 429's Retry-After pauses the
whole account, for this batch and any other, in this process or another one sharing Redis.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
import redis
from sqlalchemy import select

from channels.base import ChannelKind
from dispatcher.comms.publish import publish
from dispatcher.config.settings import ChannelSettings, RateLimitSettings, RetrySettings
from dispatcher.engine.delivery import deliver_batch
from dispatcher.engine.fanout import fan_out
from dispatcher.engine.runtime import Runtime
from dispatcher.engine.task_queue import BatchRef
from dispatcher.store.schema import deliveries
from tests.emulators import TwilioEmulator
from tests.helpers import ManualClock, RecordingQueue, draft, hand_clock, incident, subscribe

SID = "AC" + "3" * 32
TOKEN = "test-auth-token"
SMS = [ChannelKind.SMS]


@pytest.fixture
def twilio() -> Iterator[TwilioEmulator]:
    with TwilioEmulator(account_sid=SID, auth_token=TOKEN, hang_seconds=5) as emu:
        yield emu


def sms_runtime(make_runtime: Callable[..., Runtime], twilio: TwilioEmulator, **extra: Any) -> Runtime:
    return make_runtime(
        channels={
            ChannelKind.SMS: ChannelSettings(providers=["twilio"], batch_size=extra.pop("batch", None))
        },
        providers={
            "twilio": {
                "account_sid": SID,
                "auth_token": TOKEN,
                "from_number": "+12025550100",
                "base_url": twilio.base_url,
                "timeout": extra.pop("timeout", 0.5),
                "in_flight": extra.pop("in_flight", 1),  # one at a time: which request a fault hits is fixed
            }
        },
        rate_limits={"twilio": RateLimitSettings(per_second=1000, burst=10)},
        retry=RetrySettings(schedule=[30, 60], jitter=0),
        **extra,
    )


def fanned_out(rt: Runtime, people: int) -> int:
    subscribe(rt, people, email=False, sms=True)
    queue = RecordingQueue()
    published = publish(rt, draft(incident(rt), channels=SMS), queue)
    fan_out(rt, published.update.id, queue)
    return published.update.id


def rows(rt: Runtime, update_id: int) -> dict[str, Any]:
    """Address -> its ledger row."""
    with rt.engine.connect() as conn:
        found = conn.execute(select(deliveries).where(deliveries.c.update_id == update_id)).all()
    return {r.address: r for r in found}


def requests_per_number(twilio: TwilioEmulator) -> Counter[str]:
    return Counter(entry["key"] for entry in twilio.request_log)


def assert_ledger_counts_what_twilio_saw(rt: Runtime, update_id: int, twilio: TwilioEmulator) -> None:
    seen = requests_per_number(twilio)
    charged = {address: row.attempts for address, row in rows(rt, update_id).items()}
    assert {a: n for a, n in charged.items() if n} == dict(seen), "attempts == requests Twilio received"


def test_a_failed_request_fails_alone_and_the_rest_of_the_chunk_is_sent(
    make_runtime: Callable[..., Runtime], twilio: TwilioEmulator
) -> None:
    rt = sms_runtime(make_runtime, twilio)
    hand_clock(rt)
    update_id = fanned_out(rt, 20)
    twilio.set_faults(fail_next=["pass", "pass", 503, "pass", "hang"])

    outcome = deliver_batch(rt, BatchRef(update_id, ChannelKind.SMS, 0))

    ledger = rows(rt, update_id)
    assert outcome.sent == 18, "a 503 and a hang are about one request each"
    assert sorted(r.state for r in ledger.values()).count("queued") == 2
    assert len(twilio.request_log) == 20
    assert_ledger_counts_what_twilio_saw(rt, update_id, twilio)


def test_rows_a_throttled_chunk_never_reached_are_not_charged_and_wait_only_for_the_account(
    make_runtime: Callable[..., Runtime], twilio: TwilioEmulator
) -> None:
    rt = sms_runtime(make_runtime, twilio, batch=10)
    clock = hand_clock(rt)
    start = clock.at
    update_id = fanned_out(rt, 20)  # two batches of ten
    twilio.set_faults(fail_next=["pass", "pass", {"status": 429, "retry_after": 30}])

    deliver_batch(rt, BatchRef(update_id, ChannelKind.SMS, 0))
    deliver_batch(rt, BatchRef(update_id, ChannelKind.SMS, 1))  # the account is paused: no request

    assert len(twilio.request_log) == 3, "nothing else was sent while Twilio's Retry-After ran"
    assert twilio.stats["early_account_requests"] == 0
    assert_ledger_counts_what_twilio_saw(rt, update_id, twilio)
    owed = [r for r in rows(rt, update_id).values() if r.state == "queued"]
    assert len(owed) == 18
    assert sorted(r.attempts for r in owed) == [0] * 17 + [1], "only the throttled row made an attempt"
    assert all(
        start + timedelta(seconds=29) <= r.next_attempt_at <= start + timedelta(seconds=31) for r in owed
    ), "every row waits for the account's Retry-After, not for a backoff of its own"


def test_with_requests_in_flight_at_once_a_hang_holds_back_only_its_own_recipient(
    make_runtime: Callable[..., Runtime], twilio: TwilioEmulator
) -> None:
    rt = sms_runtime(make_runtime, twilio, in_flight=4, timeout=3.0)
    hand_clock(rt)
    update_id = fanned_out(rt, 20)
    twilio.set_faults(fail_next=["hang"])  # the first request hangs (5 s); the client gives up after 3 s

    outcome = deliver_batch(rt, BatchRef(update_id, ChannelKind.SMS, 0))

    log = twilio.request_log
    hung = [e for e in log if e["outcome"] == "hang"]
    others = [e for e in log if e["outcome"] == "accepted"]
    assert len(hung) == 1 and len(others) == 19 and outcome.sent == 19
    assert max(e["at"] for e in others) < hung[0]["at"] + 3.0, (
        "the other 19 requests went out while the hung one waited, not after it"
    )
    assert rows(rt, update_id)[hung[0]["key"]].state == "queued", "the hung request's row is retried"
    assert_ledger_counts_what_twilio_saw(rt, update_id, twilio)


def test_with_requests_in_flight_a_429_stops_new_requests_and_records_those_already_sent(
    make_runtime: Callable[..., Runtime], twilio: TwilioEmulator
) -> None:
    rt = sms_runtime(make_runtime, twilio, in_flight=4)
    clock = hand_clock(rt)
    start = clock.at
    update_id = fanned_out(rt, 20)
    # Four requests go at once: three hang (the client gives up after 0.5 s), the fourth meets a 429.
    twilio.set_faults(fail_next=["hang", "hang", "hang", {"status": 429, "retry_after": 30}])

    outcome = deliver_batch(rt, BatchRef(update_id, ChannelKind.SMS, 0))

    log = twilio.request_log
    assert [e["outcome"] for e in log] == ["hang", "hang", "hang", "fault 429"], (
        "no request went out after the 429, and the three on the wire were waited for"
    )
    assert_ledger_counts_what_twilio_saw(rt, update_id, twilio)
    ledger = rows(rt, update_id)
    assert outcome.sent == 0 and all(row.state == "queued" for row in ledger.values())
    assert sorted(row.attempts for row in ledger.values()) == [0] * 16 + [1] * 4
    assert all(start + timedelta(seconds=29) <= row.next_attempt_at for row in ledger.values()), (
        "every row waits for the account's Retry-After (or its own backoff), none sooner"
    )


def test_a_short_retry_after_is_waited_in_place_and_the_batch_goes_on(
    make_runtime: Callable[..., Runtime], twilio: TwilioEmulator
) -> None:
    rt = sms_runtime(make_runtime, twilio, in_flight=1)  # on the real clock: the pause runs out
    update_id = fanned_out(rt, 6)
    twilio.set_faults(fail_next=["pass", {"status": 429, "retry_after": 1}])

    outcome = deliver_batch(rt, BatchRef(update_id, ChannelKind.SMS, 0))

    assert outcome.sent == 5 and outcome.untried == 0, "the rest went once the account's pause ended"
    assert twilio.stats["early_account_requests"] == 0, "none while Twilio's Retry-After ran"
    assert len(twilio.request_log) == 6
    assert_ledger_counts_what_twilio_saw(rt, update_id, twilio)


def test_a_run_of_failed_requests_stops_the_call_and_the_untried_rows_wait_only_a_cool_down(
    make_runtime: Callable[..., Runtime], twilio: TwilioEmulator
) -> None:
    rt = sms_runtime(make_runtime, twilio)
    clock = hand_clock(rt)
    update_id = fanned_out(rt, 20)
    twilio.set_faults(fail_next=[503, 500, 503])

    outcome = deliver_batch(rt, BatchRef(update_id, ChannelKind.SMS, 0))

    assert len(twilio.request_log) == 3, "three failures in a row: the provider is failing, stop"
    assert_ledger_counts_what_twilio_saw(rt, update_id, twilio)
    ledger = rows(rt, update_id).values()
    untried = [r for r in ledger if r.attempts == 0]
    assert len(untried) == 17 and {r.state for r in untried} == {"queued"}
    assert all(r.next_attempt_at == clock.at + timedelta(seconds=1) for r in untried), (
        "a second's cool-down for the provider, not the failed rows' 30 s backoff"
    )
    assert outcome.retry_in == 1

    clock.advance(seconds=1)
    deliver_batch(rt, BatchRef(update_id, ChannelKind.SMS, 0))

    assert sum(r.state == "sent" for r in rows(rt, update_id).values()) == 17
    assert_ledger_counts_what_twilio_saw(rt, update_id, twilio)


def test_a_429_met_by_one_worker_pauses_the_account_for_another_sharing_redis(
    make_runtime: Callable[..., Runtime], twilio: TwilioEmulator, redis_url: str
) -> None:
    redis.Redis.from_url(redis_url).flushdb()
    first = sms_runtime(make_runtime, twilio, batch=10, redis_url=redis_url)
    second = sms_runtime(make_runtime, twilio, batch=10, redis_url=redis_url)
    second.clock = first.clock = ManualClock(hand_clock(first).at)
    update_id = fanned_out(first, 20)
    twilio.set_faults(fail_next=[{"status": 429, "retry_after": 20}])

    deliver_batch(first, BatchRef(update_id, ChannelKind.SMS, 0))
    waited = deliver_batch(second, BatchRef(update_id, ChannelKind.SMS, 1))

    assert len(twilio.request_log) == 1, "the other worker made no request while the account waited"
    assert waited.claimed == 10 and waited.sent == 0 and waited.retry_in is not None
    assert 19 <= waited.retry_in <= 20
    assert_ledger_counts_what_twilio_saw(first, update_id, twilio)
