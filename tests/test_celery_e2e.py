"""End to end on the production path: the ``tocsin`` CLI publishes, a real Celery worker process on a
real Redis delivers, PostgreSQL keeps the ledger, and the providers (emulated on the wire) receive."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from dispatcher.audience.subscribers import new_webhook_secret
from tests.cli import start_tocsin, stop, tocsin
from tests.emulators import SendGridEmulator, WebhookReceiver

API_KEY = "SG.e2e-key"
SUBSCRIBERS = 30


def wait_until(predicate, timeout: float = 60.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()


@pytest.fixture
def providers() -> Iterator[tuple[SendGridEmulator, WebhookReceiver]]:
    with SendGridEmulator(api_key=API_KEY) as sendgrid, WebhookReceiver() as receiver:
        yield sendgrid, receiver


@pytest.fixture
def env(redis_url: str, postgres_url: str) -> dict[str, str]:
    redis.Redis.from_url(redis_url).flushdb()
    return {"REDIS_URL": redis_url, "DATABASE_URL": postgres_url}


def write_config(folder: Path, sendgrid: SendGridEmulator) -> None:
    (folder / "tocsin.toml").write_text(
        f"""
organisation = "Example Corp"
[channels.email]
providers = ["sendgrid"]
[channels.webhook]
providers = ["webhook"]
[channels.sms]
enabled = false
[channels.social]
enabled = false
[providers.sendgrid]
api_key = "{API_KEY}"
base_url = "{sendgrid.base_url}"
from_email = "status@example.com"
[providers.webhook]
timeout = 5
allow_destinations = ["127.0.0.0/8"]
"""
    )


def test_an_update_published_from_the_cli_is_delivered_by_a_celery_worker(
    tmp_path: Path,
    env: dict[str, str],
    providers: tuple[SendGridEmulator, WebhookReceiver],
) -> None:
    sendgrid, receiver = providers
    write_config(tmp_path, sendgrid)
    assert tocsin("init", cwd=tmp_path, env=env).code == 0
    rows = ["name,email,webhook_url,webhook_secret"]
    for i in range(SUBSCRIBERS):
        secret = new_webhook_secret()
        receiver.set_secret(secret, path=f"/hooks/{i}")
        rows.append(f"Person {i},person{i}@example.com,{receiver.base_url}/hooks/{i},{secret}")
    (tmp_path / "people.csv").write_text("\n".join(rows) + "\n")
    imported = tocsin("subscribers", "import", "people.csv", cwd=tmp_path, env=env)
    assert imported.code == 0, imported.err
    assert tocsin("incident", "open", "Checkout failing", cwd=tmp_path, env=env).code == 0

    with_worker = start_tocsin("worker", "--concurrency", "2", "--loglevel", "warning", cwd=tmp_path, env=env)
    try:
        published = tocsin(
            "publish",
            "1",
            "--status",
            "investigating",
            "--message",
            "Checkout fails for some customers. We are sorry; we are on it.",
            "--next-update-in",
            "30m",
            "--idempotency-key",
            "inc-1-first",
            cwd=tmp_path,
            env=env,
        )
        assert published.code == 0, published.err
        assert "published update upd-1" in published.out

        assert wait_until(
            lambda: len(sendgrid.received) >= SUBSCRIBERS and len(receiver.received) >= SUBSCRIBERS
        )
        again = tocsin(
            "publish",
            "1",
            "--status",
            "investigating",
            "--message",
            "Checkout fails for some customers. We are sorry; we are on it.",
            "--idempotency-key",
            "inc-1-first",
            cwd=tmp_path,
            env=env,
        )
        assert "already published" in again.out
        assert wait_until(
            lambda: (
                _counts(tocsin("status", "1", cwd=tmp_path, env=env).out)
                == {
                    "email": {"owed": "0", "sent": str(SUBSCRIBERS), "failed": "0"},
                    "webhook": {"owed": "0", "sent": str(SUBSCRIBERS), "failed": "0"},
                }
            )
        )
    finally:
        stop(with_worker)

    emails = sorted(m["email"] for m in sendgrid.received)
    assert emails == sorted(f"person{i}@example.com" for i in range(SUBSCRIBERS)), "none lost, none twice"
    assert all(m["verified"] for m in receiver.received)
    assert sorted(m["path"] for m in receiver.received) == sorted(f"/hooks/{i}" for i in range(SUBSCRIBERS))
    assert receiver.stats["duplicates"] == 0


def _counts(table: str) -> dict[str, dict[str, str]]:
    """owed/sent/failed per channel, read from the table `tocsin status` prints."""
    counts = {}
    for line in table.splitlines():
        cells = [c.strip() for c in line.split("│")[1:-1]]
        if len(cells) >= 4 and cells[0] in ("email", "sms", "webhook", "social"):
            counts[cells[0]] = {"owed": cells[1], "sent": cells[2], "failed": cells[3]}
    return counts
