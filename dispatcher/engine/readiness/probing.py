"""Probe every provider of every enabled channel, at once, each bounded by ``readiness.probe_timeout``.

A provider that cannot even be built (a misconfiguration) is not ready, and says why; one whose adapter
has no probe is ready but "not probed"; a probe that crashes is not ready and logged with its traceback
(a bug must not read as a healthy channel).

A probe that fails is asked again ``CONFIRM_AFTER`` seconds later, within the same round, and the
second answer stands: a blip (one dropped connection) does not turn a channel down and alert staff, and a
provider that is really down is still found at once, not a round later.
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
CANNOT_BE_BUILT = "cannot be built"
MAX_PARALLEL_PROBES = 8
CONFIRM_AFTER = 1.0
"""Seconds before a failed probe is asked again (if the round's ``probe_timeout`` leaves time)."""


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
        deadline = time.monotonic() + timeout
        futures = {name: pool.submit(_timed_probe, rt, name, deadline) for name in providers}
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


def _timed_probe(rt: Runtime, name: str, deadline: float) -> tuple[Readiness, float]:
    started = time.monotonic()
    result = _probe(rt, name)
    confirmable = not result.ready and not result.detail.startswith(CANNOT_BE_BUILT)
    if confirmable and time.monotonic() + CONFIRM_AFTER < deadline:  # confirm before calling it down
        time.sleep(CONFIRM_AFTER)
        result = _probe(rt, name)
    return result, time.monotonic() - started


def _probe(rt: Runtime, name: str) -> Readiness:
    try:
        adapter = rt.adapter(name)
    except ConfigurationError as exc:
        return Readiness.not_ready(f"{CANNOT_BE_BUILT}: {exc}")
    if not isinstance(adapter, Probing):
        return Readiness.ok(NOT_PROBED)
    try:
        return adapter.probe()
    except Exception as exc:  # a crashing probe is a bug: loud in the log, and the provider not ready
        log.exception("readiness: the probe of %s crashed", name)
        return Readiness.not_ready(f"the probe crashed: {type(exc).__name__}: {exc}")
