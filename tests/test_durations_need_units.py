"""A duration always carries its unit: ``--next-update-in 30`` is an error naming the flag and showing
the forms Tocsin accepts, never a silent "30 minutes" (issue 19). The same holds for the API's
``next_update_in``, the console's form and every duration in ``policy.toml``."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from dispatcher.access.tokens import Scope
from dispatcher.domain.durations import parse_duration
from dispatcher.domain.errors import ConfigurationError
from dispatcher.domain.policy import parse_policy
from dispatcher.engine.runtime import Runtime
from dispatcher.web.console.incident_routes import ComposeForm
from tests.api_client import Api, api_fixture  # noqa: F401
from tests.cli import tocsin
from tests.helpers import incident

GOOD_TEXT = "Since 09:12 UTC a third of checkouts fail. We are sorry. We are rolling back the deploy."


@pytest.mark.parametrize("text", ["30", " 30 ", "1.5", "-5"])
def test_a_bare_number_is_not_a_duration(text: str) -> None:
    with pytest.raises(ValueError) as raised:
        parse_duration(text)
    message = str(raised.value)
    assert "no unit" in message
    for form in ("30m", "2h", "90s"):
        assert form in message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90s", timedelta(seconds=90)),
        ("30m", timedelta(minutes=30)),
        ("2h", timedelta(hours=2)),
        ("1h30m", timedelta(minutes=90)),
        ("1d", timedelta(days=1)),
        (" 45M ", timedelta(minutes=45)),
        ("0", timedelta(0)),
    ],  # zero is zero in any unit: policy.toml's "0" (off) stays valid
)
def test_durations_with_units_still_read(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


def test_the_cli_names_the_flag_and_the_accepted_forms(tmp_path: Path) -> None:
    assert tocsin("init", cwd=tmp_path).code == 0
    opened = tocsin("incident", "open", "Checkout failing", "--severity", "major", cwd=tmp_path)
    assert opened.code == 0, opened.err

    for command in (["publish", "1", "--status", "investigating"], ["preview", "1"]):
        ran = tocsin(*command, "--message", GOOD_TEXT, "--next-update-in", "30", cwd=tmp_path)
        assert ran.code != 0, ran.out
        assert "--next-update-in" in ran.err and "30m" in ran.err and "90s" in ran.err, ran.err
        assert "Traceback" not in ran.err

    later = tocsin(
        "publish", "1", "--status", "investigating", "--message", GOOD_TEXT, "--in", "120", cwd=tmp_path
    )
    assert later.code != 0 and "--in" in later.err and "2h" in later.err, later.err
    # Nothing was written by the refused commands.
    shown = tocsin("incident", "show", "1", cwd=tmp_path)
    assert shown.code == 0, shown.err
    assert "upd-" not in shown.out and "scheduled" not in shown.out.lower()


def test_the_api_refuses_a_bare_number_naming_the_field(api: Api) -> None:
    inc = incident(api.rt)
    response = api.http.post(
        f"/incidents/{inc.id}/updates",
        json={"status": "investigating", "message": GOOD_TEXT, "next_update_in": "30"},
        headers=api.auth(Scope.PUBLISH),
    )
    assert response.status_code == 422, response.text
    errors = response.json()["errors"]
    assert [e["field"] for e in errors] == ["next_update_in"]
    assert "30m" in errors[0]["message"]


def test_the_console_form_refuses_a_bare_number(rt: Runtime) -> None:
    inc = incident(rt)
    form = ComposeForm(
        message=GOOD_TEXT,
        status="investigating",
        next_update_in="30",
        audience="public",
        channels=[],
        override_reason="",
        channels_ticked=False,
    )
    with pytest.raises(ValueError, match=r"next update in: '30' has no unit.*30m"):
        form.draft(rt, inc, author=None)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "toml",
    [
        "[severity.major]\ncadence = 30\n",
        "[promise]\nremind_before = 5\n",
        "[lifecycle]\nflap_window = 2.5\n",
    ],
)
def test_policy_durations_need_units(toml: str) -> None:
    with pytest.raises(ConfigurationError) as raised:
        parse_policy(toml, "policy.toml")
    message = str(raised.value)
    assert message.startswith("policy.toml: ")
    assert "no unit" in message and "30m" in message


def test_policy_durations_with_units_load() -> None:
    policy = parse_policy('[promise]\nremind_before = "5m"\n[lifecycle]\nflap_window = 0\n', "policy.toml")
    assert policy.promise.remind_before == timedelta(minutes=5)
    assert policy.lifecycle.flap_window == timedelta(0)
