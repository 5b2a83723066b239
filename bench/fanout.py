"""Fan-out benchmarks: throughput, latency and memory of one update going out to many people.

    .venv/bin/python -m bench.fanout            # every scenario at the promised sizes
    .venv/bin/python -m bench.fanout --quick    # small sizes, a smoke run
    .venv/bin/python -m bench.fanout --only webhooks --webhook-configs 250x64,500x128

Starts what it needs itself (Redis, PostgreSQL unless ``TOCSIN_BENCH_DATABASE_URL`` names a server,
emulators and Celery workers as child processes), prints one line per figure with the promised target
beside it, and never asserts on time. See bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import os
import platform
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import sqlalchemy as sa

from bench.infra import (
    TOCSIN,
    CeleryWorker,
    CpuSplit,
    PostgresServer,
    RssSampler,
    child_env,
    count_sent,
    ledger_times,
    load_subscribers,
    load_webhook_audience,
    server_pid,
    sqlite_database,
    write_config,
)
from channels.base import ChannelKind
from dispatcher.comms.incidents import open_incident
from dispatcher.comms.publish import publish
from dispatcher.config.settings import Settings
from dispatcher.domain.models import IncidentDraft, IncidentStatus, Severity, UpdateDraft
from dispatcher.engine.runtime import Runtime, build_runtime
from dispatcher.engine.task_queue import BatchRef
from dispatcher.runners.embedded import EmbeddedRunner
from tests.emulators.client import EmulatorProcess
from tests.emulators.webhook import WebhookReceiver
from tests.services import private_postgres, private_redis

SCENARIOS = ("webhooks", "sendgrid", "latency", "rss")
WEBHOOK_QUEUES = "fanout,webhook,maintenance"


def _print(line: str) -> None:
    print(line, flush=True)


def figure(name: str, value: str, target: str, meets: bool | None, note: str = "") -> None:
    verdict = "" if meets is None else ("MEETS" if meets else "MISSES")
    _print(f"FIGURE {name:<34} {value:>22}   target {target:<12} {verdict:<6} {note}".rstrip())


def info(text: str) -> None:
    _print(f"  .. {text}")


# ---------------------------------------------------------------------------------------- context


@dataclass
class Bench:
    args: argparse.Namespace
    work: Path
    stack: contextlib.ExitStack
    redis_url: str | None = None
    pg: PostgresServer | None = None
    facts: dict[str, str] = field(default_factory=dict)

    def redis(self) -> str:
        if self.redis_url is None:
            given = os.environ.get("TOCSIN_BENCH_REDIS_URL")
            url = given or self.stack.enter_context(private_redis())
            if url is None:
                raise SystemExit("redis-server is not installed and TOCSIN_BENCH_REDIS_URL is not set")
            self.redis_url = url
            self.facts["Redis"] = f"{'given' if given else 'private'} {url}"
        return self.redis_url

    def postgres(self) -> PostgresServer:
        if self.pg is None:
            given = os.environ.get("TOCSIN_BENCH_DATABASE_URL")
            url = given or self.stack.enter_context(private_postgres())
            if url is None:
                raise SystemExit("PostgreSQL is not installed and TOCSIN_BENCH_DATABASE_URL is not set")
            self.pg = PostgresServer(url)
            self.stack.callback(self.pg.admin.dispose)
            self.facts["PostgreSQL"] = f"{self.pg.version()} ({'given' if given else 'private, fsync=off'})"
        return self.pg

    def server_pid(self, kind: str) -> int | None:
        """Our own PostgreSQL / Redis server process (for CPU accounting); None when given from outside."""
        url = self.redis_url if kind == "redis" else (self.pg.server_url if self.pg else None)
        if url is None or self.facts.get("Redis" if kind == "redis" else "PostgreSQL", "").find("given") >= 0:
            return None
        port = sa.make_url(url).port
        return None if port is None else server_pid("redis-server" if kind == "redis" else "postgres", port)

    def database(self, label: str) -> str:
        """A fresh migrated database: PostgreSQL unless ``--no-postgres``."""
        if self.args.no_postgres:
            return sqlite_database(self.work, label)
        pg = self.postgres()
        url = pg.create(label)
        self.stack.callback(pg.drop, url)
        return url


def settings_for(url: str, config: Path) -> Settings:
    os.environ["TOCSIN_CONFIG"] = str(config)
    return Settings(database_url=url, redis_url=None)


class CeleryTaskQueue:
    """Same messages as ``workers.queue.CeleryQueue``, on a Celery app bound to the benchmark's Redis."""

    def __init__(self, redis_url: str) -> None:
        from workers.app import make_app

        self.app = make_app(Settings(redis_url=redis_url))

    def submit_fanout(self, update_id: int) -> None:
        self.app.send_task("tocsin.fanout", args=[update_id], queue="fanout")

    def submit_batch(self, ref: BatchRef, delay: float = 0.0) -> None:
        self.app.send_task(
            "tocsin.deliver",
            args=[ref.update_id, ref.channel.value, ref.batch],
            queue=ref.channel.value,
            countdown=delay or None,
        )


