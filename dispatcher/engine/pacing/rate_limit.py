"""Token buckets for provider rate limits, shared by every worker process through Redis.

Each bucket has a key (conventionally the provider and sender, e.g. ``"twilio:+15005550006"``) and a
``BucketSpec``: a steady ``rate_per_second`` and a ``burst`` (how many tokens a full bucket holds). Over
any interval of ``t`` seconds a bucket hands out at most ``burst + rate_per_second * t`` tokens, however
many threads and processes ask.

Where the spec comes from: the limiter is built with a ``dict[str, BucketSpec]`` (plus an optional
``default`` for keys not in it), and any ``acquire`` call may pass ``spec=`` to override it for that
call - useful when the spec comes from the adapter's capabilities at the call site. A key with no spec
from either raises ``KeyError``.

``acquire`` never sleeps: it takes the tokens and returns ``0.0``, or takes nothing and returns how many
seconds until they would be there. The caller decides whether to sleep (``wait_for``) or to put the task
back on the queue with a countdown (long waits).

Implementation: GCRA (the "generic cell rate algorithm"), the token bucket written as one number per key,
the *theoretical arrival time* ``tat``: the bucket is full when ``tat <= now``; taking ``n`` tokens moves
``tat`` forward by ``n / rate``; that is allowed while ``tat - now <= burst / rate``. ``RedisRateLimiter``
runs it as one Lua script (atomic on the server) and lets the key expire when the bucket is full again,
so idle keys never accumulate. ``LocalRateLimiter`` runs the same arithmetic under a lock, for the
embedded mode (one process) and tests.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Protocol

if TYPE_CHECKING:
    import redis

__all__ = [
    "BucketSpec",
    "LocalRateLimiter",
    "RateLimitExceeded",
    "RateLimiter",
    "RedisRateLimiter",
    "wait_for",
]


@dataclass(frozen=True)
class BucketSpec:
    """``rate_per_second`` tokens flow in steadily; a full bucket holds ``burst`` tokens."""

    rate_per_second: float
    burst: int = 1

    def __post_init__(self) -> None:
        rate = self.rate_per_second
        if (
            isinstance(rate, bool)
            or not isinstance(rate, int | float)
            or not math.isfinite(rate)
            or rate <= 0
        ):
            raise ValueError(f"rate_per_second must be a finite number > 0, got {rate!r}")
        if isinstance(self.burst, bool) or not isinstance(self.burst, int) or self.burst < 1:
            raise ValueError(f"burst must be an integer >= 1, got {self.burst!r}")

    @property
    def interval(self) -> float:
        """Seconds per token."""
        return 1.0 / self.rate_per_second


class RateLimitExceeded(Exception):
    """``wait_for`` would have to wait longer than its ``max_wait``; ``retry_after`` is the wait."""

    def __init__(self, key: str, retry_after: float) -> None:
        super().__init__(f"rate limit {key!r}: tokens available in {retry_after:.3f}s")
        self.key = key
        self.retry_after = retry_after


class RateLimiter(Protocol):
    def acquire(self, key: str, tokens: int = 1, *, spec: BucketSpec | None = None) -> float:
        """Take ``tokens`` from ``key``'s bucket and return 0.0, or take none and return the seconds
        until they would be available. Never sleeps."""
        ...


class _Specs:
    """Per-key specs given at construction, a default, and per-call overrides."""

    def __init__(self, specs: Mapping[str, BucketSpec] | None, default: BucketSpec | None) -> None:
        self._specs = dict(specs or {})
        self._default = default

    def resolve(self, key: str, tokens: int, spec: BucketSpec | None) -> BucketSpec:
        chosen = spec or self._specs.get(key) or self._default
        if chosen is None:
            raise KeyError(f"no rate limit configured for {key!r} (pass spec= or configure the limiter)")
        if isinstance(tokens, bool) or not isinstance(tokens, int) or tokens < 1:
            raise ValueError(f"tokens must be an integer >= 1, got {tokens!r}")
        if tokens > chosen.burst:
            raise ValueError(
                f"cannot take {tokens} tokens at once from {key!r}: its burst is {chosen.burst}, "
                "so they would never be available"
            )
        return chosen


def _gcra(tat: float | None, now: float, spec: BucketSpec, tokens: int) -> tuple[float | None, float]:
    """(new tat, 0.0) when allowed, (None, wait) when not. Same arithmetic as the Lua script."""
    interval = spec.interval
    base = now if tat is None or tat < now else tat
    new_tat = base + tokens * interval
    allow_at = new_tat - spec.burst * interval
    if allow_at > now:
        return None, allow_at - now
    return new_tat, 0.0


class LocalRateLimiter:
    """In-process buckets (thread-safe). ``clock`` is any monotonic seconds function."""

    _PRUNE_ABOVE: Final = 4096

    def __init__(
        self,
        specs: Mapping[str, BucketSpec] | None = None,
        *,
        default: BucketSpec | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._specs = _Specs(specs, default)
        self._clock = clock
        self._tat: dict[str, float] = {}
        self._lock = threading.Lock()

    def acquire(self, key: str, tokens: int = 1, *, spec: BucketSpec | None = None) -> float:
        chosen = self._specs.resolve(key, tokens, spec)
        with self._lock:
            now = self._clock()
            new_tat, wait = _gcra(self._tat.get(key), now, chosen, tokens)
            if new_tat is None:
                return wait
            self._tat[key] = new_tat
            if len(self._tat) > self._PRUNE_ABOVE:
                # Full buckets carry no state: forget them (the same as a Redis key expiring).
                self._tat = {k: v for k, v in self._tat.items() if v > now}
            return 0.0


# KEYS[1] bucket key. ARGV: seconds per token, burst, tokens, now (unix seconds; "" = Redis TIME).
# Returns {1, "0"} when taken, {0, "<seconds to wait>"} when not (a string: Redis truncates Lua numbers
# to integers). The key holds tat (unix seconds) and expires when the bucket is full again.
_GCRA_LUA: Final = """
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local tokens = tonumber(ARGV[3])
local now
if ARGV[4] ~= '' then
  now = tonumber(ARGV[4])
