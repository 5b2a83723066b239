"""``tocsin deliveries``: list dead letters and what is owed, ask who missed an update, re-drive failures.

Driven as a user drives it: the real command in a subprocess, in a folder with its own tocsin.toml, on
the embedded default. Two webhook endpoints answer 410 Gone until they are fixed.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from channels.webhook import WebhookOptions
from tests.cli import tocsin
from tests.emulators import WebhookReceiver

FIELDS = [
    "id",
    "update_id",
    "channel",
    "address",
    "state",
    "attempts",
    "provider",
    "provider_message_id",
    "provider_status",
    "last_error",
    "next_attempt_at",
    "lease_until",
    "updated_at",
]


GONE = {"/gone/ada": 410, "/gone/bob": 410}


@pytest.fixture(scope="module")
def shared_receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver(verify=False, responses=GONE) as emu:
        yield emu


@pytest.fixture
def receiver(shared_receiver: WebhookReceiver) -> Iterator[WebhookReceiver]:
    yield shared_receiver
    shared_receiver.configure({"responses": GONE})
    shared_receiver.reset()


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory, shared_receiver: WebhookReceiver) -> Path:
    """Three subscribers by email (outbox) and webhook; update 1 is published and two webhooks failed.

    Built once (each command is a new process); every test works on its own copy."""
    prepared = tmp_path_factory.mktemp("published")
    allow = (
        'allow_destinations = ["127.0.0.0/8"]\n'
        if "allow_destinations" in WebhookOptions.model_fields
        else ""
    )
    (prepared / "tocsin.toml").write_text(
        '[channels.webhook]\nproviders = ["webhook"]\n'
        "[channels.social]\nenabled = false\n"
        f"[providers.webhook]\ntimeout = 5\n{allow}"
    )
    base = shared_receiver.base_url
    (prepared / "people.csv").write_text(
        "name,email,webhook_url\n"
        f"Ada,ada@example.com,{base}/gone/ada\n"
        f"Bob,bob@example.com,{base}/gone/bob\n"
        f"Cy,cy@example.com,{base}/ok/cy\n"
    )
    steps = [
        ("init",),
        ("subscribers", "import", "people.csv"),
        ("incident", "open", "Checkout failing", "--severity", "major"),
        (
            "publish",
            "1",
            "--status",
            "investigating",
            "--message",
            "Checkouts fail. Sorry.",
            "--next-update-in",
            "30m",
            "--wait",
            "0",
        ),
    ]
    for step in steps:
        ran = tocsin(*step, cwd=prepared)
        assert ran.code == 0, (step, ran.err)
    shared_receiver.reset()
    return prepared


@pytest.fixture
def folder(published: Path, tmp_path: Path, receiver: WebhookReceiver) -> Path:
    work = tmp_path / "work"
    shutil.copytree(published, work)
    return work


@pytest.mark.parametrize("command", [[], ["list"], ["missing"], ["retry"]], ids=lambda c: " ".join(c) or "-")
def test_every_deliveries_command_has_help(command: list[str], tmp_path: Path) -> None:
    ran = tocsin("deliveries", *command, "--help", cwd=tmp_path)
    assert ran.code == 0, ran.err
    assert "Usage:" in ran.out


def test_list_as_a_table_json_and_csv(folder: Path) -> None:
    table = tocsin("deliveries", "list", cwd=folder)
    assert table.code == 0, table.err
    assert "gone/ada" in table.out and "gone/bob" in table.out and "410" in table.out
    assert "cy@example.com" not in table.out, "sent rows are not dead letters"

    as_json = tocsin("deliveries", "list", "--format", "json", cwd=folder)
    assert as_json.code == 0, as_json.err
    rows = json.loads(as_json.out)
    assert [r["address"].rsplit("/", 1)[-1] for r in rows] == ["bob", "ada"], "newest first"
    assert all(r["state"] == "failed" and r["channel"] == "webhook" and r["update_id"] == 1 for r in rows)
    assert all("410" in r["last_error"] and r["provider"] == "webhook" for r in rows)
    assert all(r["updated_at"].endswith("+00:00") for r in rows)

    as_csv = tocsin("deliveries", "list", "--format", "csv", "--channel", "webhook", cwd=folder)
    assert as_csv.code == 0, as_csv.err
    parsed = list(csv.DictReader(io.StringIO(as_csv.out)))
    assert list(parsed[0]) == FIELDS
    assert sorted(r["address"].rsplit("/", 1)[-1] for r in parsed) == ["ada", "bob"]
    assert {r["state"] for r in parsed} == {"failed"} and {r["attempts"] for r in parsed} == {"1"}

    sent = json.loads(tocsin("deliveries", "list", "--state", "sent", "--format", "json", cwd=folder).out)
    assert len(sent) == 4  # three emails and Cy's webhook
    assert tocsin("deliveries", cwd=folder).out == table.out, "`tocsin deliveries` alone lists"


def test_an_empty_list_is_one_line_for_people_and_still_valid_for_machines(folder: Path) -> None:
    table = tocsin("deliveries", "list", "--provider", "sendgrid", cwd=folder)
    assert table.code == 0
    assert table.out == ""
    assert table.err.strip() == "no deliveries match (state failed/queued/sending, provider sendgrid)"

    assert json.loads(tocsin("deliveries", "list", "--update", "7", "--format", "json", cwd=folder).out) == []
    only_header = tocsin("deliveries", "list", "--channel", "sms", "--format", "csv", cwd=folder)
    assert only_header.out.splitlines() == [",".join(FIELDS)]


def test_bad_filter_values_are_refused_by_name(folder: Path) -> None:
    ran = tocsin("deliveries", "list", "--state", "lost", cwd=folder)
    assert ran.code == 2
    assert "--state" in ran.err and "lost" in ran.err
    ran = tocsin("deliveries", "retry", "--channel", "pigeon", cwd=folder)
    assert ran.code == 2 and "pigeon" in ran.err


def test_missing_says_who_has_not_received_the_update_and_why(folder: Path) -> None:
    ran = tocsin("deliveries", "missing", "1", cwd=folder)
    assert ran.code == 0, ran.err
    assert "update upd-1: 2 address(es) have not received it (failed 2)" in ran.out
    assert "gone/ada" in ran.out and "endpoint gone (410)" in ran.out

    report = json.loads(tocsin("deliveries", "missing", "1", "--format", "json", cwd=folder).out)
    assert report["counts"] == {"failed": 2} and report["fanned_out"] is True
    assert {m["reason"] for m in report["missing"]} == {"failed"}
    rows = list(
        csv.DictReader(io.StringIO(tocsin("deliveries", "missing", "1", "--format", "csv", cwd=folder).out))
    )
    assert [r["reason"] for r in rows] == ["failed", "failed"]

    unknown = tocsin("deliveries", "missing", "42", cwd=folder)
    assert unknown.code == 1
    assert unknown.err.strip() == "error: no update 42"


def test_retry_dry_run_counts_then_a_real_retry_delivers_once_fixed(
    folder: Path, receiver: WebhookReceiver
) -> None:
    dry = tocsin("deliveries", "retry", "--update", "1", "--dry-run", cwd=folder)
    assert dry.code == 0, dry.err
    assert "would re-drive 2 failed deliveries in 1 batch(es) (update upd-1)" in dry.out
    assert (
        len(json.loads(tocsin("deliveries", "list", "--state", "failed", "--format", "json", cwd=folder).out))
        == 2
    )

    receiver.configure({"responses": {}})  # the endpoints are fixed
    ran = tocsin("deliveries", "retry", "--update", "1", "--channel", "webhook", cwd=folder)
    assert ran.code == 0, ran.err
    assert "re-drove 2 failed deliveries" in ran.out and "2 sent, 0 failed" in ran.out
    webhook_row = next(line for line in ran.out.splitlines() if "webhook" in line)
    assert "3" in webhook_row, "the status table shows all three webhooks sent"
    assert {m["path"] for m in receiver.received} >= {"/gone/ada", "/gone/bob"}
    assert tocsin("deliveries", "missing", "1", "--format", "json", cwd=folder).out.count('"reason"') == 0


def test_retry_when_nothing_failed_says_so_and_succeeds(folder: Path) -> None:
    ran = tocsin("deliveries", "retry", "--channel", "email", cwd=folder)
    assert ran.code == 0, ran.err
    assert ran.out.strip() == "nothing to re-drive: no failed deliveries match (channel email, state failed)"
    assert ran.err == ""

    sent = json.loads(tocsin("deliveries", "list", "--state", "sent", "--format", "json", cwd=folder).out)
    by_id = tocsin("deliveries", "retry", "--id", str(sent[0]["id"]), "--dry-run", cwd=folder)
    assert by_id.code == 1
    assert f"delivery {sent[0]['id']} is sent: only failed deliveries are re-driven" in by_id.err
    assert len(by_id.err.strip().splitlines()) == 1


def test_with_redis_retry_hands_the_batches_to_the_workers(folder: Path, redis_url: str) -> None:
    broker = redis.Redis.from_url(redis_url)
    broker.flushdb()
    try:
        ran = tocsin("deliveries", "retry", "--update", "1", cwd=folder, env={"REDIS_URL": redis_url})
        assert ran.code == 0, ran.err
        assert "re-queued 2 failed deliveries in 1 batch(es) (update upd-1) for the workers" in ran.out
        assert broker.llen("webhook") == 1, "one deliver task for the one batch, on the webhook queue"
    finally:
        broker.flushdb()
    rows = json.loads(tocsin("deliveries", "list", "--format", "json", cwd=folder).out)
    assert [(r["state"], r["attempts"]) for r in rows] == [("queued", 0), ("queued", 0)]
    assert all("410" in r["last_error"] for r in rows), "the last error stays until a new attempt"


def test_an_update_not_fanned_out_yet_is_never_said_to_have_reached_everyone(folder: Path) -> None:
    later = tocsin(
        "publish",
        "1",
        "--status",
        "identified",
        "--message",
        "Rollback starts at the top of the hour. Sorry.",
        "--next-update-in",
        "1h",
        "--in",
        "2h",
        cwd=folder,
    )
    assert later.code == 0, later.err
    scheduled = later.out.split("scheduled update ")[1].split()[0]

    missing = tocsin("deliveries", "missing", scheduled, cwd=folder)

    assert missing.code == 0, missing.err
    assert "not fanned out yet" in missing.err
    assert "every owed address has received it" not in missing.out
    assert f"update {scheduled}: no address listed yet" in missing.out


def test_status_shows_superseded_apart_from_suppressed(folder: Path) -> None:
    shown = tocsin("status", "1", cwd=folder)
    assert shown.code == 0, shown.err
    header = next(line for line in shown.out.splitlines() if "suppressed" in line)
    assert "superseded" in header
