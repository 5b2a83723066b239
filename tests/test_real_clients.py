"""Real clients of Tocsin's HTTP interfaces: Debian's Prometheus Alertmanager posts its own webhook to
``/ingest/alertmanager`` over HTTP, and ``promtool check metrics`` reads what ``/metrics`` exposes.

Both binaries come from Debian (``apt-get install prometheus-alertmanager prometheus``; ``.ci/run``
installs them). Without them these tests are skipped on a laptop and FAIL in CI.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select

from channels.base import ChannelKind
from dispatcher.audience.subscribers import add_subscribers
from dispatcher.domain.models import ContactPoint, IncidentStatus, Subscriber
from dispatcher.engine.runtime import Runtime
from dispatcher.runners.embedded import EmbeddedRunner
from dispatcher.store.schema import incidents, updates
from dispatcher.web.app import create_app
from tests.helpers import draft, incident, publish_and_deliver, subscribe
from tests.services import free_port, unavailable

TOKEN = "alertmanager-ingest-token-3c9d"


def binary(name: str, package: str) -> str:
    found = shutil.which(name)
    if found is None:
        unavailable(f"{name} (apt-get install {package})")
    assert found is not None
    return found


@contextlib.contextmanager
def serving(app: FastAPI) -> Iterator[str]:
    """``app`` on a real HTTP server on 127.0.0.1; yields its base URL."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, name="tocsin-api", daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the API server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


ALERTMANAGER_CONFIG = """
route:
  receiver: tocsin
  group_by: [alertname]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: tocsin
    webhook_configs:
      - url: {url}/ingest/alertmanager
        send_resolved: true
        http_config:
          authorization:
            type: Bearer
            credentials: {token}
"""


@contextlib.contextmanager
def alertmanager(tocsin_url: str, folder: Path) -> Iterator[str]:
    """Debian's Alertmanager, routing every alert to Tocsin; yields its API base URL."""
    program = binary("prometheus-alertmanager", "prometheus-alertmanager")
    config = folder / "alertmanager.yml"
    config.write_text(ALERTMANAGER_CONFIG.format(url=tocsin_url, token=TOKEN))
    port = free_port()
    log = (folder / "alertmanager.log").open("wb")
    proc = subprocess.Popen(
        [
            program,
            f"--config.file={config}",
            f"--storage.path={folder / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _ready(base), what="Alertmanager to start", log=folder / "alertmanager.log")
        yield base
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


def _ready(base: str) -> bool:
    try:
        return httpx.get(f"{base}/-/ready", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def wait_until(check: Callable[[], Any], what: str, timeout: float = 30, log: Path | None = None) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.2)
    detail = f"\n{log.read_text()[-2000:]}" if log is not None and log.exists() else ""
    raise AssertionError(f"timed out waiting for {what}{detail}")


def alert(ends_at: datetime | None = None) -> list[dict[str, Any]]:
    """One alert as Prometheus posts it to Alertmanager's API (``POST /api/v2/alerts``)."""
    started = datetime.now(UTC) - timedelta(minutes=2)
    body: dict[str, Any] = {
        "labels": {"alertname": "CheckoutErrors", "severity": "critical", "component": "checkout"},
        "annotations": {"summary": "Checkout error rate above 5%"},
        "startsAt": started.isoformat(),
        "generatorURL": "http://prometheus.example.com:9090/graph",
    }
    if ends_at is not None:
        body["endsAt"] = ends_at.isoformat()
    return [body]


def test_a_real_alertmanager_opens_the_incident_and_its_resolution_moves_it_to_monitoring(
    make_runtime: Callable[..., Runtime], tmp_path: Path
) -> None:
    rt = make_runtime(ingest_token=TOKEN)
    add_subscribers(
        rt,
        [
            Subscriber(
                name="On-call",
                internal=True,
                contact_points=[ContactPoint(channel=ChannelKind.EMAIL, address="oncall@example.com")],
            )
        ],
    )
    app = create_app(lambda: rt)
    runner = EmbeddedRunner(rt)
    app.state.task_queue = lambda: runner.queue

    def opened() -> dict[str, Any] | None:
        with rt.engine.connect() as conn:
            row = (
                conn.execute(select(incidents).where(incidents.c.source == "alertmanager")).mappings().first()
            )
        return None if row is None else dict(row)

    with serving(app) as tocsin, alertmanager(tocsin, tmp_path) as am:
        httpx.post(f"{am}/api/v2/alerts", json=alert(), timeout=5).raise_for_status()
        found = wait_until(opened, what="Alertmanager's firing notification to open an incident")
        assert found["title"] == "Checkout error rate above 5%"
        assert found["components"] == ["checkout"]
        assert found["status"] == IncidentStatus.INVESTIGATING.value

        httpx.post(f"{am}/api/v2/alerts", json=alert(ends_at=datetime.now(UTC)), timeout=5).raise_for_status()
        moved = wait_until(
            lambda: (row := opened()) is not None and row["status"] == IncidentStatus.MONITORING.value,
            what="Alertmanager's resolved notification to move the incident to monitoring",
        )
        assert moved
    runner.run_until_idle()
    with rt.engine.connect() as conn:
        notices = (
            conn.execute(select(updates.c.audience).where(updates.c.incident_id == found["id"]))
            .scalars()
            .all()
        )
    assert notices and set(notices) == {"internal"}, "the on-call was told; the public was not"


def test_promtool_finds_no_problem_in_what_metrics_exposes(
    make_runtime: Callable[..., Runtime], tmp_path: Path
) -> None:
    promtool = binary("promtool", "prometheus")
    rt = make_runtime()
    subscribe(rt, 3, sms=True)
    publish_and_deliver(rt, draft(incident(rt)))  # deliveries, attempts and a promise in the ledger
    with TestClient(create_app(lambda: rt)) as http:
        exposed = http.get("/metrics").text
    assert "tocsin_deliveries" in exposed and "tocsin_provider_send_seconds" in exposed

    checked = subprocess.run(
        [promtool, "check", "metrics"], input=exposed, capture_output=True, text=True, timeout=30
    )

    assert checked.returncode == 0, checked.stdout + checked.stderr
