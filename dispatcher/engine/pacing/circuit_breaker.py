"""A circuit breaker per provider: after N consecutive failures, stop calling it for a while.

While a provider's circuit is open, its rows go straight to the next provider of the channel instead
of waiting out retries against a provider that is down. After ``reset_after`` seconds one call is let
through (half-open): success closes the circuit, failure opens it again. State is per worker process;
each process learns on its own within N calls.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class _Circuit:
    failures: int = 0
    opened_at: float | None = None


class CircuitBreaker:
    def __init__(
        self, threshold: int = 3, reset_after: float = 30.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.threshold = threshold
        self.reset_after = reset_after
        self._clock = clock
        self._circuits: dict[str, _Circuit] = {}
        self._lock = threading.Lock()

    def allows(self, provider: str) -> bool:
        """True when the provider may be called (closed, or half-open after its cool-down)."""
        with self._lock:
            circuit = self._circuits.get(provider)
            if circuit is None or circuit.opened_at is None:
                return True
            return self._clock() - circuit.opened_at >= self.reset_after

    def is_open(self, provider: str) -> bool:
        return not self.allows(provider)

    def closed_in(self, provider: str) -> float:
        """Seconds until ``provider`` may be called again (0.0 when it may be called now)."""
        with self._lock:
            circuit = self._circuits.get(provider)
            if circuit is None or circuit.opened_at is None:
                return 0.0
            return max(0.0, self.reset_after - (self._clock() - circuit.opened_at))

    def record_success(self, provider: str) -> None:
        with self._lock:
            self._circuits[provider] = _Circuit()

    def record_failure(self, provider: str) -> bool:
        """Count a failure; True when this failure opened (or re-opened) the circuit."""
        with self._lock:
            circuit = self._circuits.setdefault(provider, _Circuit())
            circuit.failures += 1
            if circuit.failures >= self.threshold:
                circuit.opened_at = self._clock()
                return True
            return False

    def trip(self, provider: str) -> None:
        """Open the circuit at once (the provider said it cannot serve: bad credentials, down)."""
        with self._lock:
            self._circuits[provider] = _Circuit(failures=self.threshold, opened_at=self._clock())
