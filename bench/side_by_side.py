"""Tocsin beside the alternatives, in one run, on the same receiver: each figure and its ratios.

    .venv/bin/python -m bench.side_by_side            # every scenario at the issue's sizes
    .venv/bin/python -m bench.side_by_side --quick    # small sizes: checks every contestant runs
    .venv/bin/python -m bench.side_by_side --only startup

Scenarios (see bench/README.md):

- ``webhooks``: small JSON webhooks, 64 in flight, to one receiver: a bare aiohttp client loop, the same
  on uvloop, Apprise's fan-out (``json://`` URLs, one ``notify()``), Celery with one task per recipient
  (prefork ``-c 2``, pooled httpx client) and Tocsin end to end (``tocsin publish`` → the Nth delivery
  received; ``tocsin worker -c 2`` on Redis, PostgreSQL). Once per receiver of ``--receivers``: the
  aiohttp emulator first (what customers run), then the lean httptools receiver.
- ``email``: the SendGrid SDK alone at its batch ceiling (1,000 recipients a request) beside Tocsin's
  100,000-recipient publish (embedded runner; SQLite, then PostgreSQL).
- ``startup``: the command a person types during an outage: CPU of ``tocsin --help`` and of
  ``tocsin publish`` (Celery on Redis), and ``tocsin publish`` → first webhook received.

Every contestant's count is checked from the receiver's records (all arrived, none twice). Nothing here
asserts on time: a figure that misses its target is printed ``MISSES``. The run ends with the machine's
facts and a Markdown table of every figure (the one in docs/pages/benchmarks.md).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.fanout import (
    SENDGRID_TOML,
    Bench,
    info,
    new_incident,
    run_scenarios,
    sendgrid_once,
    sendgrid_stores,
    settings_for,
    webhook_toml,
)
from bench.infra import (
    PROJECT_ROOT,
    TOCSIN,
    CeleryWorker,
    CpuSplit,
    child_env,
    ledger_times,
    load_webhook_audience,
    tree_cpu,
    write_config,
)
from bench.receivers import RECEIVERS, ReceiverProcess
from dispatcher.engine.runtime import build_runtime
from tests.emulators.client import EmulatorProcess

SCENARIOS = ("webhooks", "email", "startup")
WEBHOOK_QUEUES = "fanout,webhook,maintenance"
MESSAGE = "We are investigating failed checkouts. Sorry."


def _print(line: str) -> None:
    print(line, flush=True)


# ---------------------------------------------------------------------------------------- results


@dataclass
class Figure:
    """One measured figure, as printed and as a row of the closing table."""

    name: str
    receiver: str
    value: str
    target: str = ""
    meets: bool | None = None
    note: str = ""

    def line(self) -> str:
        verdict = "" if self.meets is None else ("MEETS" if self.meets else "MISSES")
        where = f"[{self.receiver}]" if self.receiver else ""
        return (
            f"FIGURE {self.name:<44} {where:<10} {self.value:>26}   "
            f"target {self.target or '-':<10} {verdict:<6} {self.note}"
        ).rstrip()


@dataclass
class Results:
    figures: list[Figure] = field(default_factory=list)

    def add(self, figure: Figure) -> Figure:
        self.figures.append(figure)
        _print(figure.line())
        return figure

    def table(self) -> list[str]:
        """The Markdown table of every figure of the run."""
        lines = ["| figure | receiver | measured | target | |", "|---|---|---|---|---|"]
        for f in self.figures:
            verdict = "" if f.meets is None else ("met" if f.meets else "**missed**")
            lines.append(f"| {f.name} | {f.receiver or '-'} | {f.value} | {f.target or '-'} | {verdict} |")
        return lines


@dataclass(frozen=True)
class Rate:
    """A contestant's pace: ``count`` deliveries in ``seconds``, and the CPU each process spent."""

    count: int
    seconds: float
    cpu: dict[str, float]
    complete: bool
    note: str = ""

    @property
    def per_second(self) -> float:
        return self.count / self.seconds if self.seconds > 0 else 0.0

    def cpu_note(self) -> str:
        parts = [f"{name} {1000 * used / self.count:.3f}" for name, used in self.cpu.items() if self.count]
        return "CPU ms/delivery: " + ", ".join(parts) if parts else ""


def ratio(ours: float, theirs: float) -> float:
    return ours / theirs if theirs > 0 else float("inf")


# ---------------------------------------------------------------------------------------- processes


