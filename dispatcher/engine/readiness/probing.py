"""Probe every provider of every enabled channel, at once, each bounded by ``readiness.probe_timeout``.

A provider that cannot even be built (a misconfiguration) is not ready, and says why; one whose adapter
has no probe is ready but "not probed"; a probe that crashes is not ready and logged with its traceback
(a bug must not read as a healthy channel).
"""

from __future__ import annotations

import concurrent.futures
import logging
import time
from dataclasses import dataclass
from datetime import datetime

from channels.base import ChannelKind
from channels.readiness import NOT_PROBED, Probing, Readiness
from dispatcher.domain.errors import ConfigurationError
from dispatcher.engine.runtime import Runtime

log = logging.getLogger(__name__)
MAX_PARALLEL_PROBES = 8


@dataclass(frozen=True)
class ProviderReadiness:
    """What the probe of one provider of one channel found."""

    channel: ChannelKind
    provider: str
    ready: bool
    detail: str
    elapsed: float
    """Seconds the probe took."""
    checked_at: datetime


def probe_providers(rt: Runtime) -> list[ProviderReadiness]:
    """Every provider of every enabled channel, in the channels' failover order."""
    pairs = [(kind, name) for kind in rt.settings.enabled_channels() for name in rt.providers_for(kind)]
    providers = list(dict.fromkeys(name for _, name in pairs))
    timeout = rt.settings.readiness.probe_timeout
    found: dict[str, tuple[Readiness, float]] = {}
    workers = max(1, min(MAX_PARALLEL_PROBES, len(providers)))
    pool = concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="tocsin-probe")
    try:
        futures = {name: pool.submit(_timed_probe, rt, name) for name in providers}
        deadline = time.monotonic() + timeout
        for name, future in futures.items():
            try:
                found[name] = future.result(timeout=max(0.0, deadline - time.monotonic()))
            except concurrent.futures.TimeoutError:
                found[name] = (Readiness.not_ready(f"no answer within {timeout:g} s"), timeout)
    finally:
        pool.shutdown(wait=False, cancel_futures=True)  # a hung probe is abandoned, not waited for
    now = rt.clock.now()
    return [
        ProviderReadiness(kind, name, found[name][0].ready, found[name][0].detail, found[name][1], now)
        for kind, name in pairs
    ]


def _timed_probe(rt: Runtime, name: str) -> tuple[Readiness, float]:
    started = time.monotonic()
    result = _probe(rt, name)
    return result, time.monotonic() - started


def _probe(rt: Runtime, name: str) -> Readiness:
    try:
        adapter = rt.adapter(name)
    except ConfigurationError as exc:
        return Readiness.not_ready(f"cannot be built: {exc}")
    if not isinstance(adapter, Probing):
        return Readiness.ok(NOT_PROBED)
    try:
        return adapter.probe()
    except Exception as exc:  # a crashing probe is a bug: loud in the log, and the provider not ready
        log.exception("readiness: the probe of %s crashed", name)
        return Readiness.not_ready(f"the probe crashed: {type(exc).__name__}: {exc}")
