"""A provider account told to wait: a 429's ``Retry-After`` pauses every worker's calls to it.

A provider API's 429 is about the account, not the one request that met it: every other request of
the same account made before the wait is over is refused too (and counts against the account at some
providers). So the engine pauses the whole account, not one row: ``pause(provider, seconds)`` when a
provider answers "wait", ``remaining(provider)`` before each call (and between the requests of a
per-recipient call).

Shared by every worker process through Redis when there is one (one key per provider whose time to live
is the pause; setting a pause never shortens a longer one), in-process otherwise, like the rate-limit
bucket (``dispatcher.engine.pacing.rate_limit``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final, Protocol

if TYPE_CHECKING:
    import redis

__all__ = ["LocalPauses", "Pauses", "RedisPauses"]


class Pauses(Protocol):
    def pause(self, provider: str, seconds: float) -> None:
        """No call to ``provider`` for ``seconds`` from now (a longer pause already set stands)."""
        ...

    def remaining(self, provider: str) -> float:
        """Seconds until ``provider`` may be called again; 0.0 when it may be called now."""
        ...


class LocalPauses:
    """Pauses of this process (the embedded runner, tests)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._until: dict[str, float] = {}
        self._lock = threading.Lock()

    def pause(self, provider: str, seconds: float) -> None:
        if seconds <= 0:
            return
        with self._lock:
            until = self._clock() + seconds
            self._until[provider] = max(until, self._until.get(provider, 0.0))

    def remaining(self, provider: str) -> float:
        with self._lock:
            return max(0.0, self._until.get(provider, 0.0) - self._clock())


# KEYS[1] the provider's pause key; ARGV[1] the pause in milliseconds. The key's time to live is the pause:
# it only ever grows, and the key is gone when the pause is over.
_PAUSE_LUA: Final = """
local ttl = redis.call('PTTL', KEYS[1])
if ttl < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], '1', 'PX', ARGV[1])
end
return 1
"""


class RedisPauses:
    """Pauses shared by every process using the same Redis (times are Redis's own key expiry)."""

    def __init__(self, redis_client: redis.Redis[Any], prefix: str = "tocsin:pause:") -> None:
        self._redis = redis_client
        self.prefix = prefix
        self._script = redis_client.register_script(_PAUSE_LUA)

    def pause(self, provider: str, seconds: float) -> None:
        millis = int(seconds * 1000)
        if millis > 0:
            self._script(keys=[self.prefix + provider], args=[millis])

    def remaining(self, provider: str) -> float:
        ttl = int(self._redis.pttl(self.prefix + provider))
        return ttl / 1000.0 if ttl > 0 else 0.0
