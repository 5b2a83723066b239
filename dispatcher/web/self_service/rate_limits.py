"""Rate limits of the public self-service endpoints (the ``limits`` library).

Counted per client address and, for what sends a message, per destination too, so nobody can flood
a stranger's inbox or phone and nobody can guess SMS codes: a limit hit answers 429 with
``Retry-After``, the same words whoever asks. With ``REDIS_URL`` set the counts are shared by every
``tocsin api`` process; without it each process counts for itself.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from limits import RateLimitItem, parse_many
from limits.storage import MemoryStorage, RedisStorage, Storage
from limits.strategies import MovingWindowRateLimiter

LIMITS: dict[str, list[RateLimitItem]] = {
    # Opening the subscribe or manage page, per client.
    "page": parse_many("120/minute"),
    # Sign-up requests per client.
    "signup": parse_many("10/minute;30/hour"),
    # Codes, confirmation emails and pings per destination (an address, a number, a URL).
    "destination": parse_many("3/hour;10/day"),
    # SMS code attempts per client (each code also allows only 5 tries).
    "code": parse_many("10/15minutes"),
    # Manage-page changes per client.
    "manage": parse_many("30/minute"),
}


class Limited(Exception):
    """A limit was hit; ``retry_after`` in whole seconds."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many requests; try again in {retry_after} s")
        self.retry_after = retry_after


@dataclass
class RateLimits:
    limiter: MovingWindowRateLimiter
    table: Mapping[str, list[RateLimitItem]] = field(default_factory=lambda: LIMITS)
    """The limits of each kind (``LIMITS``; a test may set its own in ``app.state.self_service_limits``)."""

    @classmethod
    def build(
        cls, redis_url: str | None, table: Mapping[str, list[RateLimitItem]] | None = None
    ) -> RateLimits:
        storage: Storage = RedisStorage(redis_url) if redis_url else MemoryStorage()
        return cls(MovingWindowRateLimiter(storage), LIMITS if table is None else table)

    def hit(self, kind: str, who: str) -> None:
        """Count one ``kind`` request by ``who``; ``Limited`` when over any of its limits."""
        key = hashlib.sha256(who.casefold().encode()).hexdigest()[:32]  # no addresses in Redis keys
        for item in self.table[kind]:
            if not self.limiter.hit(item, "tocsin-self-service", kind, key):
                reset = self.limiter.get_window_stats(item, "tocsin-self-service", kind, key).reset_time
                raise Limited(max(1, int(reset - time.time()) + 1))
