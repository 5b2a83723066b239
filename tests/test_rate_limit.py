"""Token buckets: exact arithmetic with a hand-moved clock (local and Redis), and the shared-Redis bound
under real concurrency (a correctness bound on what was handed out, never a timing assertion)."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

from dispatcher.engine.pacing.rate_limit import (
    BucketSpec,
    LocalRateLimiter,
    RateLimiter,
    RateLimitExceeded,
    RedisRateLimiter,
    wait_for,
)

SPEC = BucketSpec(rate_per_second=2, burst=3)  # one token every 0.5 s, three at once: exact in binary


class FakeClock:
    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.t = start

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis[Any]]:
    client: redis.Redis[Any] = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def prefix(redis_client: redis.Redis[Any]) -> Iterator[str]:
    """A fresh key space per test; removed afterwards."""
    p = f"tocsin:test:rl:{uuid.uuid4().hex}:"
    yield p
    for key in redis_client.scan_iter(match=p + "*"):
        redis_client.delete(key)


LimiterFactory = Callable[..., RateLimiter]


@pytest.fixture(params=["local", "redis"])
def make_limiter(request: pytest.FixtureRequest) -> LimiterFactory:
    """The same behaviour from both implementations, on a clock the test moves."""
    if request.param == "local":
        return lambda clock, **kw: LocalRateLimiter(clock=clock, **kw)
    client: redis.Redis[Any] = request.getfixturevalue("redis_client")
    key_prefix: str = request.getfixturevalue("prefix")
    return lambda clock, **kw: RedisRateLimiter(client, prefix=key_prefix, clock=clock, **kw)


# --- exact arithmetic on a fake clock (both implementations) ----------------------------------------


def test_burst_then_steady_rate(make_limiter: LimiterFactory) -> None:
    clock = FakeClock()
    rl = make_limiter(clock, specs={"sendgrid": SPEC})
    assert [rl.acquire("sendgrid") for _ in range(3)] == [0.0, 0.0, 0.0]  # the burst
    assert rl.acquire("sendgrid") == 0.5
    assert rl.acquire("sendgrid") == 0.5  # a refusal takes nothing
    clock.advance(0.25)
    assert rl.acquire("sendgrid") == 0.25
    clock.advance(0.25)
    assert rl.acquire("sendgrid") == 0.0
    assert rl.acquire("sendgrid") == 0.5
    for _ in range(10):  # steady state: exactly one token per 0.5 s
        clock.advance(0.5)
        assert rl.acquire("sendgrid") == 0.0
        assert rl.acquire("sendgrid") == 0.5


def test_idle_bucket_refills_to_burst_not_beyond(make_limiter: LimiterFactory) -> None:
    clock = FakeClock()
    rl = make_limiter(clock, specs={"k": SPEC})
    for _ in range(3):
        assert rl.acquire("k") == 0.0
    clock.advance(1.0)  # two tokens back
    assert [rl.acquire("k") for _ in range(3)] == [0.0, 0.0, 0.5]
    clock.advance(3600)  # an hour idle: still only the burst
    assert [rl.acquire("k") for _ in range(4)] == [0.0, 0.0, 0.0, 0.5]


def test_several_tokens_at_once(make_limiter: LimiterFactory) -> None:
    clock = FakeClock()
    rl = make_limiter(clock, specs={"k": SPEC})
    assert rl.acquire("k", 2) == 0.0
    assert rl.acquire("k", 2) == 0.5  # one left, one more in 0.5 s
    assert rl.acquire("k", 1) == 0.0
    assert rl.acquire("k", 3) == 1.5
    clock.advance(1.5)
    assert rl.acquire("k", 3) == 0.0
    with pytest.raises(ValueError, match="burst is 3"):
        rl.acquire("k", 4)
    with pytest.raises(ValueError, match="tokens must be an integer >= 1"):
        rl.acquire("k", 0)


def test_specs_per_key_default_and_per_call(make_limiter: LimiterFactory) -> None:
    clock = FakeClock()
    rl = make_limiter(clock, specs={"twilio:+15005550006": BucketSpec(1, 1)}, default=BucketSpec(10, 2))
    assert rl.acquire("twilio:+15005550006") == 0.0
    assert rl.acquire("twilio:+15005550006") == 1.0
    assert [rl.acquire("x") for _ in range(2)] == [0.0, 0.0]  # the default: burst 2
    assert rl.acquire("x") == pytest.approx(0.1, abs=1e-6)  # unix-time floats: sub-µs error
    assert rl.acquire("y", spec=BucketSpec(4, 1)) == 0.0  # per call
    assert rl.acquire("y", spec=BucketSpec(4, 1)) == 0.25
    strict = make_limiter(clock, specs={"known": SPEC})
    with pytest.raises(KeyError, match="no rate limit configured for 'unknown'"):
        strict.acquire("unknown")


def test_keys_are_independent(make_limiter: LimiterFactory) -> None:
    clock = FakeClock()
    rl = make_limiter(clock, default=SPEC)
    for _ in range(3):
        assert rl.acquire("a") == 0.0
    assert rl.acquire("a") == 0.5
    assert [rl.acquire("b") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert rl.acquire("b") == 0.5


def test_concurrent_callers_on_a_frozen_clock_get_exactly_the_burst(make_limiter: LimiterFactory) -> None:
    clock = FakeClock()
    rl = make_limiter(clock, specs={"k": BucketSpec(1, 25)})
    granted: list[int] = []
    lock = threading.Lock()

    def hammer() -> None:
        mine = sum(1 for _ in range(50) if rl.acquire("k") == 0.0)
        with lock:
            granted.append(mine)

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(granted) == 25


def test_wait_for_sleeps_exactly_as_long_as_needed(make_limiter: LimiterFactory) -> None:
    clock = FakeClock()
    rl = make_limiter(clock, specs={"k": SPEC})
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock.advance(seconds)

    assert [wait_for(rl, "k", sleep=sleep) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert wait_for(rl, "k", sleep=sleep) == 0.5
    assert wait_for(rl, "k", 2, sleep=sleep) == 1.0
    assert slept == [0.5, 1.0]
    with pytest.raises(RateLimitExceeded) as raised:
        wait_for(rl, "k", 3, sleep=sleep, max_wait=1.0)
    assert raised.value.retry_after == 1.5
    assert raised.value.key == "k"
    assert slept == [0.5, 1.0]  # nothing slept, nothing taken
    assert wait_for(rl, "k", 3, sleep=sleep, max_wait=1.5) == 1.5


def test_bucket_spec_validation() -> None:
    for bad_rate in (0, -1, float("inf"), float("nan")):
        with pytest.raises(ValueError, match="rate_per_second"):
            BucketSpec(bad_rate, 1)
    for bad_burst in (0, -1, 1.5):
        with pytest.raises(ValueError, match="burst"):
            BucketSpec(1, bad_burst)  # type: ignore[arg-type]
    assert BucketSpec(0.5).interval == 2.0


def test_local_limiter_uses_monotonic_clock_by_default() -> None:
    rl = LocalRateLimiter(default=BucketSpec(1, 1))
    assert rl.acquire("k") == 0.0
    wait = rl.acquire("k")
    assert 0.0 < wait <= 1.0


# --- Redis: real server time, real concurrency, expiry ----------------------------------------------


def _redis_seconds(client: redis.Redis[Any]) -> float:
    seconds, micros = client.time()
    return float(seconds) + float(micros) / 1_000_000


def test_shared_redis_bucket_never_exceeds_rate_times_elapsed_plus_burst(
    redis_url: str, prefix: str, redis_client: redis.Redis[Any]
) -> None:
    """Two limiters with their own connection pools, as two worker processes would have, hammered by
    several threads each for about two seconds. The bound is on what was handed out against Redis's
    own clock, which is the clock the script uses."""
    spec = BucketSpec(rate_per_second=50, burst=10)
    clients = [redis.Redis.from_url(redis_url) for _ in range(2)]
    limiters = [RedisRateLimiter(c, {"sendgrid": spec}, prefix=prefix) for c in clients]
    granted = [0] * 8
    stop = threading.Event()

    def hammer(index: int) -> None:
        limiter = limiters[index % 2]
        while not stop.is_set():
            if limiter.acquire("sendgrid") == 0.0:
                granted[index] += 1

    start = _redis_seconds(redis_client)
    threads = [threading.Thread(target=hammer, args=(i,)) for i in range(len(granted))]
    for t in threads:
        t.start()
    time.sleep(2.0)
    stop.set()
    for t in threads:
        t.join()
    elapsed = _redis_seconds(redis_client) - start
    for c in clients:
        c.close()

    total = sum(granted)
    assert total <= spec.rate_per_second * elapsed + spec.burst, (total, elapsed)
    assert total > spec.burst  # the bucket did refill while it was being hammered
    assert sum(1 for g in granted if g > 0) >= 2


def test_redis_time_is_used_by_default(redis_client: redis.Redis[Any], prefix: str) -> None:
    rl = RedisRateLimiter(redis_client, {"k": BucketSpec(1, 3)}, prefix=prefix)
    assert [rl.acquire("k") for _ in range(3)] == [0.0, 0.0, 0.0]
    wait = rl.acquire("k")
    assert 0.0 < wait <= 1.0


def test_redis_keys_expire_when_the_bucket_is_full_again(redis_client: redis.Redis[Any], prefix: str) -> None:
    clock = FakeClock()
    rl = RedisRateLimiter(redis_client, {"k": SPEC}, prefix=prefix, clock=clock)
    rl.acquire("k")
    assert 0 < redis_client.pttl(rl.redis_key("k")) <= 500  # full again in 0.5 s
    rl.acquire("k")
    rl.acquire("k")
    assert 0 < redis_client.pttl(rl.redis_key("k")) <= 1500  # full again in 1.5 s
    assert rl.acquire("k") == 0.5  # refused: nothing written
    assert 0 < redis_client.pttl(rl.redis_key("k")) <= 1500

    fast = RedisRateLimiter(redis_client, {"f": BucketSpec(100, 1)}, prefix=prefix)
    assert fast.acquire("f") == 0.0
    assert 0 < redis_client.pttl(fast.redis_key("f")) <= 10
    deadline = time.monotonic() + 5
    while redis_client.exists(fast.redis_key("f")) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not redis_client.exists(fast.redis_key("f"))
    assert fast.acquire("f") == 0.0  # an expired key is a full bucket

    for key in redis_client.scan_iter(match=prefix + "*"):
        assert redis_client.pttl(key) > 0, key  # no key without a TTL


def test_redis_limiter_with_decoded_responses(redis_url: str, prefix: str) -> None:
    client: redis.Redis[Any] = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        clock = FakeClock()
        rl = RedisRateLimiter(client, {"k": SPEC}, prefix=prefix, clock=clock)
        assert [rl.acquire("k") for _ in range(4)] == [0.0, 0.0, 0.0, 0.5]
    finally:
        client.close()


def test_redis_script_survives_script_flush(redis_client: redis.Redis[Any], prefix: str) -> None:
    rl = RedisRateLimiter(redis_client, {"k": SPEC}, prefix=prefix, clock=FakeClock())
    assert rl.acquire("k") == 0.0
    redis_client.script_flush()
    assert rl.acquire("k") == 0.0  # NOSCRIPT: reloaded transparently