else
  if redis.replicate_commands then redis.replicate_commands() end
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1000000
end
local tat = tonumber(redis.call('GET', KEYS[1]))
if tat == nil or tat < now then tat = now end
local new_tat = tat + tokens * interval
local allow_at = new_tat - burst * interval
if allow_at > now then
  return {0, string.format('%.17g', allow_at - now)}
end
local ttl_ms = math.ceil((new_tat - now) * 1000)
if ttl_ms < 1 then ttl_ms = 1 end
redis.call('SET', KEYS[1], string.format('%.17g', new_tat), 'PX', ttl_ms)
return {1, '0'}
"""


class RedisRateLimiter:
    """Buckets in Redis, shared by every process using the same server and ``prefix``.

    One atomic Lua script per ``acquire`` (one round trip). By default the script reads the time with
    Redis ``TIME``, so all processes agree on it whatever their own clocks say. ``clock`` replaces that
    with a unix-seconds function (tests); every process sharing a key must then use the same clock.
    Redis errors (``redis.RedisError``) propagate: whether to send without a limit when Redis is down
    is the caller's decision.
    """

    def __init__(
        self,
        redis_client: redis.Redis[Any],
        specs: Mapping[str, BucketSpec] | None = None,
        *,
        default: BucketSpec | None = None,
        prefix: str = "tocsin:rl:",
        clock: Callable[[], float] | None = None,
    ) -> None:
        self._redis = redis_client
        self._specs = _Specs(specs, default)
        self.prefix = prefix
        self._clock = clock
        self._script = redis_client.register_script(_GCRA_LUA)

    def redis_key(self, key: str) -> str:
        return self.prefix + key

    def acquire(self, key: str, tokens: int = 1, *, spec: BucketSpec | None = None) -> float:
        chosen = self._specs.resolve(key, tokens, spec)
        now = "" if self._clock is None else repr(float(self._clock()))
        allowed, wait = self._script(
            keys=[self.redis_key(key)],
            args=[repr(chosen.interval), chosen.burst, tokens, now],
        )
        if int(allowed) == 1:
            return 0.0
        return max(float(wait), 0.0)


def wait_for(
    limiter: RateLimiter,
    key: str,
    tokens: int = 1,
    *,
    spec: BucketSpec | None = None,
    sleep: Callable[[float], object] = time.sleep,
    max_wait: float | None = None,
) -> float:
    """Block (through ``sleep``) until ``tokens`` are taken from ``key``; return the seconds slept.

    With ``max_wait``, raise ``RateLimitExceeded`` (carrying ``retry_after``) instead of sleeping past
    it in total; no tokens are taken in that case, so the caller can requeue the work with that countdown.
    Other processes may take the tokens first while this one sleeps; it then simply waits again.
    """
    waited = 0.0
    while True:
        wait = limiter.acquire(key, tokens, spec=spec)
        if wait <= 0.0:
            return waited
        if max_wait is not None and waited + wait > max_wait:
            raise RateLimitExceeded(key, wait)
        sleep(wait)
        waited += wait
