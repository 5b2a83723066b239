"""The ``tocsin`` command on the embedded default, driven as a user drives it."""

from __future__ import annotations

import email
import json
from pathlib import Path

import pytest

from tests.cli import tocsin

COMMANDS = [
    [],
    ["init"],
    ["demo"],
    ["subscribers"],
    ["subscribers", "import"],
    ["subscribers", "list"],
    ["incident"],
    ["incident", "open"],
    ["incident", "list"],
    ["publish"],
    ["status"],
    ["worker"],
    ["preview"],
    ["api"],
    ["config"],
    ["config", "show"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "tocsin")
def test_every_command_has_help(command: list[str], tmp_path: Path) -> None:
    ran = tocsin(*command, "--help", cwd=tmp_path)
    assert ran.code == 0, ran.err
    assert "Usage:" in ran.out


def test_demo_in_an_empty_folder_delivers_to_files(tmp_path: Path) -> None:
    ran = tocsin("demo", cwd=tmp_path)

    assert ran.code == 0, ran.err
    emails = list((tmp_path / "outbox").glob("update-*/email/*.eml"))
    assert len(emails) >= 50
    message = email.message_from_bytes(emails[0].read_bytes())
    assert "Checkout failing" in str(message["Subject"]) or "Checkout" in message.as_string()
    assert len(list((tmp_path / "outbox").glob("update-*/sms/*.json"))) >= 50
    assert len(list((tmp_path / "outbox").glob("update-*/webhook/*.json"))) >= 50
    assert len(list((tmp_path / "outbox").glob("update-*/social/*.json"))) == 1
    assert (tmp_path / "tocsin.db").exists()
    for channel in ("email", "sms", "webhook", "social", "statuspage"):
        assert channel in ran.out
    # The status page is a real static site, with the incident on it.
    index = (tmp_path / "status" / "index.html").read_text(encoding="utf-8")
    assert "Checkout failing for some customers" in index
    assert json.loads((tmp_path / "status" / "status.json").read_text())["incidents"]


GOOD_CSV = """name,email,phone,webhook_url,locale,components,internal
Ada,ada@example.com,+442079460000,https://hooks.example.com/ada,en,api,no
Grace,grace@example.com,(202) 555-0143,,fr,,yes
Alan,alan@example.com,,,,,
"""

BAD_CSV = """name,email,phone
Ada,ada@example.com,+442079460000
Bob,not-an-email,
Cy,,12
Dee,ada@example.com,
"""


def test_a_users_first_incident_from_init_to_status(tmp_path: Path) -> None:
    assert tocsin("init", cwd=tmp_path).code == 0
    (tmp_path / "people.csv").write_text(GOOD_CSV)
    imported = tocsin("subscribers", "import", "people.csv", cwd=tmp_path)
    assert imported.code == 0, imported.err
    assert "imported 3" in imported.out
    listed = tocsin("subscribers", "list", cwd=tmp_path)
    assert "+12025550143" in listed.out, "numbers are stored in E.164"

    opened = tocsin(
        "incident", "open", "API errors", "--severity", "critical", "--component", "api", cwd=tmp_path
    )
    assert opened.code == 0 and "opened incident inc-1" in opened.out
    # Critical updates wait for a second person: each of us proves who we are with a personal token.
    writer, checker = (
        tocsin("tokens", "create", name, "--scope", "publish", cwd=tmp_path).out.splitlines()[0]
        for name in ("ada", "second-pair-of-eyes")
    )
    published = tocsin(
        "publish",
        "1",
        "--status",
        "investigating",
        "--message",
        "API requests fail. We are sorry and investigating.",
        "--next-update-in",
        "30m",
        "--idempotency-key",
        "first",
        cwd=tmp_path,
        env={"TOCSIN_TOKEN": writer},
    )
    assert published.code == 0, published.err
    # Critical incidents' public updates wait for a second person (the built-in severity policy).
    assert "waits for approval" in published.out
    assert not list(tmp_path.glob("outbox/update-1/**/*.*"))
    approved = tocsin("approve", "1", "--token", checker, cwd=tmp_path)
    assert approved.code == 0, approved.err
    assert len(list(tmp_path.glob("outbox/update-1/email/*.eml"))) == 3
    assert len(list(tmp_path.glob("outbox/update-1/sms/*.json"))) == 2

    again = tocsin(
        "publish",
        "1",
        "--status",
        "investigating",
        "--message",
        "API requests fail. We are sorry and investigating.",
        "--idempotency-key",
        "first",
        cwd=tmp_path,
        env={"TOCSIN_TOKEN": writer},
    )
    assert "already published as update upd-1" in again.out
    assert len(list(tmp_path.glob("outbox/update-*/email/*.eml"))) == 3

    status = tocsin("status", "1", cwd=tmp_path)
    assert status.code == 0
    email_row = next(line for line in status.out.splitlines() if "email" in line)
    assert "3" in email_row and "outbox" in email_row


def test_a_bad_csv_reports_every_bad_row_and_imports_nothing(tmp_path: Path) -> None:
    tocsin("init", cwd=tmp_path)
    (tmp_path / "bad.csv").write_text(BAD_CSV)

    ran = tocsin("subscribers", "import", "bad.csv", cwd=tmp_path)

    assert ran.code == 1
    assert "Traceback" not in ran.err
    for line in ("bad.csv:3:", "bad.csv:4:", "bad.csv:5:"):
        assert line in ran.err
    assert "nothing imported" in ran.err
    assert "0 subscriber(s)" in tocsin("subscribers", "list", cwd=tmp_path).out

    skipped = tocsin("subscribers", "import", "bad.csv", "--skip-invalid", cwd=tmp_path)
    assert skipped.code == 0 and "imported 1" in skipped.out


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["publish", "42", "--status", "investigating", "--message", "x"], "no incident 42"),
        (["publish", "1", "--status", "fixed", "--message", "x"], "fixed"),
        (["publish", "1", "--status", "identified", "--message", "x", "--next-update-in", "soon"], "soon"),
        (["status", "7"], "no update 7"),
        (["subscribers", "import", "missing.csv"], "missing.csv"),
        (["incident", "open", "x"], "title"),
        (["worker", "-Q", "email"], "needs Redis"),
    ],
)
def test_expected_errors_are_one_clear_line(tmp_path: Path, args: list[str], expected: str) -> None:
    tocsin("init", cwd=tmp_path)
    tocsin("incident", "open", "Checkout failing", cwd=tmp_path)
    ran = tocsin(*args, cwd=tmp_path)
    assert ran.code != 0
    assert expected in ran.err
    assert "Traceback" not in ran.err + ran.out


