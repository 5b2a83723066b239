"""What the engine measures in the process that does the work: the duration of each provider call.

Ledger-derived metrics are computed at scrape time by ``dispatcher.reporting.metrics``; this histogram
can only be observed where ``adapter.send`` runs (a Celery worker serves it on its own port).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import Histogram

from channels.base import ChannelError, ChannelKind, PermanentError, ProviderUnavailable, TransientError

SEND_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
SEND_SECONDS = Histogram(
    "tocsin_provider_send_seconds",
    "Duration of one provider call (adapter.send) by channel, provider and outcome.",
    ["channel", "provider", "outcome"],
    buckets=SEND_BUCKETS,
)


def _outcome(error: BaseException | None) -> str:
    if error is None:
        return "returned"
    if isinstance(error, TransientError):
        return "transient"
    if isinstance(error, PermanentError):
        return "permanent"
    if isinstance(error, ProviderUnavailable):
        return "unavailable"
    if isinstance(error, ChannelError):
        return "error"
    return "exception"


def record_send(channel: ChannelKind, provider: str, error: BaseException | None, seconds: float) -> None:
    """One provider call of ``seconds`` (its results streamed in: the time spent writing them to the
    ledger meanwhile is not the provider's and is left out by the caller)."""
    SEND_SECONDS.labels(channel.value, provider, _outcome(error)).observe(max(seconds, 0.0))


@contextmanager
def observe_send(channel: ChannelKind, provider: str) -> Iterator[None]:
    """Time one provider call into ``tocsin_provider_send_seconds`` (also when it raises)."""
    started = time.perf_counter()
    error: BaseException | None = None
    try:
        yield
    except BaseException as exc:
        error = exc
        raise
    finally:
        SEND_SECONDS.labels(channel.value, provider, _outcome(error)).observe(time.perf_counter() - started)
