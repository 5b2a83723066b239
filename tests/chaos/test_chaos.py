"""Break things on purpose, count from the receiver's own records what was owed and what arrived.

Real PostgreSQL, real Redis, real `tocsin worker` processes (Celery), real HTTP. Bounded sizes in CI;
TOCSIN_CHAOS_FULL=1 for the full ones. Each prints its tally; each fails if a message is lost.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest
import redis
from sqlalchemy import func, select

from dispatcher.store.engine import get_engine
from dispatcher.store.schema import deliveries
from tests.chaos.harness import (
    FULL,
    RestartablePostgres,
    RestartableRedis,
    load_webhook_subscribers,
    size,
    tally,
    wait_for,
    write_config,
)
from tests.cli import kill_group, start_tocsin, stop, tocsin
from tests.emulators import SendGridEmulator, WebhookReceiver
from tests.emulators.smtp import SmtpSink

WORKER = ("worker", "--concurrency", "2", "--loglevel", "warning")

# Loading 50,000 subscribers and sending to them through a slow receiver outlasts the suite's default.
pytestmark = pytest.mark.timeout(3600 if FULL else 600)


def ledger_states(database_url: str) -> dict[str, int]:
    with get_engine(database_url).connect() as conn:
        rows = conn.execute(select(deliveries.c.state, func.count()).group_by(deliveries.c.state))
        return {state: int(n) for state, n in rows}


def deploy(
    folder: Path, env: dict[str, str], receiver: WebhookReceiver, owed: int
) -> subprocess.Popen[bytes]:
    """Config, schema, ``owed`` webhook subscribers on ``receiver``, and a running worker."""
    write_config(folder)
    assert tocsin("init", cwd=folder, env=env).code == 0
    load_webhook_subscribers(folder, env, receiver, owed)
    return start_tocsin(*WORKER, cwd=folder, env=env)


def owed_rows(database_url: str) -> int:
    """Rows the ledger still owes (queued, or on the wire): a fault that strikes must find some."""
    states = ledger_states(database_url)
    return states.get("queued", 0) + states.get("sending", 0)


def all_final(states: dict[str, int], owed: int) -> bool:
    """Every owed row exists and is final (sent or failed): nothing queued or in flight."""
    return sum(states.values()) == owed and states.keys() <= {"sent", "failed"}


def publish(folder: Path, env: dict[str, str]) -> None:
    assert tocsin("incident", "open", "Checkout failing", cwd=folder, env=env).code == 0
    ran = tocsin(
        "publish",
        "1",
        "--status",
        "investigating",
        "--message",
        "Checkout fails; we are on it. Sorry.",
        "--next-update-in",
        "30m",
        cwd=folder,
        env=env,
    )
    assert ran.code == 0, ran.err


@pytest.fixture
def env(postgres_url: str, redis_url: str) -> dict[str, str]:
    redis.Redis.from_url(redis_url).flushdb()
    return {"DATABASE_URL": postgres_url, "REDIS_URL": redis_url}


def test_killing_workers_with_sigkill_loses_nothing(tmp_path: Path, env: dict[str, str]) -> None:
    owed = size(4000, 50_000)
    with WebhookReceiver(verify=False, record=False, latency_ms=100) as receiver:
        worker = deploy(tmp_path, env, receiver, owed)
        publish(tmp_path, env)
        kills, seen_at_restart = 0, 0

        def kill_now_and_then() -> None:
            nonlocal worker, kills, seen_at_restart
            received = receiver.stats["unique_ids"]
            # Kill a worker that is busy sending (it delivered since its start), while work remains.
            if kills < 4 and received > seen_at_restart + 200 and received < owed * 0.8:
                kill_group(worker)
                kills += 1
                seen_at_restart = receiver.stats["unique_ids"]
                worker = start_tocsin(*WORKER, cwd=tmp_path, env=env)

        try:
            wait_for(lambda: receiver.stats["unique_ids"] >= owed, timeout=300, every=kill_now_and_then)
            # Rows a killed worker had on the wire arrived but were never recorded: they are owed again
            # when their lease ends, and the re-drive sends them (the duplicates counted below).
            wait_for(lambda: all_final(ledger_states(env["DATABASE_URL"]), owed), timeout=300)
        finally:
            stop(worker)
        result = tally(receiver, owed)
    print(f"\nchaos: kill -9 of the worker x{kills}: {result}")
    assert kills >= 2, "the test must actually kill workers mid fan-out"
    assert result.lost == 0
    assert result.duplicates <= kills * 2 * 100, "duplicates only for sends in flight at a kill"
    assert ledger_states(env["DATABASE_URL"]) == {"sent": owed}


def test_redis_flushed_then_restarted_mid_fan_out_loses_nothing(tmp_path: Path, postgres_url: str) -> None:
    owed = size(3000, 50_000)
    broker = RestartableRedis(tmp_path).start()
    env = {"DATABASE_URL": postgres_url, "REDIS_URL": broker.url}
    try:
        with WebhookReceiver(verify=False, record=False, latency_ms=100) as receiver:
            worker = deploy(tmp_path, env, receiver, owed)
            try:
                publish(tmp_path, env)
                assert wait_for(lambda: receiver.stats["unique_ids"] > owed * 0.2, timeout=120)
                owed_at_flush = owed_rows(postgres_url)
                redis.Redis.from_url(broker.url).flushall()  # every queued task is gone
                flushed_at = receiver.stats["unique_ids"]
                broker.stop()
                time.sleep(2)
                broker.start()  # …and Redis comes back empty
                done = wait_for(lambda: receiver.stats["unique_ids"] >= owed, timeout=300)
                survived = worker.poll() is None
            finally:
                stop(worker)
            result = tally(receiver, owed)
    finally:
        broker.stop()
    print(
        f"\nchaos: FLUSHALL at {flushed_at} received ({owed_at_flush} rows owed), then Redis restarted: "
        f"{result}"
    )
    assert owed_at_flush > 0 and flushed_at < owed, "the flush struck while deliveries were still owed"
    assert survived, "the worker shut down after losing Redis (see worker.log)"
    assert done and result.lost == 0
    assert ledger_states(postgres_url) == {"sent": owed}


def test_postgresql_restarted_mid_fan_out_loses_nothing_and_workers_recover(
    tmp_path: Path, redis_url: str
) -> None:
    owed = size(3000, 50_000)
    database = RestartablePostgres().start()
    redis.Redis.from_url(redis_url).flushdb()
    env = {"DATABASE_URL": database.url, "REDIS_URL": redis_url}
    try:
        with WebhookReceiver(verify=False, record=False, latency_ms=100) as receiver:
            worker = deploy(tmp_path, env, receiver, owed)
            try:
                publish(tmp_path, env)
                assert wait_for(lambda: receiver.stats["unique_ids"] > owed * 0.2, timeout=120)
                owed_at_restart = owed_rows(database.url)
                restarted_at = receiver.stats["unique_ids"]
                database.restart(down_for=3)
                done = wait_for(lambda: receiver.stats["unique_ids"] >= owed, timeout=300)
                settled = wait_for(lambda: ledger_states(database.url) == {"sent": owed}, timeout=60)
            finally:
                stop(worker)
            result = tally(receiver, owed)
            states = ledger_states(database.url)
    finally:
        get_engine.cache_clear()
        database.stop()
    print(
        f"\nchaos: PostgreSQL restarted at {restarted_at} received ({owed_at_restart} rows owed): {result}; "
        f"ledger {states}"
    )
    assert owed_at_restart > 0 and restarted_at < owed, "the restart struck while deliveries were still owed"
    assert done and settled, "the workers recovered on their own"
    assert result.lost == 0


def test_providers_failing_a_third_of_the_time_lose_nothing_and_permanent_errors_are_not_retried(
    tmp_path: Path, env: dict[str, str]
) -> None:
    owed = size(1000, 50_000)
    gone = 20
    faults = {
        "failure_rate": 0.3,
        "failure_kinds": ["5xx", "429", "hang", "drop"],
        "hang_seconds": 5,
        "seed": 7,
    }
    with WebhookReceiver(
        verify=False, record=False, responses={f"/hooks/{i}": 410 for i in range(gone)}, **faults
    ) as receiver:
        worker = deploy(tmp_path, env, receiver, owed)
        try:
            publish(tmp_path, env)
            done = wait_for(
                lambda: all_final(ledger_states(env["DATABASE_URL"]), owed), timeout=300, period=1
            )
        finally:
            stop(worker)
        stats = receiver.stats
    states = ledger_states(env["DATABASE_URL"])
    print(f"\nchaos: 30% provider failures: ledger {states}, receiver {stats}")
    assert done
    assert states == {"sent": owed - gone, "failed": gone}, "every owed message arrived; only 410s failed"
    assert stats["rejected"].get("410") == gone, "a permanent error is never retried"
    assert stats["rejected"].get("429", 0) > 0
    assert stats["early_retries"] == 0, "no request before its Retry-After"


def test_with_the_primary_email_provider_down_the_fallback_carries_everything(
    tmp_path: Path, env: dict[str, str]
) -> None:
    owed = size(1000, 20_000)
    with SendGridEmulator(api_key="SG.k", down=True) as sendgrid, SmtpSink() as smtp:
        write_config(
            tmp_path,
            f"""