def test_commands_before_init_say_what_to_do(tmp_path: Path) -> None:
    ran = tocsin("incident", "list", cwd=tmp_path)
    assert ran.code == 1
    assert "tocsin init" in ran.err


def test_a_broken_config_file_is_named(tmp_path: Path) -> None:
    (tmp_path / "tocsin.toml").write_text('database_url = "mysql://nope"\n')
    ran = tocsin("incident", "list", cwd=tmp_path)
    assert ran.code == 1
    assert "database_url" in ran.err
    assert "Traceback" not in ran.err


def test_preview_shows_each_channel_with_its_length(tmp_path: Path) -> None:
    tocsin("init", cwd=tmp_path)
    tocsin("incident", "open", "Checkout failing", cwd=tmp_path)
    long_text = "Checkout fails for about a third of customers; we are rolling back. " * 6
    ran = tocsin(
        "preview",
        "1",
        "--message",
        long_text,
        "--next-update-in",
        "30m",
        cwd=tmp_path,
        env={
            "TOCSIN_CHANNELS__SMS__MAX_SEGMENTS": "2",
            "TOCSIN_STATUS_PAGE_URL": "https://status.example.com",
        },
    )
    assert ran.code == 0, ran.err
    assert "sms · 2 segment(s)" in ran.out
    assert "/280 weighted" in ran.out
    assert "Subject:" in ran.out
    assert not list(tmp_path.glob("outbox/**/*.*")), "a preview sends nothing"
