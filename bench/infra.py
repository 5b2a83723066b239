"""What the benchmarks start and load: Redis, PostgreSQL databases, Celery workers, bulk subscribers.

Everything started here is a child process of the benchmark and is stopped by its own pid.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
import sqlalchemy as sa
from sqlalchemy import func, insert, select

from channels.base import ChannelKind
from dispatcher.audience.subscribers import new_webhook_secret
from dispatcher.store.engine import get_engine, migrate
from dispatcher.store.schema import contact_points, deliveries, subscribers, updates

PROJECT_ROOT = Path(__file__).resolve().parents[1]
TOCSIN = str(Path(sys.executable).with_name("tocsin"))
LOAD_CHUNK = 10_000


# ---------------------------------------------------------------------------------------- databases


class PostgresServer:
    """A PostgreSQL server (given, or private) on which each scenario gets a fresh migrated database."""

    def __init__(self, server_url: str) -> None:
        self.server_url = server_url
        self.admin = sa.create_engine(self.url("postgres"), isolation_level="AUTOCOMMIT")

    def url(self, name: str) -> str:
        url = sa.make_url(self.server_url).set(drivername="postgresql+psycopg", database=name)
        return url.render_as_string(hide_password=False)

    def create(self, label: str) -> str:
        name = f"tocsin_bench_{label}_{uuid.uuid4().hex[:8]}"
        with self.admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        url = self.url(name)
        migrate(url)
        return url

    def drop(self, url: str) -> None:
        get_engine(url).dispose()
        name = sa.make_url(url).database
        with self.admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def version(self) -> str:
        with self.admin.connect() as conn:
            return str(conn.exec_driver_sql("SHOW server_version").scalar_one())


def sqlite_database(directory: Path, label: str) -> str:
    url = f"sqlite:///{directory / f'{label}.db'}"
    migrate(url)
    return url


def load_subscribers(url: str, count: int, channel: ChannelKind, address: Callable[[int], str], *,
                     components: list[str], webhook_secrets: bool = False) -> None:
    """Insert ``count`` subscribers with one contact point each, straight into the tables (not timed).

    Much faster than ``add_subscribers`` (no conflict look-ups, no RETURNING): ids are given explicitly.
    """
    load_contact_points(url, count, {channel: address}, components=components,
                        webhook_secrets=webhook_secrets)


def load_webhook_audience(url: str, base_url: str, count: int, warm: int) -> None:
    """``count`` webhook subscribers of component ``checkout`` at ``{base_url}/s/{i}`` and ``warm`` more of
    component ``warmup`` at ``{base_url}/warm/{i}`` (a warm-up update goes to those), each with a secret."""
    load_subscribers(url, count, ChannelKind.WEBHOOK, lambda i: f"{base_url}/s/{i}",
                     components=["checkout"], webhook_secrets=True)
    load_subscribers(url, warm, ChannelKind.WEBHOOK, lambda i: f"{base_url}/warm/{i}",
                     components=["warmup"], webhook_secrets=True)


def load_contact_points(url: str, count: int, addresses: Mapping[ChannelKind, Callable[[int], str]], *,
                        components: list[str], webhook_secrets: bool = False) -> None:
    """Insert ``count`` subscribers, each with one contact point per channel of ``addresses`` (subscriber
    ``i`` gets ``addresses[channel](i)``); webhook contact points get a secret when ``webhook_secrets``."""
    engine = get_engine(url)
    now = datetime.now(UTC)
    per = len(addresses)
    with engine.begin() as conn:
        sub_base = int(conn.execute(select(func.coalesce(func.max(subscribers.c.id), 0))).scalar_one())
        cp_base = int(conn.execute(select(func.coalesce(func.max(contact_points.c.id), 0))).scalar_one())
        for start in range(0, count, LOAD_CHUNK):
            stop = min(count, start + LOAD_CHUNK)
            conn.execute(insert(subscribers), [
                {"id": sub_base + i + 1, "external_id": None, "name": None, "locale": "en",
                 "components": components, "min_severity_rank": 0, "internal": False, "created_at": now}
                for i in range(start, stop)
            ])
            conn.execute(insert(contact_points), [
                {"id": cp_base + i * per + j + 1, "subscriber_id": sub_base + i + 1, "channel": channel.value,
                 "address": address(i),
                 "secret": new_webhook_secret() if webhook_secrets and channel is ChannelKind.WEBHOOK
                 else None,
                 "opted_out": False}
                for i in range(start, stop) for j, (channel, address) in enumerate(addresses.items())
            ])
        if conn.dialect.name == "postgresql":
            for table in ("subscribers", "contact_points"):
                conn.exec_driver_sql(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))"
                )
            conn.exec_driver_sql("ANALYZE")


@dataclass(frozen=True)
class LedgerTimes:
    published_at: datetime
    fanned_out_at: datetime | None
    last_sent_at: datetime | None
    states: dict[str, int]

    @property
    def fanout_seconds(self) -> float:
        """Publish → fan-out finished (every row written, every batch queued)."""
        if self.fanned_out_at is None:
            return float("nan")
        return (self.fanned_out_at - self.published_at).total_seconds()

    @property
    def seconds(self) -> float:
        """Publish → last row sent, from the ledger's own timestamps."""
        assert self.last_sent_at is not None
        return (self.last_sent_at - self.published_at).total_seconds()


