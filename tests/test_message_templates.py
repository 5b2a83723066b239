"""The message templates library: words prepared before the outage, in English and French, checked by
the same guardrails and budgets as any update, and used with a few values filled in."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from channels.base import ChannelKind
from dispatcher.comms import guardrails, languages
from dispatcher.comms.incidents import get_incident
from dispatcher.comms.message_templates import check_library, draft_from_template, library
from dispatcher.comms.publish import publish
from dispatcher.config.message_templates import load_library
from dispatcher.domain.crisis import ImpactStatement
from dispatcher.domain.errors import ConfigurationError, InvalidInput, NotFound
from dispatcher.domain.models import IncidentStatus, Severity, UpdateState
from dispatcher.engine.runtime import Runtime
from dispatcher.rendering.renderer import RenderContext
from tests.helpers import RecordingQueue, incident

SITUATIONS = {
    "first-notice",
    "investigating-no-eta",
    "identified-workaround",
    "degraded",
    "third-party",
    "partial-recovery",
    "monitoring",
    "resolved",
    "follow-up",
    "security-first-notice",
}
STATUS = "https://status.acme.example"


@pytest.fixture
def acme(make_runtime: Callable[..., Runtime]) -> Runtime:
    return make_runtime(organisation="Acme", status_page_url=STATUS)


def test_the_starter_set_covers_every_situation_in_english_and_french(acme: Runtime) -> None:
    found = library(acme).templates
    assert set(found) >= SITUATIONS
    for name in SITUATIONS:
        assert found[name].starter
        assert found[name].template.languages() == ["en", "fr"], name
    assert found["first-notice"].template.pre_approved
    assert not found["security-first-notice"].template.pre_approved


def test_the_starter_templates_pass_the_guardrails_and_budgets_in_every_locale(acme: Runtime) -> None:
    found, reports = check_library(acme)
    assert found.problems == []
    assert {r.name for r in reports} >= SITUATIONS
    for report in reports:
        assert report.notes == [], (report.name, report.notes)


def test_every_starter_template_publishes_without_a_guardrail_finding(acme: Runtime) -> None:
    """As an update about a real incident: every language and channel text through publish's checks."""
    inc = incident(acme, Severity.CRITICAL, ["Payments", "Checkout"])
    for name in sorted(SITUATIONS):
        template = library(acme).get(name).template
        values = {n: v.example or n for n, v in template.variables.items()}
        draft = draft_from_template(acme, inc.id, name, values, author="alice")
        # The impact statement is the incident's, given at publishing (a template cannot know it).
        draft = draft.model_copy(update={"impact_statement": ImpactStatement(who="customers paying by card")})
        findings = guardrails.check_draft(acme, inc, draft) + languages.draft_findings(acme, inc, draft)
        assert findings == [], (name, findings)
        assert set(draft.texts or {}) <= {"en", "fr"}
        assert draft.texts is not None and draft.texts["fr"].message, name


def test_a_template_fills_components_and_values_per_language(acme: Runtime) -> None:
    inc = incident(acme, Severity.MAJOR, ["Payments"])
    draft = draft_from_template(
        acme,
        inc.id,
        "degraded",
        {"workaround": "Retry after a minute.", "workaround.fr": "Réessayez dans une minute."},
        author="alice",
    )
    assert draft.status is IncidentStatus.INVESTIGATING
    assert draft.template == "degraded"
    assert draft.message == (
        "Since {started}, requests to Payments have been slower than usual and some may fail. "
        "Retry after a minute. We are working on it and are sorry for the disruption."
    )
    assert draft.texts is not None
    assert "Réessayez dans une minute." in (draft.texts["fr"].message or "")

    no_workaround = draft_from_template(acme, inc.id, "degraded", {}, author="alice")
    assert "fail. We are working" in no_workaround.message, "an optional value left out leaves no gap"


def test_the_promise_is_the_templates_or_the_severitys_cadence(acme: Runtime) -> None:
    inc = incident(acme, Severity.MAJOR)
    now = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
    assert draft_from_template(acme, inc.id, "degraded", {}, author="a", start=now).next_update_at == now + (
        timedelta(minutes=30)
    )
    first = draft_from_template(acme, inc.id, "first-notice", {}, author="a", start=now)
    assert first.next_update_at == now + timedelta(hours=1), "major: the policy's 60 minute cadence"
    assert draft_from_template(acme, inc.id, "resolved", {}, author="a").next_update_at is None


