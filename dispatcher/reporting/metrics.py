"""Prometheus metrics: what ``/metrics`` on ``tocsin api`` (and the worker's own server) shows.

Two kinds, chosen for what stays correct when several processes deliver:

- **From the database at scrape time** (``LedgerCollector``): deliveries by channel, provider and state,
  owed rows per channel (queue depth), provider calls and retries (the append-only attempts log), circuit
  state per provider, and the comms SLOs (time to first public update, promises kept and broken,
  incidents overdue now). The ledger is the source of truth and is shared by every worker, so any one
  process that can read it reports the whole cluster's numbers, and nothing is lost when a worker
  restarts. Counters kept in memory would instead be per process, reset on restart, and double counted
  when several processes are scraped and summed.
- **In the process that does the work**: how long each provider call took
  (``tocsin_provider_send_seconds``, observed around ``adapter.send`` by ``dispatcher.engine.instruments``),
  and ingest requests. Celery workers expose these on their own port (``workers.metrics``), in
  prometheus-client's multiprocess mode so every pool process is counted.

Metric names are the contract ``docs/pages/grafana-dashboard.json`` and the docs use.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from redis.exceptions import RedisError
from sqlalchemy import and_, func, select
from sqlalchemy.exc import SQLAlchemyError

from dispatcher.domain.crisis import INCIDENT_KINDS
from dispatcher.domain.errors import TocsinError
from dispatcher.domain.models import DeliveryState, IncidentStatus, UpdateState
from dispatcher.engine.readiness.state import snapshot
from dispatcher.engine.runtime import Runtime
from dispatcher.store.schema import deliveries, delivery_attempts, incident_reports, incidents, updates

log = logging.getLogger(__name__)

FIRST_UPDATE_BUCKETS = (60.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0)
"""Seconds from an incident opening to its first public update: 1m, 5m, 10m, 15m, 30m, 1h, 2h, 4h."""
OWED_STATES = (DeliveryState.QUEUED.value, DeliveryState.SENDING.value)
CIRCUIT_OPENING_OUTCOMES = ("unavailable", "failover")
PUBLISHED_STATES = (UpdateState.PENDING.value, UpdateState.FANNED_OUT.value)
PROMISE_STATES = ("open", "kept", "broken")

INGEST_REQUESTS = Counter(
    "tocsin_ingest_requests",
    "Monitoring ingest requests by source and result (opened, repeat, http_401, …).",
    ["source", "result"],
)


def _histogram(
    name: str, documentation: str, values: Iterable[float], bounds: Iterable[float]
) -> HistogramMetricFamily:
    observed = sorted(values)
    buckets = [(repr(float(b)), sum(1 for v in observed if v <= b)) for b in bounds]
    buckets.append(("+Inf", len(observed)))
    return HistogramMetricFamily(name, documentation, buckets=buckets, sum_value=sum(observed))


class LedgerCollector(Collector):
    """Reads the numbers that must hold across processes from the database, at each scrape."""

    def __init__(
        self, runtime: Callable[[], Runtime], queue_lengths: Callable[[], Mapping[str, int]] | None = None
    ) -> None:
        self._runtime = runtime
        self._queue_lengths = queue_lengths
        """Tasks waiting per broker queue, when there is a broker (the hook ``workers`` provides)."""

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("tocsin_ledger_up", "1 when the database could be read for this scrape.")
        try:
            families = list(self._families(self._runtime()))
        except (SQLAlchemyError, TocsinError, OSError) as exc:  # a scrape answers when the database does not
            log.warning("metrics: the database could not be read: %s", exc)
            up.add_metric([], 0)
            yield up
            return
        except Exception:  # a bug in Tocsin: the scrape still answers, and the traceback says where
            log.exception("metrics: reading the ledger failed (not a database outage: a bug)")
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from families

    def _families(self, rt: Runtime) -> Iterator[Metric]:
        yield from self._deliveries(rt)
        yield from self._attempts(rt)
        yield from self._comms(rt)
        yield from self._readiness(rt)
        yield from self._broker()

    def _readiness(self, rt: Runtime) -> Iterator[Metric]:
        """What the last probe round found (``tocsin check``, the tick): a channel that died since the last
        incident shows here before the next one."""
        ready = GaugeMetricFamily(
            "tocsin_provider_ready",
            "1 when the provider answered its last readiness probe for the channel, else 0.",
            labels=["channel", "provider"],
        )
        checked = GaugeMetricFamily(
            "tocsin_readiness_checked_timestamp_seconds",
            "When the channel's providers were last probed (Unix time): alert when it gets old.",
            labels=["channel"],
        )
        for kind, found in snapshot(rt).items():
            checked.add_metric([kind.value], found.checked_at.timestamp())
            for status in found.providers:
                ready.add_metric([kind.value, status.provider], 1 if status.ready else 0)
        yield ready
        yield checked

    def _deliveries(self, rt: Runtime) -> Iterator[Metric]:
        rows = GaugeMetricFamily(
            "tocsin_deliveries",
            "Delivery rows in the ledger by channel, provider (none before the first try) and state.",
            labels=["channel", "provider", "state"],
        )
        depth = GaugeMetricFamily(
            "tocsin_queue_depth",
            "Deliveries still owed (queued or being sent) per channel, from the ledger.",
            labels=["channel"],
        )
        owed = dict.fromkeys((c.value for c in rt.settings.enabled_channels()), 0)
        query = select(
            deliveries.c.channel, deliveries.c.provider, deliveries.c.state, func.count()
        ).group_by(deliveries.c.channel, deliveries.c.provider, deliveries.c.state)
        with rt.engine.connect() as conn:
            for channel, provider, state, count in conn.execute(query):
                rows.add_metric([channel, provider or "none", state], int(count))
                if state in OWED_STATES:
                    owed[channel] = owed.get(channel, 0) + int(count)
        for channel, count in sorted(owed.items()):
            depth.add_metric([channel], count)
        yield rows
        yield depth

    def _attempts(self, rt: Runtime) -> Iterator[Metric]:
        calls = CounterMetricFamily(
            "tocsin_provider_calls",
            "Provider calls (one per batch sent) by channel, provider and outcome, from the attempts log.",
            labels=["channel", "provider", "outcome"],
        )
        retries = CounterMetricFamily(
            "tocsin_delivery_retries",
            "Deliveries put back for a retry after a transient failure, by channel and provider.",
            labels=["channel", "provider"],
        )
        circuit = GaugeMetricFamily(
            "tocsin_circuit_open",
            "1 while a provider's circuit breaker is open: its latest call opened the circuit less than "
            "circuit_breaker.reset_after seconds ago (from the attempts log, so every worker's breakers "
            "count).",
            labels=["provider"],
        )
        now = rt.clock.now()
        a = delivery_attempts.c
        retried: dict[tuple[str, str], int] = {}
        opened: dict[str, Any] = {}
        succeeded: dict[str, Any] = {}
        with rt.engine.connect() as conn:
            grouped = select(a.channel, a.provider, a.outcome, func.count(), func.sum(a.retrying)).group_by(
                a.channel, a.provider, a.outcome
            )
            for channel, provider, outcome, count, retrying in conn.execute(grouped):
                calls.add_metric([channel, provider, outcome], int(count))
                retried[(channel, provider)] = retried.get((channel, provider), 0) + int(retrying or 0)
            last_open = select(a.provider, func.max(a.finished_at)).where(
                a.outcome.in_(CIRCUIT_OPENING_OUTCOMES)
            )
            opened = {p: at for p, at in conn.execute(last_open.group_by(a.provider))}
            last_ok = select(a.provider, func.max(a.finished_at)).where(a.sent > 0)
            succeeded = {p: at for p, at in conn.execute(last_ok.group_by(a.provider))}
        for (channel, provider), count in sorted(retried.items()):
            retries.add_metric([channel, provider], count)
        reset_after = timedelta(seconds=rt.settings.circuit_breaker.reset_after)
        providers = {p for kind in rt.settings.enabled_channels() for p in rt.providers_for(kind)}
        for provider in sorted(providers | set(opened)):
            at = _aware(opened.get(provider))
            ok = _aware(succeeded.get(provider))
            is_open = at is not None and (ok is None or ok < at) and now - at < reset_after
            circuit.add_metric([provider], 1 if is_open else 0)
        yield calls
        yield retries
        yield circuit

    def _comms(self, rt: Runtime) -> Iterator[Metric]:
        now = rt.clock.now()
        # When customers were first told is recorded as the first update to them is released (public
        # or a segment; an update written and waiting for approval told nobody yet).
        first_public = select(incidents.c.opened_at, incidents.c.first_word_at).where(
            incidents.c.kind.in_(INCIDENT_KINDS), incidents.c.first_word_at.is_not(None)
        )
        open_incidents = (
            select(incidents.c.status, incidents.c.severity, func.count())
            .where(incidents.c.status != IncidentStatus.RESOLVED.value, incidents.c.kind.in_(INCIDENT_KINDS))
            .group_by(incidents.c.status, incidents.c.severity)
        )
        overdue_query = select(func.count()).where(
            and_(
                incidents.c.status != IncidentStatus.RESOLVED.value,
                incidents.c.next_update_at.is_not(None),
                incidents.c.next_update_at < now,
            )
        )
        reports_late = select(func.count()).where(
            incidents.c.status == IncidentStatus.RESOLVED.value,
            incidents.c.report_due_at < now,
            incidents.c.id.not_in(select(incident_reports.c.incident_id)),
        )
        promise_query = (
            select(updates.c.promise_state, func.count())
            .where(updates.c.promise_state.is_not(None))
            .group_by(updates.c.promise_state)
        )
        with rt.engine.connect() as conn:
            waits = [_seconds_between(opened, first) for opened, first in conn.execute(first_public)]
            by_status = conn.execute(open_incidents).all()
            overdue_count = int(conn.execute(overdue_query).scalar_one())
            reports_overdue = int(conn.execute(reports_late).scalar_one())
            promises = {str(state): int(count) for state, count in conn.execute(promise_query)}
        yield _histogram(
            "tocsin_time_to_first_public_update_seconds",
            "Per incident, seconds from opening to the release of its first update to customers.",
            waits,
            FIRST_UPDATE_BUCKETS,
        )
        promise_family = GaugeMetricFamily(
            "tocsin_promises",
            "Updates by the state of the next-update promise they made (open, kept, broken).",
            labels=["state"],
        )
        for state in sorted(set(PROMISE_STATES) | set(promises)):
            promise_family.add_metric([state], promises.get(state, 0))
        yield promise_family
        overdue = GaugeMetricFamily(
            "tocsin_incidents_overdue",
            "Unresolved incidents whose promised next update (next_update_at) has passed.",
        )
        overdue.add_metric([], overdue_count)
        yield overdue
        late_reports = GaugeMetricFamily(
            "tocsin_reports_overdue",
            "Resolved incidents whose post-incident report deadline has passed with no report published.",
        )
        late_reports.add_metric([], reports_overdue)
        yield late_reports
        open_family = GaugeMetricFamily(
            "tocsin_incidents_open",
            "Unresolved incidents by status and severity.",
            labels=["status", "severity"],
        )
        for status, severity, count in by_status:
            open_family.add_metric([status, severity], int(count))
        yield open_family

    def _broker(self) -> Iterator[Metric]:
        if self._queue_lengths is None:
            return
        try:
            lengths = self._queue_lengths()
        except (RedisError, OSError) as exc:  # the broker is down: the rest of the scrape still answers
            log.warning("metrics: the broker's queues could not be read: %s", exc)
            return
        except Exception:  # a bug in the hook: logged with its traceback, the rest of the scrape answers
            log.exception("metrics: reading the broker's queue lengths failed (a bug, not an outage)")
            return
        family = GaugeMetricFamily(
            "tocsin_broker_queue_length", "Tasks waiting in each queue of the broker.", labels=["queue"]
        )
        for queue, length in sorted(lengths.items()):
            family.add_metric([queue], length)
        yield family


def _aware(moment: Any) -> datetime | None:
    """Timestamps read through an aggregate (max, min) skip the column type (SQLite gives text, both
    give naive UTC): make them aware UTC datetimes."""
    if moment is None:
        return None
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    if not isinstance(moment, datetime):
        raise TypeError(f"not a timestamp: {moment!r}")
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _seconds_between(start: Any, end: Any) -> float:
    begun, finished = _aware(start), _aware(end)
    if begun is None or finished is None:
        return 0.0
    return max(0.0, (finished - begun).total_seconds())


def ledger_registry(
    runtime: Callable[[], Runtime], queue_lengths: Callable[[], Mapping[str, int]] | None = None
) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(LedgerCollector(runtime, queue_lengths))
    return registry


def render(ledger: CollectorRegistry, process: CollectorRegistry = REGISTRY) -> bytes:
    """The exposition text: this process's own metrics, then the ledger's."""
    return generate_latest(process) + generate_latest(ledger)
