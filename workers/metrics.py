"""The Celery worker's own Prometheus ``/metrics``: what happens inside the worker processes (provider
call durations, ``tocsin_provider_send_seconds``), on the ``metrics_port`` setting.

A prefork worker delivers in several child processes, each with its own memory. So the server runs in
the main worker process in prometheus-client's multiprocess mode: every child writes its samples to
files in ``PROMETHEUS_MULTIPROC_DIR`` (a fresh temporary folder unless you set one), and the server adds
them up at each scrape. Ledger-derived metrics (deliveries, queue depth, SLOs) are served by
``tocsin api``'s ``/metrics`` only, so they are never counted twice.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIServer

from celery.signals import worker_init, worker_shutdown
from prometheus_client import REGISTRY, CollectorRegistry, start_http_server, values
from prometheus_client.multiprocess import MultiProcessCollector

log = logging.getLogger(__name__)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def use_multiprocess(directory: Path | None = None) -> tuple[Path, bool]:
    """Switch this process (and the children it forks later) to multiprocess metric values; return the
    folder the samples go to and whether it was made here (a temporary one, removed at shutdown).

    Must run before the children exist; labelled metrics create their values on first use, in the
    child, so the switch reaches them."""
    given = directory or (Path(os.environ[MULTIPROC_ENV]) if os.environ.get(MULTIPROC_ENV) else None)
    chosen = given or Path(tempfile.mkdtemp(prefix="tocsin-metrics-"))
    chosen.mkdir(parents=True, exist_ok=True)
    os.environ[MULTIPROC_ENV] = str(chosen)
    values.ValueClass = values.MultiProcessValue()  # type: ignore[no-untyped-call]
    return chosen, given is None


def serve_metrics(
    port: int, addr: str = "0.0.0.0", multiprocess_dir: Path | None = None
) -> tuple[WSGIServer, threading.Thread]:
    """Serve ``/metrics`` on ``port`` in a daemon thread: the multiprocess total when a folder is given,
    else this process's own registry."""
    registry: CollectorRegistry = REGISTRY
    if multiprocess_dir is not None:
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=str(multiprocess_dir))  # type: ignore[no-untyped-call]
    return start_http_server(port, addr, registry=registry)


class WorkerMetrics:
    """Connects to the worker's start and stop signals; does nothing when no port is configured."""

    def __init__(self, port: int | None) -> None:
        self.port = port
        self.server: WSGIServer | None = None
        self._made: Path | None = None

    def install(self) -> None:
        if self.port is None:
            return
        # weak=False: the signal must keep these bound methods alive.
        worker_init.connect(self._start, weak=False)
        worker_shutdown.connect(self._stop, weak=False)

    def _start(self, **_: Any) -> None:
        if self.port is None or self.server is not None:
            return
        folder, made = use_multiprocess()
        self._made = folder if made else None
        try:
            self.server, _thread = serve_metrics(self.port, multiprocess_dir=folder)
        except OSError as exc:  # a port in use must not stop the worker from delivering
            log.error("worker metrics: cannot listen on port %s: %s", self.port, exc)
            return
        log.info("worker metrics on :%s/metrics", self.port)

    def _stop(self, **_: Any) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None
        if self._made is not None:
            shutil.rmtree(self._made, ignore_errors=True)
            self._made = None