[channels.email]
providers = ["sendgrid", "smtp"]
[providers.sendgrid]
api_key = "SG.k"
base_url = "{sendgrid.base_url}"
from_email = "status@example.com"
timeout = 2
[providers.smtp]
host = "{smtp.host}"
port = {smtp.port}
starttls = false
from_email = "status@example.com"
""",
            channel="email",
        )
        assert tocsin("init", cwd=tmp_path, env=env).code == 0
        rows = ["email"] + [f"person{i}@example.com" for i in range(owed)]
        (tmp_path / "people.csv").write_text("\n".join(rows) + "\n")
        assert tocsin("subscribers", "import", "people.csv", cwd=tmp_path, env=env, timeout=300).code == 0
        worker = start_tocsin(*WORKER, cwd=tmp_path, env=env)
        try:
            publish(tmp_path, env)
            done = wait_for(
                lambda: ledger_states(env["DATABASE_URL"]) == {"sent": owed}, timeout=300, period=0.5
            )
        finally:
            stop(worker)
        delivered = [rcpt for m in smtp.messages for rcpt in m.rcpt_tos]
    print(f"\nchaos: SendGrid down for the whole run: SMTP carried {len(set(delivered))} of {owed}")
    assert done
    assert sorted(delivered) == sorted(f"person{i}@example.com" for i in range(owed)), "none lost, none twice"
    assert sendgrid.received == []
    assert ledger_states(env["DATABASE_URL"]) == {"sent": owed}
