"""``/metrics`` after real delivery runs: ledger-derived series (deliveries, queue depth, calls,
retries, circuit state, comms SLOs) read from the database at scrape time, the send-latency histogram
observed around real provider calls, Redis queue lengths, and the worker's own metrics server."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from channels.base import ChannelKind
from dispatcher.comms.publish import publish
from dispatcher.config.settings import ChannelSettings, CircuitSettings, RetrySettings
from dispatcher.domain.models import Audience
from dispatcher.engine.runtime import Runtime, build_runtime
from dispatcher.web.app import create_app
from tests.conftest import SettingsFactory
from tests.emulators import SendGridEmulator, WebhookReceiver
from tests.emulators.smtp import SmtpSink
from tests.helpers import RecordingQueue, draft, incident, publish_and_deliver, subscribe
from workers.metrics import serve_metrics

T0 = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)


class ManualClock:
    def __init__(self, start: datetime) -> None:
        self.at = start

    def now(self) -> datetime:
        return self.at


def scrape(rt: Runtime) -> str:
    with TestClient(create_app(lambda: rt)) as http:
        response = http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return response.text


def value(text: str, name: str, **labels: str) -> float | None:
    """The sample ``name`` whose labels include ``labels`` (None when there is none)."""
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return None


def total(text: str, name: str, **labels: str) -> float:
    found = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                found += sample.value
    return found


def send_count(channel: str, provider: str, outcome: str) -> float:
    labels = {"channel": channel, "provider": provider, "outcome": outcome}
    return REGISTRY.get_sample_value("tocsin_provider_send_seconds_count", labels) or 0.0


def test_after_a_delivery_run_the_ledger_series_have_the_right_values(
    make_runtime: Callable[..., Runtime],
) -> None:
    with (
        SendGridEmulator(api_key="SG.k") as sendgrid,
        SmtpSink() as smtp,
        WebhookReceiver(verify=False, responses={"/hooks/2": 500}) as receiver,
    ):
        rt = make_runtime(
            channels={
                ChannelKind.EMAIL: ChannelSettings(providers=["sendgrid", "smtp"]),
                ChannelKind.WEBHOOK: ChannelSettings(providers=["webhook"]),
            },
            providers={
                "sendgrid": {"api_key": "SG.k", "base_url": sendgrid.base_url, "from_email": "s@example.com"},
                "smtp": {
                    "host": smtp.host,
                    "port": smtp.port,
                    "starttls": False,
                    "from_email": "s@example.com",
                },
                "webhook": {"timeout": 5, "allow_destinations": ["127.0.0.0/8"]},
            },
            # The webhook retry is not due during this run: its row stays owed.
            retry=RetrySettings(schedule=[120.0, 300.0], jitter=0),
            circuit_breaker=CircuitSettings(failures=1, reset_after=300),
        )
        sendgrid.set_faults(down=True)  # SendGrid answers 503: the circuit opens, SMTP carries the email
        subscribe(rt, 3, webhook=f"{receiver.base_url}/hooks")
        before = {
            "sendgrid": send_count("email", "sendgrid", "transient"),
            "smtp": send_count("email", "smtp", "returned"),
        }

        publish_and_deliver(rt, draft(incident(rt), channels=[ChannelKind.EMAIL, ChannelKind.WEBHOOK]))
        text = scrape(rt)

    assert value(text, "tocsin_ledger_up") == 1
    assert value(text, "tocsin_deliveries", channel="email", provider="smtp", state="sent") == 3
    assert value(text, "tocsin_deliveries", channel="webhook", provider="webhook", state="sent") == 2
    assert total(text, "tocsin_deliveries", channel="webhook", state="queued") == 1
    assert value(text, "tocsin_queue_depth", channel="webhook") == 1
    assert value(text, "tocsin_queue_depth", channel="email") == 0
    assert value(text, "tocsin_delivery_retries_total", channel="webhook", provider="webhook") == 1
    assert (
        value(text, "tocsin_provider_calls_total", channel="email", provider="sendgrid", outcome="failover")
        == 1
    )
    assert value(text, "tocsin_provider_calls_total", channel="email", provider="smtp", outcome="sent") == 1
    assert value(text, "tocsin_circuit_open", provider="sendgrid") == 1
    assert value(text, "tocsin_circuit_open", provider="smtp") == 0
    # The latency histogram is observed around the provider calls of this process.
    assert send_count("email", "sendgrid", "transient") == before["sendgrid"] + 1
    assert send_count("email", "smtp", "returned") == before["smtp"] + 1
    assert value(
        text, "tocsin_provider_send_seconds_count", channel="email", provider="smtp", outcome="returned"
    )


def test_the_comms_slos_come_from_the_database(make_settings: SettingsFactory) -> None:
    clock = ManualClock(T0)
    rt = build_runtime(make_settings(), clock=clock)
    queue = RecordingQueue()
    subscribe(rt, 1)
    first = incident(rt)  # opened at T0

    def public(inc_id: int, promise_minutes: int) -> None:
        nxt = clock.at + timedelta(minutes=promise_minutes)
        publish(rt, draft(first.model_copy(update={"id": inc_id}), next_update_at=nxt), queue)

    clock.at = T0 + timedelta(minutes=5)
    public(first.id, 30)  # first public update 5 minutes in, promises T0+35m
    clock.at = T0 + timedelta(minutes=20)
    public(first.id, 30)  # on time: the first promise is kept; this one promises T0+50m
    second = incident(rt)  # opened at T0+20m
    clock.at = T0 + timedelta(minutes=25)
    internal = draft(second, "Looking at the database.", audience=Audience.INTERNAL, next_update_at=None)
    publish(rt, internal, queue)  # internal: not the first public update
    clock.at = T0 + timedelta(minutes=40)
    public(second.id, 30)  # 20 minutes after opening; promises T0+70m
    clock.at = T0 + timedelta(minutes=60)

    text = scrape(rt)
    rt.close()

    name = "tocsin_time_to_first_public_update_seconds"
    assert value(text, f"{name}_count") == 2
    assert value(text, f"{name}_sum") == 5 * 60 + 20 * 60
    assert value(text, f"{name}_bucket", le="300.0") == 1
    assert value(text, f"{name}_bucket", le="900.0") == 1
    assert value(text, f"{name}_bucket", le="1800.0") == 2
    assert value(text, f"{name}_bucket", le="+Inf") == 2
    assert value(text, "tocsin_promises", state="kept") == 1
    assert value(text, "tocsin_promises", state="open") == 2
    assert value(text, "tocsin_promises", state="broken") == 0
    assert value(text, "tocsin_incidents_overdue") == 1, "the first incident's T0+50m promise has passed"
    assert value(text, "tocsin_incidents_open", status="investigating", severity="major") == 2


@pytest.mark.redis
def test_with_a_broker_the_redis_queue_lengths_are_shown(
    make_runtime: Callable[..., Runtime], redis_url: str
) -> None:
    import redis

    from workers.app import make_app

    url = redis_url.rsplit("/", 1)[0] + "/11"  # a database of its own
    client = redis.Redis.from_url(url)
    client.flushdb()
    try:
        rt = make_runtime(redis_url=url)
        celery = make_app(rt.settings)
        for batch in range(3):
            celery.send_task("tocsin.deliver", args=[1, "email", batch], queue="email")
        celery.send_task("tocsin.fanout", args=[1], queue="fanout")
        text = scrape(rt)
    finally:
        client.flushdb()
        client.close()
    assert value(text, "tocsin_broker_queue_length", queue="email") == 3
    assert value(text, "tocsin_broker_queue_length", queue="fanout") == 1
    assert value(text, "tocsin_broker_queue_length", queue="sms") == 0


def test_when_the_database_cannot_be_read_the_scrape_still_answers(make_settings: SettingsFactory) -> None:
    unreachable = make_settings(database_url="postgresql://nobody@127.0.0.1:1/none")
    text = scrape(build_runtime(unreachable, require_schema=False))
    assert value(text, "tocsin_ledger_up") == 0
    assert value(text, "tocsin_deliveries") is None


def test_the_worker_metrics_server_serves_this_process_registry() -> None:
    server, _thread = serve_metrics(0, addr="127.0.0.1")
    try:
        port = server.server_port
        from dispatcher.engine.instruments import SEND_SECONDS

        SEND_SECONDS.labels("sms", "worker-test", "returned").observe(0.2)
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    finally:
        server.shutdown()
        server.server_close()
    assert value(text, "tocsin_provider_send_seconds_count", provider="worker-test") == 1


WORKER_SCRIPT = textwrap.dedent(
    """
    import multiprocessing, sys, httpx
    from celery.signals import worker_init, worker_shutdown
    from workers.metrics import WorkerMetrics

    metrics = WorkerMetrics(0)
    metrics.install()
    worker_init.send(sender=None)  # what the Celery main process sends before it forks its pool

    def child(provider):
        from dispatcher.engine.instruments import SEND_SECONDS
        SEND_SECONDS.labels("email", provider, "returned").observe(0.05)

    ctx = multiprocessing.get_context("fork")
    for name in ("pool-a", "pool-b", "pool-b"):
        process = ctx.Process(target=child, args=(name,))
        process.start()
        process.join()
    port = metrics.server.server_port
    print(httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text)
    worker_shutdown.send(sender=None)
    """
)


def test_the_worker_adds_up_what_its_pool_processes_observed(tmp_path: Path) -> None:
    """prefork: each pool process writes its samples; the main process's server sums them."""
    done = subprocess.run(
        [sys.executable, "-c", WORKER_SCRIPT],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parent.parent,
        env={"PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prom"), "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr
    text = done.stdout
    assert value(text, "tocsin_provider_send_seconds_count", provider="pool-a") == 1
    assert value(text, "tocsin_provider_send_seconds_count", provider="pool-b") == 2


def test_the_grafana_dashboard_uses_only_series_tocsin_exposes(make_runtime: Callable[..., Runtime]) -> None:
    dashboard = json.loads(
        (Path(__file__).resolve().parent.parent / "docs/pages/grafana-dashboard.json").read_text()
    )
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    used = {re.sub(r"_(bucket|sum|count|total)$", "", n) for e in exprs for n in re.findall(r"tocsin_\w+", e)}
    exposed = {family.name for family in text_string_to_metric_families(scrape(make_runtime()))}
    exposed.add("tocsin_broker_queue_length")  # only with a broker (see the Redis test)
    assert used, "the dashboard queries Tocsin's series"
    assert used <= exposed, sorted(used - exposed)