@dataclass(frozen=True)
class Finished:
    code: int
    output: str
    wall: float
    cpu: float
    """User + system CPU seconds of the child (and of any children it waited for)."""


def run_child(command: Sequence[str], env: dict[str, str] | None = None, timeout: float = 900.0) -> Finished:
    """Run ``command`` to its end; its own CPU from the kernel's accounting (``wait4``)."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        command, cwd=PROJECT_ROOT, env=env or child_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    watchdog = threading.Timer(timeout, proc.kill)  # a hung child must not hang the run
    watchdog.start()
    try:
        assert proc.stdout is not None
        output = proc.stdout.read()
        proc.stdout.close()
    finally:
        _, status, usage = os.wait4(proc.pid, 0)  # reaped here, so Popen must not wait again
        proc.returncode = os.waitstatus_to_exitcode(status)
        watchdog.cancel()
    return Finished(
        proc.returncode,
        output.decode("utf-8", "replace"),
        time.perf_counter() - started,
        usage.ru_utime + usage.ru_stime,
    )


def yardstick(*args: str) -> dict[str, float]:
    """``python -m bench.yardsticks ARGS``; its JSON line."""
    done = run_child([sys.executable, "-m", "bench.yardsticks", *args])
    if done.code != 0:
        raise RuntimeError(f"bench.yardsticks {args[0]} failed: {done.output[-1500:]}")
    return dict(json.loads(done.output.strip().splitlines()[-1]))


@contextlib.contextmanager
def receiver_cpu(receiver: ReceiverProcess) -> Iterator[dict[str, float]]:
    """CPU seconds the receiver spent during the block (``["receiver"]`` once it ends)."""
    used: dict[str, float] = {}
    before = tree_cpu(receiver.pid)
    yield used
    used["receiver"] = tree_cpu(receiver.pid) - before


def received(receiver: ReceiverProcess, expected: int, timeout: float) -> tuple[dict[str, Any], bool, str]:
    """Wait for ``expected`` deliveries; (stats, all there exactly once, a note on what arrived)."""
    stats = receiver.wait_accepted(expected, timeout)
    ok = stats["accepted"] == expected and stats["duplicates"] == 0
    note = f"received {stats['accepted']}/{expected}, duplicates {stats['duplicates']}"
    return stats, ok, note + ("" if ok else " INCOMPLETE")


# ---------------------------------------------------------------------------------------- contestants


def bare_loop(receiver: ReceiverProcess, n: int, concurrency: int, use_uvloop: bool) -> Rate:
    receiver.client.reset()
    extra = ["--uvloop"] if use_uvloop else []
    with receiver_cpu(receiver) as cpu:
        out = yardstick(
            "aiohttp", receiver.base_url, "--requests", str(n), "--concurrency", str(concurrency), *extra
        )
    _, ok, note = received(receiver, n, 30)
    return Rate(n, out["seconds"], {"client": out["cpu"], **cpu}, ok and out["count"] == n, note)


def apprise_fanout(receiver: ReceiverProcess, n: int) -> Rate:
    receiver.client.reset()
    with receiver_cpu(receiver) as cpu:
        out = yardstick("apprise", receiver.base_url, "--requests", str(n))
    _, ok, note = received(receiver, n, 30)
    note += f"; adding {n} URLs took {out['add_seconds']:.2f} s more"
    return Rate(n, out["seconds"], {"client": out["cpu"], **cpu}, ok and out["count"] == n, note)


def naive_celery(b: Bench, receiver: ReceiverProcess, n: int) -> Rate:
    redis_url = b.redis()
    env = child_env(BENCH_REDIS_URL=redis_url)
    log = b.work / f"naive-celery-{receiver.kind}.log"
    command = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "bench.naive_celery",
        "worker",
        "-c",
        "2",
        "-P",
        "prefork",
        "-Q",
        "naive",
        "--without-gossip",
        "--without-mingle",
        "--loglevel",
        "info",
    ]
    with NaiveWorker(log, env, command) as worker:
        enqueue = [sys.executable, "-m", "bench.naive_celery", receiver.base_url]
        receiver.client.reset()
        run_child([*enqueue, "--requests", "200"], env)  # warm both worker processes
        receiver.wait_accepted(200, 60)
        receiver.client.reset()
        split = CpuSplit(worker=worker.pid, receiver=receiver.pid, redis=b.server_pid("redis"))
        with split:
            started = time.time()
            queued = run_child([*enqueue, "--requests", str(n)], env)
            stats, ok, note = received(receiver, n, max(120.0, n / 50))
        if queued.code != 0:
            raise RuntimeError(f"naive celery enqueue failed: {queued.output[-1500:]}")
    seconds = (stats["last_at"] or time.time()) - started
    cpu = {k: v for k, v in split.used.items() if k in ("worker", "receiver", "redis")}
    cpu["enqueuer"] = queued.cpu
    return Rate(n, seconds, cpu, ok, f"{note}; enqueueing took {queued.wall:.2f} s")


class NaiveWorker(CeleryWorker):
    """The naive baseline's ``celery worker`` (not ``tocsin worker``)."""

    def __init__(self, log: Path, env: dict[str, str], command: list[str]) -> None:
        super().__init__(log, env, 2, "naive")
        self.command = command


