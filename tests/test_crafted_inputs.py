"""Crafted input through the CLI and the audience use cases, each case taken from the issue: a clear error
naming what is wrong, no traceback, nothing half-written, on SQLite and PostgreSQL alike."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from channels.base import ChannelKind, Message, Recipient
from channels.webhook import WebhookAdapter, WebhookOptions
from dispatcher.audience.consent import request_signup
from dispatcher.audience.importing import import_subscribers_file
from dispatcher.audience.subscribers import add_subscribers, iter_subscribers
from dispatcher.domain.models import ContactPoint, Subscriber
from dispatcher.engine.runtime import Runtime
from dispatcher.store.schema import contact_points, subscribers
from tests.cli import tocsin

LOOPBACK_FORMS = ["localhost", "LOCALHOST.", "0x7f000001", "2130706433", "017700000001", "status.localhost"]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "people.csv"
    path.write_bytes(text.encode())
    return path


def count(rt: Runtime, table: object) -> int:
    with rt.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())  # type: ignore[arg-type]


def test_an_import_with_a_nul_byte_names_the_row_and_writes_nothing(db_url: str, tmp_path: Path) -> None:
    """The issue: `tocsin subscribers import` of such a CSV printed an 84-line traceback (PostgreSQL)."""
    write(tmp_path, "name,email\nAnn,ann@example.com\nB\x00ob,bob@example.com\n")
    ran = tocsin("subscribers", "import", "people.csv", cwd=tmp_path, env={"DATABASE_URL": db_url})
    assert ran.code == 1
    assert "people.csv:3: name: contains the control character U+0000 at position 2" in ran.err
    assert "1 bad row(s), 1 problem(s) in people.csv; nothing imported" in ran.err
    assert "Traceback" not in ran.err + ran.out
    skipped = tocsin(
        "subscribers", "import", "people.csv", "--skip-invalid", cwd=tmp_path, env={"DATABASE_URL": db_url}
    )
    assert skipped.code == 0, skipped.err
    assert "imported 1 subscriber(s), skipped 1 bad row(s)" in skipped.out


def test_import_summaries_count_rows_and_problems_apart(rt: Runtime, tmp_path: Path) -> None:
    # The issue: "6 bad row(s)" when 4 rows carry 6 problems; --skip-invalid then said "skipped 4".
    path = write(
        tmp_path,
        "name,email,phone,locale\n"
        "Ann,ann@example.com,,en\n"
        "Bad1,not-an-email,12,en\n"  # two problems
        "Bad2,,,zz-!!\n"  # two problems (locale, no contact point)
        "Bad3,bad3@,,en\n"
        "Bad4,,+1,en\n"
        "Cat,cat@example.com,,fr\n",
    )
    refused = import_subscribers_file(rt, path, "US", skip_invalid=False)
    assert (refused.bad_rows, len(refused.problems)) == (4, 6)
    assert refused.summary() == "4 bad row(s), 6 problem(s)"
    assert count(rt, subscribers) == 0

    done = import_subscribers_file(rt, path, "US", skip_invalid=True)
    assert (done.imported, done.skipped, done.bad_rows) == (2, 4, 4), "skipped agrees with the bad rows"


@pytest.mark.parametrize("host", LOOPBACK_FORMS)
def test_webhook_hosts_are_checked_at_import_as_when_sending(rt: Runtime, tmp_path: Path, host: str) -> None:
    url = f"http://{host}:8080/hook"
    path = write(tmp_path, f"name,webhook_url\nEve,{url}\nAnn,https://93.184.216.34/hook\n")
    outcome = import_subscribers_file(rt, path, "US", skip_invalid=False)
    [problem] = outcome.problems
    assert (problem.line, problem.column) == (2, "webhook_url")
    assert problem.reason.startswith("not reachable by Tocsin: ")
    assert count(rt, subscribers) == 0

    # Sending refuses the very same URL, for the same reason.
    adapter = WebhookAdapter(WebhookOptions(default_secret="whsec_" + "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFB"))
    try:
        message = Message(ChannelKind.WEBHOOK, 1, 1, "s", "t", json_body="{}")
        [result] = adapter.send(message, [Recipient(1, url)])
    finally:
        adapter.close()
    assert result.error == "blocked: " + problem.reason.removeprefix("not reachable by Tocsin: ")


@pytest.mark.parametrize("host", ["localhost", "LOCALHOST.", "0x7f000001"])
def test_the_cli_refuses_the_same_webhook_hosts(sqlite_url: str, tmp_path: Path, host: str) -> None:
    ran = tocsin(
        "subscribers",
        "add",
        "--webhook",
        f"http://{host}/hook",
        cwd=tmp_path,
        env={"DATABASE_URL": sqlite_url},
    )
    assert ran.code == 1
    assert "webhook: not reachable by Tocsin:" in ran.err and "Traceback" not in ran.err


def test_an_allowed_intranet_still_passes(make_runtime: object, tmp_path: Path) -> None:
    rt = make_runtime(providers={"webhook": {"allow_destinations": ["127.0.0.0/8"]}})  # type: ignore[operator]
    path = write(tmp_path, "name,webhook_url\nOps,http://localhost:9000/hook\n")
    assert import_subscribers_file(rt, path, "US", skip_invalid=False).imported == 1


def test_an_email_differing_only_in_case_is_the_same_subscriber(rt: Runtime, tmp_path: Path) -> None:
    """The issue: BOB@Example.com was imported beside bob@example.com, so Bob got every email twice."""
    add_subscribers(
        rt,
        [
            Subscriber(
                name="Bob",
                contact_points=[ContactPoint(channel=ChannelKind.EMAIL, address="bob@example.com")],
            )
        ],
    )
    path = write(tmp_path, "name,email\nBob again,BOB@Example.com\nCarol,Carol.Smith@Example.COM\n")
    outcome = import_subscribers_file(rt, path, "US", skip_invalid=True)
    assert [(p.line, p.reason) for p in outcome.problems] == [
        (2, "email bob@example.com is already subscribed")
    ]
    stored = sorted(cp.address for s in iter_subscribers(rt) for cp in s.contact_points)
    assert stored == ["Carol.Smith@example.com", "bob@example.com"], "the local part is kept as typed"


def test_a_signup_differing_only_in_case_does_not_add_a_second_address(make_runtime: object) -> None:
    rt: Runtime = make_runtime(public_url="https://status.example.com", signing_key="k" * 32)  # type: ignore[operator]
    add_subscribers(
        rt, [Subscriber(contact_points=[ContactPoint(channel=ChannelKind.EMAIL, address="bob@example.com")])]
    )
    signup = request_signup(rt, "BOB@Example.com")
    assert signup.state == "already_confirmed"
    assert count(rt, contact_points) == 1


def test_an_overflowing_promise_is_a_clear_cli_error(sqlite_url: str, tmp_path: Path) -> None:
    """The issue: `next_update_in: "99999999h"` gave a CLI traceback (and 500s on the API)."""
    env = {"DATABASE_URL": sqlite_url}
    opened = tocsin("incident", "open", "Checkout failing", "--severity", "minor", cwd=tmp_path, env=env)
    assert opened.code == 0, opened.err
    for command in ("publish", "preview"):
        args = [command, "1", "--status", "investigating", "--message", "Checkout fails. Sorry."]
        ran = tocsin(*args, "--next-update-in", "99999999h", cwd=tmp_path, env=env)
        assert ran.code == 2, (command, ran.err)
        assert (
            "'99999999h' is longer than 366 days, the longest promise or schedule Tocsin accepts" in ran.err
        )
        assert "Traceback" not in ran.err
    far = tocsin(
        "publish",
        "1",
        "--status",
        "investigating",
        "--message",
        "x",
        "--at",
        "9999-12-31T23:00Z",
        cwd=tmp_path,
        env=env,
    )
    assert far.code == 2 and "more than 10 years ahead" in far.err