@pytest.mark.parametrize(
    ("values", "problem"),
    [
        ({}, "vars.impact: template 'identified-workaround' needs it"),
        ({"impact": "x", "workaround": "y", "colour": "z"}, "vars.colour: .* has no such value"),
    ],
)
def test_missing_and_unknown_values_are_named(acme: Runtime, values: dict[str, str], problem: str) -> None:
    inc = incident(acme)
    with pytest.raises(InvalidInput, match=problem):
        draft_from_template(acme, inc.id, "identified-workaround", values, author="a")
    with pytest.raises(NotFound, match="no message template 'degradd'"):
        draft_from_template(acme, inc.id, "degradd", {}, author="a")


def test_a_pre_approved_template_used_as_written_needs_no_second_person(acme: Runtime) -> None:
    inc = incident(acme, Severity.CRITICAL, ["Payments"])  # critical: the policy wants approval
    queue = RecordingQueue()

    as_written = publish(acme, draft_from_template(acme, inc.id, "first-notice", {}, author="alice"), queue)
    assert as_written.update.state is UpdateState.PENDING
    assert as_written.update.template == "first-notice"

    edited = draft_from_template(acme, inc.id, "first-notice", {}, author="alice")
    edited = edited.model_copy(update={"message": edited.message + " Card payments fail."})
    assert publish(acme, edited, queue).update.state is UpdateState.PENDING_APPROVAL

    values = {"affected": "Some addresses.", "not_affected": "Passwords are not.", "what_to_do": "Nothing."}
    security = draft_from_template(acme, inc.id, "security-first-notice", values, author="alice")
    assert publish(acme, security, queue).update.state is UpdateState.PENDING_APPROVAL


def test_started_reads_in_each_readers_time(acme: Runtime) -> None:
    inc = incident(acme, Severity.MAJOR, ["Payments"])
    draft = draft_from_template(acme, inc.id, "degraded", {}, author="a")
    opened = get_incident(acme, inc.id).opened_at
    context = RenderContext.from_models(
        get_incident(acme, inc.id),
        publish(acme, draft, RecordingQueue()).update,
        "Acme",
        STATUS,
    )
    sms = acme.renderer.render(ChannelKind.SMS, context, "en", zone="Asia/Tokyo", now=opened)
    local = opened.astimezone(ZoneInfo("Asia/Tokyo"))
    assert f"Since {local:%-I:%M} {local:%p} JST," in sms.text


def write(folder: Path, name: str, text: str) -> None:
    folder.mkdir(exist_ok=True)
    (folder / f"{name}.toml").write_text(text, encoding="utf-8")


GOOD = """title = "Payments down"
status = "identified"
[texts.en]
message = "Card payments fail. {workaround} We are sorry."
[variables.workaround]
description = "what to do"
"""


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (GOOD.replace("{workaround}", "{workaroud}"), r"texts.en.message: unknown placeholder \{workaroud\}"),
        (GOOD.replace("{workaround}", "Next update by {next_update}."), "set next_update_in instead"),
        (GOOD.replace('status = "identified"', 'status = "broken"'), "status: Input should be"),
        (GOOD.replace('title = "Payments down"', 'title = "x"\ncolour = "red"'), "colour: Extra inputs"),
        (GOOD.replace("message =", "sms ="), "texts.en.message: every language needs its message"),
        (GOOD.replace("[texts.en]", '[texts."english!"]'), "texts.english!: 'english!' is not a locale"),
        ("title = ", "not valid TOML"),
    ],
)
def test_a_broken_template_file_is_named_with_its_field(
    make_runtime: Callable[..., Runtime], tmp_path: Path, text: str, problem: str
) -> None:
    folder = tmp_path / "message-templates"
    write(folder, "payments-down", text)
    rt = make_runtime(message_templates_dir=folder)
    loose = load_library(rt.settings, strict=False)
    assert len(loose.problems) == 1 and str(folder / "payments-down.toml") in loose.problems[0]
    assert re.search(problem, loose.problems[0]), loose.problems[0]
    with pytest.raises(ConfigurationError, match=r"payments-down\.toml"):
        load_library(rt.settings)


def test_your_templates_add_to_and_replace_the_starter_set(
    make_runtime: Callable[..., Runtime], tmp_path: Path
) -> None:
    folder = tmp_path / "message-templates"
    write(folder, "payments-down", GOOD)
    write(folder, "resolved", GOOD.replace('"identified"', '"resolved"'))
    found = library(make_runtime(message_templates_dir=folder)).templates
    assert not found["payments-down"].starter and found["payments-down"].path == folder / "payments-down.toml"
    assert not found["resolved"].starter and found["resolved"].template.title == "Payments down"
    assert found["degraded"].starter