def publish_command(incident: int, *extra: str) -> list[str]:
    return [
        TOCSIN,
        "publish",
        str(incident),
        "--status",
        "investigating",
        "--message",
        MESSAGE,
        "--next-update-in",
        "30m",
        "--channel",
        "webhook",
        *extra,
    ]


def published_id(output: str) -> int:
    found = re.search(r"published update (?:upd-)?(\d+)", output)
    if found is None:
        raise RuntimeError(f"tocsin publish did not publish: {output[-1500:]}")
    return int(found.group(1))


@dataclass
class TocsinSetup:
    """A database with webhook subscribers for one receiver, and what ``tocsin`` needs to reach it."""

    url: str
    env: dict[str, str]
    incident: int
    warm_incident: int


def tocsin_setup(b: Bench, receiver: ReceiverProcess, n: int, warm: int, label: str) -> TocsinSetup:
    url = b.database(label)
    t0 = time.monotonic()
    load_webhook_audience(url, receiver.base_url, n, warm)
    info(f"loaded {n} webhook subscribers (+{warm} warm-up) in {time.monotonic() - t0:.1f} s")
    # The defaults (batch 500, 64 in flight); only the destination rule is needed for 127.0.0.1.
    config = write_config(b.work / f"{label}.toml", webhook_toml(500, 64))
    rt = build_runtime(settings_for(url, config))
    try:
        incident, warm_incident = new_incident(rt, ["checkout"]), new_incident(rt, ["warmup"])
    finally:
        rt.close()
    env = child_env(REDIS_URL=b.redis(), DATABASE_URL=url, TOCSIN_CONFIG=str(config), COLUMNS="200")
    return TocsinSetup(url, env, incident, warm_incident)


def tocsin_end_to_end(b: Bench, receiver: ReceiverProcess, n: int) -> Rate:
    warm = 200
    setup = tocsin_setup(b, receiver, n, warm, f"side-webhooks-{receiver.kind}")
    log = b.work / f"worker-side-{receiver.kind}.log"
    with CeleryWorker(log, setup.env, 2, WEBHOOK_QUEUES) as worker:
        receiver.client.reset()
        first = run_child(publish_command(setup.warm_incident), setup.env)
        published_id(first.output)
        received(receiver, warm, 60)
        receiver.client.reset()
        split = CpuSplit(
            worker=worker.pid,
            receiver=receiver.pid,
            postgres=b.server_pid("postgres"),
            redis=b.server_pid("redis"),
        )
        with split:
            started = time.time()
            command = run_child(publish_command(setup.incident), setup.env)
            update_id = published_id(command.output)
            stats, ok, note = received(receiver, n, max(120.0, n / 100))
    seconds = (stats["last_at"] or time.time()) - started
    times = ledger_times(setup.url, update_id)
    ledger_rate = n / times.seconds if times.last_sent_at else 0.0
    cpu = {k: v for k, v in split.used.items() if k in ("worker", "receiver", "postgres", "redis")}
    cpu["tocsin publish"] = command.cpu
    note += (
        f"; ledger's own clock {ledger_rate:,.0f}/s, fan-out done at {times.fanout_seconds:.2f} s; "
        f"the command took {command.wall:.2f} s; ledger {times.states}"
    )
    return Rate(n, seconds, cpu, ok and times.states.get("sent") == n, note)


# ---------------------------------------------------------------------------------------- scenarios


BARE, UVLOOP, APPRISE, CELERY, OURS = "bare", "uvloop", "apprise", "celery", "tocsin"
CONTESTANTS = (BARE, UVLOOP, APPRISE, CELERY, OURS)
RATIO_TARGETS = {BARE: 1.0, APPRISE: 8.0, CELERY: 8.0}
"""Tocsin's pace over each alternative's, as the issue asks: at or above a bare client loop, 8x the others."""