def new_incident(rt: Runtime, components: list[str]) -> int:
    return open_incident(
        rt, IncidentDraft(title="Checkout failing", severity=Severity.MAJOR, components=components)
    ).id


def update_draft(incident_id: int, channel: ChannelKind, n: int = 0) -> UpdateDraft:
    return UpdateDraft(
        incident_id=incident_id,
        status=IncidentStatus.INVESTIGATING,
        message=f"We are investigating failed checkouts (update {n}). Sorry.",
        channels=[channel],
        override_reason="benchmark: synthetic update, no promise",
    )


def wait_sent(url: str, update_id: int, expected: int, timeout: float, poll: float = 0.25) -> int:
    deadline = time.monotonic() + timeout
    sent = 0
    while time.monotonic() < deadline:
        sent = count_sent(url, update_id)
        if sent >= expected:
            return sent
        time.sleep(poll)
    return sent


# ---------------------------------------------------------------------------------------- profiling


@contextlib.contextmanager
def profiled(b: Bench, pid: int, label: str) -> Iterator[None]:
    """With ``--profile DIR``: py-spy the process tree ``pid`` while the block runs (collapsed stacks)."""
    if not b.args.profile:
        yield
        return
    spy = os.environ.get("PY_SPY") or shutil.which("py-spy")
    if spy is None:
        info("--profile: py-spy not found (set PY_SPY=/path/to/py-spy)")
        yield
        return
    out = Path(b.args.profile) / f"{label}.txt"
    out.parent.mkdir(parents=True, exist_ok=True)
    spy_proc = subprocess.Popen(
        [
            spy,
            "record",
            "--pid",
            str(pid),
            "--subprocesses",
            "--rate",
            "200",
            "--format",
            "raw",
            "--output",
            str(out),
            "--nonblocking",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(1.0)  # let it attach
    try:
        yield
    finally:
        spy_proc.send_signal(signal.SIGINT)
        try:
            spy_proc.wait(30)
        except subprocess.TimeoutExpired:
            spy_proc.kill()
            spy_proc.wait()
        info(f"profile written to {out}")


# ---------------------------------------------------------------------------------------- 1. webhooks


def webhook_toml(batch: int, concurrency: int) -> str:
    return (
        f'[channels.webhook]\nproviders = ["webhook"]\nbatch_size = {batch}\n\n'
        f"[providers.webhook]\nconcurrency = {concurrency}\n"
        'allow_destinations = ["127.0.0.0/8"]\n'
    )


def scenario_webhooks(b: Bench) -> None:
    n = b.args.webhook_subscribers
    configs = [tuple(int(x) for x in c.split("x")) for c in b.args.webhook_configs.split(",")]
    redis_url = b.redis()
    url = b.database("webhooks")
    # The lean receiver by default: on two cores, aiohttp's web framework receiving would use more CPU
    # than the worker sending (tests/emulators/fast_webhook.py); --webhook-receiver emulator for it.
    if b.args.webhook_receiver == "fast":
        receiver = b.stack.enter_context(EmulatorProcess("webhook-fast"))
    else:
        receiver = b.stack.enter_context(EmulatorProcess("webhook", "--no-verify", "--no-record"))
    info(f"receiver: {b.args.webhook_receiver}")
    warm = 200
    t0 = time.monotonic()
    load_webhook_audience(url, receiver.base_url, n, warm)
    info(
        f"loaded {n} webhook subscribers (+{warm} warm-up) in {time.monotonic() - t0:.1f} s, "
        f"store {url.split(':')[0]}"
    )
    queue = CeleryTaskQueue(redis_url)
    best: tuple[float, str] | None = None
    for batch, concurrency in configs:
        config = write_config(
            b.work / f"webhooks-{batch}x{concurrency}.toml", webhook_toml(batch, concurrency)
        )
        rt = build_runtime(settings_for(url, config))
        env = child_env(REDIS_URL=redis_url, DATABASE_URL=url, TOCSIN_CONFIG=str(config))
        log = b.work / f"worker-webhooks-{batch}x{concurrency}.log"
        with CeleryWorker(log, env, 2, WEBHOOK_QUEUES) as worker:
            # Warm both worker processes (imports, engine, renderer, adapter) on a separate audience.
            warm_update = publish(rt, update_draft(new_incident(rt, ["warmup"]), ChannelKind.WEBHOOK), queue)
            wait_sent(url, warm_update.update.id, warm, 60)
            receiver.client.reset()
            incident = new_incident(rt, ["checkout"])
            assert receiver.process is not None
            split = CpuSplit(
                worker=worker.pid,
                receiver=receiver.process.pid,
                postgres=b.server_pid("postgres"),
                redis=b.server_pid("redis"),
            )
            with profiled(b, worker.pid, f"webhooks-{batch}x{concurrency}"), split:
                started = time.monotonic()
                published = publish(rt, update_draft(incident, ChannelKind.WEBHOOK, 1), queue)
                sent = wait_sent(url, published.update.id, n, timeout=max(120.0, n / 100))
                wall = time.monotonic() - started
            stats = receiver.client.stats()
        times = ledger_times(url, published.update.id)
        rate = sent / times.seconds if times.last_sent_at else 0.0
        label = f"batch={batch} conc={concurrency}"
        fan = times.fanout_seconds
        ok = stats["accepted"] == n and stats["duplicates"] == 0 and sent == n
        figure(
            f"webhooks {n} {label}",
            f"{rate:,.0f} deliveries/s",
            ">= 5,000/s",
            rate >= 5000,
            f"[{times.seconds:.2f} s publish->last sent; fan-out done at {fan:.2f} s; wall {wall:.2f} s; "
            f"receiver accepted={stats['accepted']} unique={stats['unique_ids']} "
            f"dup={stats['duplicates']}; "
            f"ledger {times.states}{'' if ok else '; INCOMPLETE'}]",
        )
        info(split.describe())
        ours = sum(v for k, v in split.used.items() if k in ("worker", "receiver", "postgres", "redis"))
        if ok and ours > 0:
            per = split.used["worker"] / n * 1000
            figure(
                f"webhooks cpu/delivery {label}",
                f"{ours / n * 1000:.2f} ms (worker {per:.2f})",
                "<= 0.40 ms",
                ours / n * 1000 <= (psutil.cpu_count() or 2) / 5000 * 1000,
                f"[worker+receiver+postgres+redis; on {psutil.cpu_count()} dedicated cores that caps "
                f"at ~{(psutil.cpu_count() or 2) / ours * n:,.0f}/s; the worker alone at "
                f"~{(psutil.cpu_count() or 2) / split.used['worker'] * n:,.0f}/s]",
            )
        if ok and (best is None or rate > best[0]):
            best = (rate, label)
        rt.close()
    if best is not None:
        info(f"best webhook setting: {best[1]} ({best[0]:,.0f}/s)")
        b.facts["best webhook setting"] = best[1]


# ---------------------------------------------------------------------------------------- 2. sendgrid


SENDGRID_TOML = (
    '[channels.email]\nproviders = ["sendgrid"]\n\n[providers.sendgrid]\napi_key = "SG.test-key"\n'
    'base_url = "{base_url}"\nfrom_email = "status@example.com"\n'
)


@dataclass
class SendgridRun:
    store: str
    recipients: int
    seconds: float
    complete: bool
    note: str


def sendgrid_once(b: Bench, emulator: EmulatorProcess, config: Path, store: str, n: int) -> SendgridRun:
    """``n`` email subscribers on ``store`` (sqlite or postgresql), one update to all of them through the
    embedded runner: publish → every recipient accepted by the emulator and its ledger row written."""
    if store == "sqlite":
        url = sqlite_database(b.work, f"sendgrid-{time.monotonic_ns()}")
    else:
        url = b.database("sendgrid")
    t0 = time.monotonic()
    load_subscribers(url, n, ChannelKind.EMAIL, lambda i: f"person{i}@example.com", components=["checkout"])
    info(f"loaded {n} email subscribers on {store} in {time.monotonic() - t0:.1f} s")
    rt = build_runtime(settings_for(url, config))
    incident = new_incident(rt, ["checkout"])
    emulator.client.reset()
    runner = EmbeddedRunner(rt)
    profiler = cProfile.Profile() if b.args.profile else None
    started = time.monotonic()
    if profiler:
        profiler.enable()
    published = publish(rt, update_draft(incident, ChannelKind.EMAIL), runner.queue)
    runner.run_until_idle()
    elapsed = time.monotonic() - started
    if profiler:
        profiler.disable()
        out = Path(b.args.profile) / f"sendgrid-{store}.prof"
        out.parent.mkdir(parents=True, exist_ok=True)
        profiler.dump_stats(out)
        info(f"cProfile written to {out} (profiling slows the run: its time is not the figure to quote)")
    stats = emulator.client.stats()
    times = ledger_times(url, published.update.id)
    sent = times.states.get("sent", 0)
    complete = sent == n and stats["accepted"] == n
    note = (
        f"[fan-out {times.fanout_seconds:.2f} s; emulator accepted={stats['accepted']} in "
        f"{stats['accepted_requests']} requests; ledger {times.states}{'' if complete else '; INCOMPLETE'}]"
    )
    rt.close()
    return SendgridRun(store, n, elapsed, complete, note)


def sendgrid_stores(b: Bench) -> list[str]:
    return ["sqlite"] if b.args.no_postgres else ["sqlite", "postgresql"]


def scenario_sendgrid(b: Bench) -> None:
    n = b.args.sendgrid_recipients
    emulator = b.stack.enter_context(EmulatorProcess("sendgrid", "--no-record"))
    config = write_config(b.work / "sendgrid.toml", SENDGRID_TOML.format(base_url=emulator.base_url))
    for store in sendgrid_stores(b):
        run = sendgrid_once(b, emulator, config, store, n)
        figure(
            f"sendgrid {n} embedded {store}",
            f"{run.seconds:.2f} s ({n / run.seconds:,.0f}/s)",
            "<= 10 s",
            run.seconds <= 10 and run.complete,
            run.note,
        )


# ---------------------------------------------------------------------------------------- 3. latency


class TimedReceiver(WebhookReceiver):
    """The webhook receiver emulator, noting when the first delivery of each round arrives."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.first_at: float | None = None
        self.arrived = threading.Event()

    def accept(self, record: dict[str, Any]) -> None:
        if self.first_at is None:
            self.first_at = time.monotonic()
            self.arrived.set()
        super().accept(record)

    def arm(self) -> None:
        self.first_at = None
        self.arrived.clear()


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * p
    lo = int(k)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def scenario_latency(b: Bench) -> None:
    rounds, audience = b.args.latency_publishes, 10
    redis_url = b.redis()
    url = b.database("latency")
    receiver = TimedReceiver(verify=False, record=False).start()
    b.stack.callback(receiver.stop)
    load_subscribers(
        url,
        audience,
        ChannelKind.WEBHOOK,
        lambda i: f"{receiver.base_url}/l/{i}",
        components=["checkout"],
        webhook_secrets=True,
    )
    config = write_config(b.work / "latency.toml", webhook_toml(100, 64))
    rt = build_runtime(settings_for(url, config))
    queue = CeleryTaskQueue(redis_url)
    env = child_env(REDIS_URL=redis_url, DATABASE_URL=url, TOCSIN_CONFIG=str(config))
    firsts: list[float] = []
    alls: list[float] = []
    with CeleryWorker(b.work / "worker-latency.log", env, 2, WEBHOOK_QUEUES):
        incident = new_incident(rt, ["checkout"])
        for i in range(rounds + 2):  # the first two warm the two worker processes
            receiver.arm()
            before = receiver.stats["accepted"]
            started = time.monotonic()
            published = publish(rt, update_draft(incident, ChannelKind.WEBHOOK, i), queue)
            if not receiver.arrived.wait(30):
                info(f"publish {i}: nothing arrived within 30 s")
                continue
            assert receiver.first_at is not None
            first = receiver.first_at - started
            deadline = time.monotonic() + 30
            while receiver.stats["accepted"] < before + audience and time.monotonic() < deadline:
                time.sleep(0.001)
            done = time.monotonic() - started
            wait_sent(url, published.update.id, audience, 30, poll=0.02)
            if i >= 2:
                firsts.append(first * 1000)
                alls.append(done * 1000)
            time.sleep(0.05)
    rt.close()
    if not firsts:
        figure("latency publish->first delivery", "no data", "none stated", None)
        return
    note = f"[{len(firsts)} publishes to {audience} webhook subscribers, Celery on Redis, -c 2, PostgreSQL]"
    if b.args.no_postgres:
        note = note.replace("PostgreSQL", "SQLite")
    figure("latency publish->first p50", f"{percentile(firsts, 0.5):.1f} ms", "none stated", None, note)
    figure("latency publish->first p95", f"{percentile(firsts, 0.95):.1f} ms", "none stated", None)
    figure("latency publish->all 10 p50", f"{percentile(alls, 0.5):.1f} ms", "none stated", None)
    figure(
        "latency publish->all 10 p95",
        f"{percentile(alls, 0.95):.1f} ms",
        "none stated",
        None,
        f"[max first {max(firsts):.1f} ms, mean {statistics.fmean(firsts):.1f} ms]",
    )


# ---------------------------------------------------------------------------------------- 4. rss


def scratch_dir(need_bytes: int) -> Path:
    for base in ("/dev/shm", tempfile.gettempdir()):
        with contextlib.suppress(OSError):
            if shutil.disk_usage(base).free > need_bytes * 2:
                return Path(tempfile.mkdtemp(prefix="tocsin-bench-outbox-", dir=base))
    return Path(tempfile.mkdtemp(prefix="tocsin-bench-outbox-"))


def scenario_rss(b: Bench) -> None:
    n = b.args.rss_subscribers
    outbox = scratch_dir(n * 1500)
    b.stack.callback(shutil.rmtree, outbox, True)
    info(f"outbox in {outbox} (free {shutil.disk_usage(outbox).free / 2**30:.1f} GiB)")
    url = sqlite_database(outbox, "rss")  # the store next to the outbox (tmpfs when there is room)
    config = write_config(
        b.work / "rss.toml", f'outbox_dir = "{outbox}"\n\n[channels.email]\nproviders = ["outbox"]\n'
    )
    t0 = time.monotonic()
    load_subscribers(url, n, ChannelKind.EMAIL, lambda i: f"person{i}@example.com", components=["checkout"])
    info(f"loaded {n} email subscribers on sqlite in {time.monotonic() - t0:.1f} s")
    rt = build_runtime(settings_for(url, config))
    incident = new_incident(rt, ["checkout"])
    rt.close()
    env = child_env(DATABASE_URL=url, TOCSIN_CONFIG=str(config), COLUMNS="200")
    command = [
        TOCSIN,
        "publish",
        str(incident),
        "--status",
        "investigating",
        "--message",
        "We are investigating failed checkouts. Sorry.",
        "--next-update-in",
        "30m",
        "--channel",
        "email",
    ]
    log = b.work / "rss-child.log"
    started = time.monotonic()
    with log.open("wb") as out:
        child = subprocess.Popen(command, cwd=b.work, env=env, stdout=out, stderr=subprocess.STDOUT)
        sampler = RssSampler(child.pid, 0.1)
        with sampler.running():
            try:
                child.wait(b.args.rss_timeout)
            except subprocess.TimeoutExpired:
                child.terminate()
                child.wait(30)
                info(f"child stopped after {b.args.rss_timeout:.0f} s (--rss-timeout)")
    elapsed = time.monotonic() - started
    if child.returncode != 0:
        info(f"child exit {child.returncode}: {log.read_text()[-1500:]}")
        return
    times = ledger_times(url, last_update_id(url))
    sent = times.states.get("sent", 0)
    files = sum(1 for _ in outbox.glob("update-*/email/*.eml"))
    peak = sampler.peak / 2**20
    fan = times.fanout_seconds
    figure(
        f"rss peak {n} outbox embedded",
        f"{peak:.0f} MB",
        "<= 150 MB",
        peak <= 150,
        f"[`tocsin publish` child, {sampler.samples} samples; wall {elapsed:.1f} s; fan-out {fan:.1f} s; "
        f"sent {sent}/{n}; {files} files; ledger {times.states}]",
    )


def last_update_id(url: str) -> int:
    from sqlalchemy import func, select

    from dispatcher.store.engine import get_engine
    from dispatcher.store.schema import updates

    with get_engine(url).connect() as conn:
        return int(conn.execute(select(func.max(updates.c.id))).scalar_one())


# ---------------------------------------------------------------------------------------- main


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.fanout",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--only", choices=SCENARIOS, action="append", help="run only this scenario (repeatable)"
    )
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    parser.add_argument("--webhook-subscribers", type=int)
    parser.add_argument(
        "--webhook-configs", default=None, help="batch_size x concurrency settings to try, e.g. 100x64,500x64"
    )
    parser.add_argument("--sendgrid-recipients", type=int)
    parser.add_argument("--rss-subscribers", type=int)
    parser.add_argument("--rss-timeout", type=float, default=900.0, help="stop the rss child after this long")
    parser.add_argument("--latency-publishes", type=int)
    parser.add_argument(
        "--profile", metavar="DIR", help="py-spy the worker during the timed part, collapsed stacks into DIR"
    )
    parser.add_argument(
        "--no-postgres", action="store_true", help="SQLite everywhere (no PostgreSQL figures)"
    )
    parser.add_argument(
        "--webhook-receiver",
        choices=["fast", "emulator"],
        default="fast",
        help="webhooks land on the lean httptools receiver (fast) or the aiohttp WebhookReceiver (emulator)",
    )
    args = parser.parse_args(argv)
    quick = args.quick
    args.webhook_subscribers = args.webhook_subscribers or (1000 if quick else 20_000)
    args.sendgrid_recipients = args.sendgrid_recipients or (5000 if quick else 100_000)
    args.rss_subscribers = args.rss_subscribers or (20_000 if quick else 1_000_000)
    args.latency_publishes = args.latency_publishes or (10 if quick else 30)
    args.webhook_configs = args.webhook_configs or (
        "100x64,500x64" if quick else "100x64,250x64,500x64,500x128"
    )
    return args


def machine_facts(b: Bench) -> None:
    _print("SUMMARY")
    mem = psutil.virtual_memory()
    facts = {
        "cores": f"{os.cpu_count()} logical ({psutil.cpu_count(logical=False)} physical)",
        "RAM": f"{mem.total / 2**30:.1f} GiB ({mem.available / 2**30:.1f} GiB available)",
        "Python": f"{platform.python_implementation()} {platform.python_version()} ({sys.executable})",
        "SQLite": sqlite3.sqlite_version,
        "platform": platform.platform(),
        **b.facts,
    }
    for key, value in facts.items():
        _print(f"  {key:<22} {value}")


def restore_config(saved: str | None) -> None:
    """``settings_for`` points TOCSIN_CONFIG at the scenario's file; put back what was there."""
    if saved is None:
        os.environ.pop("TOCSIN_CONFIG", None)
    else:
        os.environ["TOCSIN_CONFIG"] = saved


def run_scenarios(args: argparse.Namespace, runners: dict[str, Any], prefix: str) -> None:
    """Run the chosen scenarios in a scratch folder, each on its own (one failing prints an ERROR figure
    and the others still run), then print the machine's facts."""
    with contextlib.ExitStack() as stack:
        work = Path(tempfile.mkdtemp(prefix=prefix))
        stack.callback(shutil.rmtree, work, True)
        stack.callback(restore_config, os.environ.get("TOCSIN_CONFIG"))
        bench = Bench(args, work, stack)
        for name in args.only or list(runners):
            _print(f"== {name}")
            started = time.monotonic()
            try:
                runners[name](bench)
            except Exception as exc:  # one broken scenario must not hide the others' figures
                _print(f"FIGURE {name:<34} {'ERROR':>22}   {type(exc).__name__}: {exc}")
            info(f"{name} took {time.monotonic() - started:.0f} s")
        machine_facts(bench)


def main(argv: list[str] | None = None) -> None:
    runners = {
        "webhooks": scenario_webhooks,
        "sendgrid": scenario_sendgrid,
        "latency": scenario_latency,
        "rss": scenario_rss,
    }
    run_scenarios(parse(argv), runners, "tocsin-bench-")


if __name__ == "__main__":
    main()