def ledger_times(url: str, update_id: int) -> LedgerTimes:
    with get_engine(url).connect() as conn:
        upd = conn.execute(select(updates.c.published_at, updates.c.fanned_out_at)
                           .where(updates.c.id == update_id)).one()
        last = conn.execute(select(func.max(deliveries.c.sent_at))
                            .where(deliveries.c.update_id == update_id)).scalar_one()
        states = {s: int(n) for s, n in conn.execute(
            select(deliveries.c.state, func.count()).where(deliveries.c.update_id == update_id)
            .group_by(deliveries.c.state))}
    as_utc: Callable[[Any], datetime | None] = lambda v: None if v is None else (  # noqa: E731
        v if isinstance(v, datetime) and v.tzinfo else datetime.fromisoformat(str(v)).replace(tzinfo=UTC))
    published = as_utc(upd.published_at)
    assert published is not None
    return LedgerTimes(published, as_utc(upd.fanned_out_at), as_utc(last), states)


def count_sent(url: str, update_id: int) -> int:
    with get_engine(url).connect() as conn:
        return int(conn.execute(select(func.count()).where(
            deliveries.c.update_id == update_id, deliveries.c.state == "sent")).scalar_one())


# ---------------------------------------------------------------------------------------- config


def write_config(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def child_env(**extra: str | None) -> dict[str, str]:
    """The benchmark's environment for a child, with Tocsin's variables replaced by ``extra``."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("TOCSIN_") and k not in ("REDIS_URL", "DATABASE_URL")}
    env["PYTHONPATH"] = str(PROJECT_ROOT)
    env.update({k: v for k, v in extra.items() if v is not None})
    return env


# ---------------------------------------------------------------------------------------- worker


class CeleryWorker:
    """``tocsin worker -c N -Q … --no-beat`` (``--beat`` with ``beat``: the periodic re-drive, one per
    deployment) as a child process; ready when Celery logs ``ready.``."""

    def __init__(self, log: Path, env: dict[str, str], concurrency: int, queues: str,
                 beat: bool = False) -> None:
        self.log = log
        # The beat keeps its schedule file in the working folder: the benchmark's, not the project's.
        self.cwd = log.parent if beat else PROJECT_ROOT
        self.command = [TOCSIN, "worker", "-c", str(concurrency), "-Q", queues,
                        "--beat" if beat else "--no-beat", "--loglevel", "info"]
        self.env = env
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0) -> CeleryWorker:
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(self.command, cwd=self.cwd, env=self.env, stdout=out,
                                            stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"worker exited: {self.log.read_text()[-2000:]}")
            if b" ready." in self.log.read_bytes():
                return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"worker not ready after {timeout}s: {self.log.read_text()[-2000:]}")

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def stop(self) -> None:
        proc, self.process = self.process, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)  # its own session: only what it started
            proc.wait()

    def __enter__(self) -> CeleryWorker:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


# ---------------------------------------------------------------------------------------- cpu


def tree_cpu(pid: int) -> float:
    """User + system CPU seconds of a process and its live children."""
    total = 0.0
    with contextlib.suppress(psutil.Error):
        root = psutil.Process(pid)
        for proc in [root, *root.children(recursive=True)]:
            with contextlib.suppress(psutil.Error):
                times = proc.cpu_times()
                total += times.user + times.system
    return total


def server_pid(name: str, port: int) -> int | None:
    """The pid of a server we started (``redis-server``/``postgres``) listening on ``port``."""
    for proc in psutil.process_iter(["name", "cmdline"]):
        with contextlib.suppress(psutil.Error):
            cmdline = " ".join(proc.info["cmdline"] or [])
            if name in (proc.info["name"] or "") and (f":{port}" in cmdline or f"-p {port}" in cmdline
                                                      or f"--port {port}" in cmdline):
                return int(proc.pid)
    return None


class CpuSplit:
    """Where the machine's CPU went during a block: named process trees, and everything else."""

    def __init__(self, **pids: int | None) -> None:
        self.pids = {name: pid for name, pid in pids.items() if pid is not None}
        self.used: dict[str, float] = {}
        self.wall = 0.0

    def __enter__(self) -> CpuSplit:
        self._start = {name: tree_cpu(pid) for name, pid in self.pids.items()}
        self._machine = psutil.cpu_times()
        self._t0 = time.monotonic()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.wall = time.monotonic() - self._t0
        machine = psutil.cpu_times()
        busy = sum(getattr(machine, f) - getattr(self._machine, f)
                   for f in ("user", "system", "nice", "irq", "softirq"))
        self.used = {name: tree_cpu(pid) - self._start[name] for name, pid in self.pids.items()}
        self.used["rest of machine (bench, other users)"] = max(0.0, busy - sum(self.used.values()))
        self.used["idle"] = max(0.0, (psutil.cpu_count() or 1) * self.wall - busy)

    def describe(self) -> str:
        return "cpu-s " + ", ".join(f"{k} {v:.1f}" for k, v in self.used.items()) + f" over {self.wall:.1f} s"


# ---------------------------------------------------------------------------------------- memory


class RssSampler:
    """Samples the resident set of a process and its children every ``interval`` seconds."""

    def __init__(self, pid: int, interval: float = 0.1) -> None:
        self.root = psutil.Process(pid)
        self.interval = interval
        self.peak = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> int:
        total = 0
        with contextlib.suppress(psutil.Error):
            procs = [self.root, *self.root.children(recursive=True)]
            for proc in procs:
                with contextlib.suppress(psutil.Error):
                    total += proc.memory_info().rss
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._sample())
            self.samples += 1
            self._stop.wait(self.interval)

    @contextlib.contextmanager
    def running(self) -> Iterator[RssSampler]:
        self._thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            self._thread.join()