def scenario_webhooks(b: Bench, results: Results) -> None:
    for kind in b.args.receivers:
        receiver = b.stack.enter_context(ReceiverProcess(kind))
        info(f"receiver {kind} at {receiver.base_url}")
        webhooks_on(b, results, receiver)


def webhooks_on(b: Bench, results: Results, receiver: ReceiverProcess) -> None:
    """Every contestant, one after the other, on ``receiver``; then Tocsin's ratio to each."""
    n, apprise_n, concurrency = b.args.webhook_requests, b.args.apprise_requests, 64
    contestants: dict[str, tuple[str, Callable[[], Rate]]] = {
        BARE: ("bare aiohttp loop", lambda: bare_loop(receiver, n, concurrency, False)),
        UVLOOP: ("bare aiohttp loop on uvloop", lambda: bare_loop(receiver, n, concurrency, True)),
        APPRISE: (
            f"Apprise, {apprise_n:,} json:// URLs, one notify()",
            lambda: apprise_fanout(receiver, apprise_n),
        ),
        CELERY: ("Celery, a task per recipient, -c 2, httpx", lambda: naive_celery(b, receiver, n)),
        OURS: (
            f"Tocsin, {n:,} subscribers, tocsin publish -> last received",
            lambda: tocsin_end_to_end(b, receiver, n),
        ),
    }
    rates: dict[str, Rate] = {}
    for key, (name, run) in contestants.items():
        if key not in b.args.contestants:
            continue
        try:
            rate = rates[key] = run()
        except Exception as exc:  # one broken contestant must not hide the others' figures
            results.add(Figure(name, receiver.kind, "ERROR", note=f"{type(exc).__name__}: {exc}"))
            continue
        note = f"[{rate.seconds:.2f} s; {rate.cpu_note()}; {rate.note}]"
        results.add(Figure(name, receiver.kind, f"{rate.per_second:,.0f} deliveries/s", note=note))
    ours = rates.get(OURS)
    if ours is None:
        return
    for key, rate in rates.items():
        if key == OURS:
            continue
        goal = RATIO_TARGETS.get(key)
        value = ratio(ours.per_second, rate.per_second)
        target = "" if goal is None else f">= {goal:g}x"
        meets = None if goal is None else value >= goal and ours.complete and rate.complete
        results.add(
            Figure(f"ratio Tocsin / {contestants[key][0]}", receiver.kind, f"{value:.2f}x", target, meets)
        )


def scenario_email(b: Bench, results: Results) -> None:
    n = b.args.sendgrid_recipients
    emulator = b.stack.enter_context(EmulatorProcess("sendgrid", "--no-record"))
    emulator.client.reset()
    sdk = yardstick("sendgrid-sdk", emulator.base_url, "--recipients", str(n))
    stats = emulator.client.stats()
    sdk_rate = sdk["count"] / sdk["seconds"]
    results.add(
        Figure(
            f"SendGrid SDK alone, {n:,} recipients in 1,000s",
            "sendgrid emulator",
            f"{sdk_rate:,.0f} recipients/s",
            note=f"[{sdk['seconds']:.2f} s; client CPU {sdk['cpu']:.2f} s; "
            f"emulator accepted {stats['accepted']}]",
        )
    )
    config = write_config(b.work / "side-sendgrid.toml", SENDGRID_TOML.format(base_url=emulator.base_url))
    targets = {"sqlite": 4.0, "postgresql": 5.0}
    for store in sendgrid_stores(b):
        run = sendgrid_once(b, emulator, config, store, n)
        # The targets are for 100,000 recipients; a smaller run has fixed costs that do not scale down.
        goal = targets[store]
        full = n == 100_000
        results.add(
            Figure(
                f"Tocsin SendGrid {n:,} recipients, {store}, publish -> ledger written",
                "sendgrid emulator",
                f"{run.seconds:.2f} s ({n / run.seconds:,.0f}/s)",
                f"<= {goal:g} s" if full else f"<= {goal:g} s at 100,000",
                run.seconds <= goal and run.complete if full else None,
                run.note,
            )
        )
        results.add(
            Figure(
                f"ratio Tocsin {store} / SendGrid SDK alone",
                "sendgrid emulator",
                f"{ratio(n / run.seconds, sdk_rate):.2f}x",
            )
        )


def median_cpu(runs: list[Finished]) -> tuple[float, float]:
    return statistics.median(r.cpu for r in runs), statistics.median(r.wall for r in runs)


