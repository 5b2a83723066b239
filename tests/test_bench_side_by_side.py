"""``bench/side_by_side.py`` at a tiny size: every contestant runs, is checked from the receiver's own
records, and gets its figure and its ratio; the closing table names the receiver of every row.

These run the commands docs/pages/benchmarks.md shows, on the test session's Redis and PostgreSQL. They
assert what the run printed, never a time: the figures of a tiny run on a busy machine mean nothing.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def side_by_side(*args: str, redis_url: str, pg_server: str) -> list[str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("TOCSIN_") and k not in ("REDIS_URL", "DATABASE_URL")
    }
    env["TOCSIN_BENCH_REDIS_URL"] = redis_url.rsplit("/", 1)[0] + "/12"  # a database of its own
    env["TOCSIN_BENCH_DATABASE_URL"] = pg_server
    proc = subprocess.run(
        [sys.executable, "-m", "bench.side_by_side", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout.splitlines()


def figures(lines: list[str]) -> list[str]:
    return [line for line in lines if line.startswith("FIGURE ")]


def table(lines: list[str]) -> list[list[str]]:
    """The Markdown table after ``TABLE``: one list of cells per row (header and rule left out)."""
    rows = lines[lines.index("TABLE") + 3 :]
    return [[cell.strip() for cell in row.strip("|").split("|")] for row in rows if row.startswith("|")]


@pytest.fixture
def services(redis_url: str, pg_databases: object) -> dict[str, str]:
    return {"redis_url": redis_url, "pg_server": pg_databases.server_url}  # type: ignore[attr-defined]


def test_webhook_contestants_each_deliver_everything_and_tocsin_gets_a_ratio_to_each(
    services: dict[str, str],
) -> None:
    lines = side_by_side(
        "--only",
        "webhooks",
        "--receivers",
        "lean",
        "--webhook-requests",
        "150",
        "--apprise-requests",
        "15",
        **services,
    )

    shown = figures(lines)
    assert not [line for line in shown if "ERROR" in line or "INCOMPLETE" in line]
    for contestant in (
        "bare aiohttp loop ",
        "bare aiohttp loop on uvloop",
        "Apprise, 15 json:// URLs",
        "Celery, a task per recipient",
        "Tocsin, 150 subscribers, tocsin publish",
    ):
        line = next(line for line in shown if contestant in line and "ratio" not in line)
        assert re.search(r"\[lean\] +[\d,]+ deliveries/s", line), line
        assert "duplicates 0" in line and "CPU ms/delivery" in line
    ratios = [line for line in shown if line.startswith("FIGURE ratio Tocsin / ")]
    assert len(ratios) == 4
    assert all(re.search(r"\d+\.\d\dx", line) for line in ratios)
    targets = [line for line in ratios if "target >= " in line]
    assert len(targets) == 3, "bare loop (1x), Apprise and naive Celery (8x) have targets"
    rows = table(lines)
    assert len(rows) == 9 and all(row[1] == "lean" for row in rows)


def test_email_puts_tocsins_run_beside_the_sendgrid_sdk_alone(services: dict[str, str]) -> None:
    lines = side_by_side("--only", "email", "--sendgrid-recipients", "2000", "--no-postgres", **services)

    shown = figures(lines)
    sdk = next(line for line in shown if "SendGrid SDK alone" in line)
    assert "emulator accepted 2000" in sdk and "recipients/s" in sdk
    ours = next(line for line in shown if "Tocsin SendGrid 2,000 recipients, sqlite" in line)
    assert "ledger {'sent': 2000}" in ours and "INCOMPLETE" not in ours
    assert "at 100,000" in ours, "a smaller run is not held to the 100,000-recipient target"
    assert any(line.startswith("FIGURE ratio Tocsin sqlite / SendGrid SDK alone") for line in shown)
    assert {row[1] for row in table(lines)} == {"sendgrid emulator"}


def test_startup_measures_the_commands_a_person_types(services: dict[str, str]) -> None:
    lines = side_by_side("--only", "startup", "--startup-runs", "1", "--receivers", "lean", **services)

    shown = figures(lines)
    assert any(re.search(r"tocsin --help: CPU +\d+ ms", line) for line in shown)
    assert any(re.search(r"tocsin publish \(Celery on Redis\): CPU +\d+ ms", line) for line in shown)
    first = next(line for line in shown if "first webhook received" in line)
    assert re.search(r"\[lean\] +\d+ ms", first) and "1 publishes to 10 subscribers" in first
