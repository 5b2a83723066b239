"""Ids that cannot be confused (issue 19): incidents read ``inc-N`` and updates ``upd-N`` wherever the CLI
shows one; every argument that takes one accepts the prefix (or a bare number, read as the kind it
takes); an incident id where an update id is wanted, or the reverse, is an error that says which."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from channels.base import ChannelKind
from dispatcher.access.tokens import Scope, create_token
from dispatcher.domain.ids import IdKind, incident_ref, parse_any, parse_id, update_ref
from dispatcher.engine.runtime import Runtime
from dispatcher.web.app import create_app
from tests.cli import Ran, tocsin
from tests.helpers import draft, incident, publish_and_deliver

GOOD_TEXT = "Since 09:12 UTC a third of checkouts fail. We are sorry. We are rolling back the deploy."


def test_ids_read_and_print_with_their_kind() -> None:
    assert incident_ref(3) == "inc-3" and update_ref(7) == "upd-7"
    assert parse_id("inc-3", IdKind.INCIDENT) == 3
    assert parse_id(" UPD-7 ", IdKind.UPDATE) == 7
    assert parse_id("7", IdKind.UPDATE) == 7  # a bare number is the kind the command takes
    assert parse_any("upd-7") == (IdKind.UPDATE, 7) and parse_any("7") == (None, 7)


@pytest.mark.parametrize(
    ("text", "want", "says"),
    [
        ("upd-3", IdKind.INCIDENT, "upd-3 is an update id, but this takes an incident id (inc-N"),
        ("inc-3", IdKind.UPDATE, "inc-3 is an incident id, but this takes an update id (upd-N"),
        ("abc-3", IdKind.UPDATE, "is not an id"),
        ("inc-", IdKind.INCIDENT, "is not an id"),
        ("inc-0", IdKind.INCIDENT, "ids run from 1"),
        ("upd-99999999999", IdKind.UPDATE, "ids run from 1"),
    ],
)
def test_the_wrong_kind_of_id_is_named(text: str, want: IdKind, says: str) -> None:
    with pytest.raises(ValueError, match="") as raised:
        parse_id(text, want)
    assert says in str(raised.value)


@pytest.fixture
def published(tmp_path: Path) -> Path:
    """A folder with incident inc-1 and its published update upd-1 (delivered to the outbox)."""
    assert tocsin("init", cwd=tmp_path).code == 0
    (tmp_path / "people.csv").write_text("name,email\nAda,ada@example.com\n")
    assert tocsin("subscribers", "import", "people.csv", cwd=tmp_path).code == 0
    opened = tocsin("incident", "open", "Checkout failing", "--severity", "major", cwd=tmp_path)
    assert opened.code == 0, opened.err
    assert "opened incident inc-1" in opened.out
    # A second incident, so that incident 2 exists while update 2 does not: a mix-up cannot pass.
    assert tocsin("incident", "open", "Search slow", "--severity", "minor", cwd=tmp_path).code == 0
    ran = tocsin(
        "publish", "inc-1", "--status", "investigating", "--message", GOOD_TEXT,
        "--next-update-in", "30m", cwd=tmp_path,
    )  # fmt: skip
    assert ran.code == 0, ran.err
    assert "published update upd-1" in ran.out
    assert "Update upd-1 (incident inc-1, investigating)" in ran.out
    return tmp_path


def _refused(ran: Ran, says: str) -> None:
    assert ran.code == 2, (ran.out, ran.err)
    assert says in " ".join(ran.err.split()), ran.err
    assert "Traceback" not in ran.err


def test_an_incident_id_where_an_update_id_is_wanted_is_refused(published: Path) -> None:
    said = "inc-2 is an incident id, but this takes an update id (upd-N"
    for command in (
        ["deliveries", "missing", "inc-2"],
        ["deliveries", "list", "--update", "inc-2"],
        ["approve", "inc-2"],
        ["reject", "inc-2", "--reason", "no"],
    ):
        _refused(tocsin(*command, cwd=published), said)


def test_an_update_id_where_an_incident_id_is_wanted_is_refused(published: Path) -> None:
    said = "upd-1 is an update id, but this takes an incident id (inc-N"
    for command in (
        ["incident", "show", "upd-1"],
        ["incident", "status", "upd-1", "--to", "identified"],
        ["preview", "upd-1", "--message", GOOD_TEXT],
        ["publish", "upd-1", "--status", "identified", "--message", GOOD_TEXT, "--next-update-in", "30m"],
    ):
        _refused(tocsin(*command, cwd=published), said)
    shown = tocsin("incident", "show", "inc-1", cwd=published)
    assert shown.code == 0 and "upd-1 ·" in shown.out, shown.out
    assert "upd-2" not in shown.out  # nothing was published by the refused commands


def test_prefixed_and_bare_ids_are_both_read(published: Path) -> None:
    for update in ("upd-1", "1"):
        ran = tocsin("status", update, cwd=published)
        assert ran.code == 0, ran.err
        assert "Update upd-1 (incident inc-1, investigating)" in ran.out
        missing = tocsin("deliveries", "missing", update, cwd=published)
        assert missing.code == 0 and "update upd-1: every owed address has received it" in missing.out
    for given in ("inc-1", "1"):
        shown = tocsin("incident", "show", given, cwd=published)
        assert shown.code == 0, shown.err
        assert "incident inc-1: Checkout failing [major]" in shown.out and "update upd-1 ·" in shown.out


def test_status_of_an_incident_reports_each_of_its_updates(published: Path) -> None:
    ran = tocsin("status", "inc-1", cwd=published)
    assert ran.code == 0, ran.err
    assert "Update upd-1 (incident inc-1, investigating)" in ran.out
    quiet = tocsin("status", "inc-2", cwd=published)
    assert quiet.code == 0, quiet.err
    assert "incident inc-2 has no updates yet" in quiet.out


def test_incident_list_shows_prefixed_ids(published: Path) -> None:
    listed = tocsin("incident", "list", cwd=published)
    assert listed.code == 0, listed.err
    assert "inc-1" in listed.out and "inc-2" in listed.out


@pytest.mark.parametrize(
    ("command", "says"),
    [
        (["status"], "UPDATE_OR_INCIDENT"),
        (["publish"], "INCIDENT"),
        (["preview"], "INCIDENT"),
        (["deliveries", "missing"], "UPDATE"),
        (["incident", "show"], "INCIDENT"),
        (["approve"], "UPDATE"),
    ],
)
def test_help_says_which_id_each_command_takes(command: list[str], says: str, tmp_path: Path) -> None:
    ran = tocsin(*command, "--help", cwd=tmp_path)
    assert ran.code == 0, ran.err
    text = " ".join(ran.out.split())
    assert says in text
    assert ("inc-3" in text) == ("INCIDENT" in says) and ("upd-7" in text) == ("UPDATE" in says), text


def test_the_console_shows_prefixed_ids(rt: Runtime) -> None:
    """The console reads as the CLI does: the incident's page and the update's page say inc-N and upd-N."""
    inc = incident(rt)
    published = publish_and_deliver(rt, draft(inc, channels=[ChannelKind.EMAIL]))
    with TestClient(create_app(lambda: rt)) as http:
        login = http.get("/console/login")
        csrf = re.search(r'name="csrf" value="([^"]+)"', login.text)
        assert csrf is not None
        token = create_token(rt, "alice", (Scope.ADMIN,))[1]
        http.post("/console/login", data={"token": token, "csrf": csrf.group(1)}, follow_redirects=False)
        listed = http.get("/console/incidents")
        page = http.get(f"/console/incidents/{inc.id}")
        update_page = http.get(f"/console/updates/{published.update.id}")
    assert listed.status_code == 200 and f"<td>inc-{inc.id}</td>" in listed.text
    assert f'<h1 id="incident-title">inc-{inc.id} ' in page.text
    assert f">upd-{published.update.id}</a>" in page.text
    assert f"<h1>Update upd-{published.update.id} · " in update_page.text