def scenario_startup(b: Bench, results: Results) -> None:
    runs = b.args.startup_runs
    helps = [run_child([TOCSIN, "--help"]) for _ in range(runs)]
    cpu, wall = median_cpu(helps)
    results.add(
        Figure(
            "tocsin --help: CPU",
            "",
            f"{cpu * 1000:.0f} ms",
            "<= 200 ms",
            cpu <= 0.2,
            f"[median of {runs}; wall {wall * 1000:.0f} ms]",
        )
    )
    receiver = b.stack.enter_context(ReceiverProcess(b.args.receivers[0]))
    audience = 10
    setup = tocsin_setup(b, receiver, audience, audience, "side-startup")
    firsts: list[float] = []
    publishes: list[Finished] = []
    with CeleryWorker(b.work / "worker-side-startup.log", setup.env, 2, WEBHOOK_QUEUES):
        for i in range(runs + 2):  # the first two warm the worker's two processes
            receiver.client.reset()
            started = time.time()
            done = run_child(publish_command(setup.incident if i >= 2 else setup.warm_incident), setup.env)
            published_id(done.output)
            stats, _, _ = received(receiver, audience, 30)
            if i >= 2 and stats["first_at"] is not None:
                firsts.append(stats["first_at"] - started)
                publishes.append(done)
    if not publishes:
        results.add(Figure("tocsin publish", receiver.kind, "no data"))
        return
    cpu, wall = median_cpu(publishes)
    results.add(
        Figure(
            "tocsin publish (Celery on Redis): CPU",
            "",
            f"{cpu * 1000:.0f} ms",
            "<= 200 ms",
            cpu <= 0.2,
            f"[median of {len(publishes)}; the command's wall time {wall * 1000:.0f} ms]",
        )
    )
    first = statistics.median(firsts)
    results.add(
        Figure(
            "tocsin publish -> first webhook received, p50",
            receiver.kind,
            f"{first * 1000:.0f} ms",
            "<= 300 ms",
            first <= 0.3,
            f"[{len(firsts)} publishes to {audience} subscribers, worker -c 2 already running; "
            f"max {max(firsts) * 1000:.0f} ms]",
        )
    )


# ---------------------------------------------------------------------------------------- main


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.side_by_side",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--only", choices=SCENARIOS, action="append", help="run only this scenario (repeatable)"
    )
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    parser.add_argument(
        "--receivers", default=",".join(RECEIVERS), help="webhook receivers, in order (default: aiohttp,lean)"
    )
    parser.add_argument("--webhook-requests", type=int, help="webhooks per contestant (default 20,000)")
    parser.add_argument("--apprise-requests", type=int, help="Apprise's json:// URLs (default 2,000)")
    parser.add_argument("--sendgrid-recipients", type=int, help="default 100,000")
    parser.add_argument("--startup-runs", type=int, help="runs of each command (median; default 5)")
    parser.add_argument(
        "--contestants",
        default=",".join(CONTESTANTS),
        help=f"webhook contestants to run (default: all of {','.join(CONTESTANTS)})",
    )
    parser.add_argument("--no-postgres", action="store_true", help="SQLite everywhere")
    args = parser.parse_args(argv)
    args.receivers = [r.strip() for r in args.receivers.split(",") if r.strip()]
    unknown = [r for r in args.receivers if r not in RECEIVERS]
    if unknown or not args.receivers:
        parser.error(f"--receivers: choose from {', '.join(RECEIVERS)}")
    args.contestants = [c.strip() for c in args.contestants.split(",") if c.strip()]
    if not args.contestants or any(c not in CONTESTANTS for c in args.contestants):
        parser.error(f"--contestants: choose from {', '.join(CONTESTANTS)}")
    quick = args.quick
    args.webhook_requests = args.webhook_requests or (2000 if quick else 20_000)
    args.apprise_requests = args.apprise_requests or (300 if quick else 2000)
    args.sendgrid_recipients = args.sendgrid_recipients or (10_000 if quick else 100_000)
    args.startup_runs = args.startup_runs or (3 if quick else 5)
    args.profile = None  # bench.fanout's Bench reads it
    return args


def main(argv: list[str] | None = None) -> None:
    results = Results()
    runners: dict[str, Callable[[Bench], None]] = {
        "webhooks": lambda b: scenario_webhooks(b, results),
        "email": lambda b: scenario_email(b, results),
        "startup": lambda b: scenario_startup(b, results),
    }
    run_scenarios(parse(argv), runners, "tocsin-side-")
    _print("TABLE")
    for line in results.table():
        _print(line)


if __name__ == "__main__":
    main()
