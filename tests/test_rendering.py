"""Rendering one update for every channel: copy, locales, user overrides and broken templates."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from channels.base import ChannelKind
from dispatcher.domain.locales import locale_candidates
from dispatcher.domain.models import Incident, IncidentStatus, Severity, Update, UpdateState
from dispatcher.rendering.renderer import (
    EarlierUpdate,
    RenderContext,
    Renderer,
    TemplateProblem,
    validate_templates,
)


@pytest.fixture
def context() -> RenderContext:
    incident = Incident(
        id=42,
        title="Payments API errors",
        status=IncidentStatus.INVESTIGATING,
        severity=Severity.CRITICAL,
        components=["Payments API", "Checkout"],
        opened_at=datetime(2024, 3, 1, 13, 2, tzinfo=UTC),
        updated_at=datetime(2024, 3, 1, 13, 40, tzinfo=UTC),
    )
    update = Update(
        id=7,
        incident_id=42,
        status=IncidentStatus.INVESTIGATING,
        message="Card payments are failing for some customers.\nWe are rolling back a deploy.",
        # 15:30 in Paris is 14:30 UTC: with no zone of their own, readers get UTC
        next_update_at=datetime(2024, 3, 1, 15, 30, tzinfo=timezone(timedelta(hours=1))),
        audience="public",
        channels=[ChannelKind.EMAIL],
        idempotency_key=None,
        state=UpdateState.PENDING,
        published_at=datetime(2024, 3, 1, 13, 45, tzinfo=UTC),
    )
    return RenderContext.from_models(incident, update, "Acme", "https://status.acme.test")


def test_email_puts_status_and_severity_first_then_the_facts(context: RenderContext) -> None:
    message = Renderer().render(ChannelKind.EMAIL, context)

    assert message.kind == ChannelKind.EMAIL
    assert (message.update_id, message.incident_id) == (7, 42)
    assert message.subject.startswith("[Critical · Investigating] Payments API errors")
    assert message.text.startswith("CRITICAL INCIDENT · Investigating\nPayments API errors")
    assert "Card payments are failing" in message.text
    assert "Affected: Payments API, Checkout" in message.text
    assert "Next update by today, 2:30 PM UTC." in message.text
    assert "https://status.acme.test" in message.text
    assert message.html is not None and 'href="https://status.acme.test"' in message.html
    assert 'by <time datetime="2024-03-01T14:30:00Z">today, 2:30 PM UTC</time>' in message.html


def test_html_escapes_the_message_but_text_keeps_it(context: RenderContext) -> None:
    hostile = context.model_copy(update={"message": "<script>alert('x')</script> & more"})
    message = Renderer().render(ChannelKind.EMAIL, hostile)

    assert message.html is not None
    assert "<script>" not in message.html
    assert "&lt;script&gt;" in message.html
    assert "<script>alert('x')</script> & more" in message.text  # plain text is not HTML


def test_resolved_update_says_so_and_promises_nothing(context: RenderContext) -> None:
    resolved = context.model_copy(
        update={"update_status": IncidentStatus.RESOLVED, "next_update_at": None, "status_page_url": None}
    )
    message = Renderer().render(ChannelKind.EMAIL, resolved)
    assert message.subject.startswith("[Resolved] Payments API errors")
    assert "Next update" not in message.text
    assert "http" not in message.text


def test_sms_and_social_are_one_normalised_line(context: RenderContext) -> None:
    renderer = Renderer()
    for kind in (ChannelKind.SMS, ChannelKind.SOCIAL):
        text = renderer.render(kind, context).text
        assert "\n" not in text and "  " not in text
        assert "Next update by 2:30 PM UTC" in text
        assert text.endswith("https://status.acme.test")
    assert (
        Renderer()
        .render(ChannelKind.SMS, context)
        .text.startswith("Acme: CRITICAL - Investigating: Payments API errors. Card payments")
    )


def test_webhook_body_is_the_documented_json_document(context: RenderContext) -> None:
    message = Renderer().render(ChannelKind.WEBHOOK, context)
    assert message.json_body is not None
    document = json.loads(message.json_body)
    assert document == {
        "type": "incident.update",
        "incident": {
            "id": 42,
            "kind": "incident",
            "title": "Payments API errors",
            "status": "investigating",
            "severity": "critical",
            "components": ["Payments API", "Checkout"],
            "opened_at": "2024-03-01T13:02:00Z",
        },
        "update": {
            "id": 7,
            "status": "investigating",
            "message": "Card payments are failing for some customers.\nWe are rolling back a deploy.",
            "next_update_at": "2024-03-01T14:30:00Z",
            "published_at": "2024-03-01T13:45:00Z",
            "internal": False,
        },
        "earlier_updates": [],
        "organisation": {"name": "Acme", "status_page_url": "https://status.acme.test"},
    }


def test_updates_the_recipient_missed_are_carried_by_the_next_message(context: RenderContext) -> None:
    missed = EarlierUpdate(
        id=6,
        status=IncidentStatus.INVESTIGATING,
        message="Card payments <fail>.",
        published_at=datetime(2024, 3, 1, 13, 30, tzinfo=UTC),
    )
    with_earlier = context.model_copy(update={"earlier": (missed,)})
    renderer = Renderer()

    email = renderer.render(ChannelKind.EMAIL, with_earlier)
    assert "today, 1:30 PM UTC, Investigating: Card payments <fail>." in email.text
    assert "Card payments &lt;fail&gt;." in (email.html or "")
    sms = renderer.render(ChannelKind.SMS, with_earlier).text
    assert "Earlier: 1:30 PM UTC: Card payments <fail>." in sms
    hook = json.loads(renderer.render(ChannelKind.WEBHOOK, with_earlier).json_body or "")
    assert hook["earlier_updates"] == [
        {
            "id": 6,
            "status": "investigating",
            "message": "Card payments <fail>.",
            "published_at": "2024-03-01T13:30:00Z",
        }
    ]
    assert "Avant" in renderer.render(ChannelKind.SMS, with_earlier, "fr").text
    # A chat room is a broadcast: the organisation's zone, with UTC beside it, in the room's language.
    chat = renderer.render(ChannelKind.CHAT, with_earlier, zone="Europe/Paris").text
    assert "- 2:30 PM CET (1:30 PM UTC), Investigating: Card payments <fail>." in chat
    french = renderer.render(ChannelKind.CHAT, with_earlier, "fr", zone="Europe/Paris").text
    assert "- 14:30 CET (13:30 UTC), Analyse en cours : Card payments <fail>." in french, french


def test_webhook_without_next_update_has_null(context: RenderContext) -> None:
    message = Renderer().render(ChannelKind.WEBHOOK, context.model_copy(update={"next_update_at": None}))
    assert message.json_body is not None
    assert json.loads(message.json_body)["update"]["next_update_at"] is None


def test_chat_is_markdown(context: RenderContext) -> None:
    text = Renderer().render(ChannelKind.CHAT, context).text
    assert text.startswith("**CRITICAL · Investigating** · Payments API errors")
    assert "[Status page](https://status.acme.test)" in text


@pytest.mark.parametrize(
    ("locale", "clock"), [("fr", "14:30"), ("fr-CA", "14 h 30"), ("fr_ca", "14 h 30")]
)
def test_french_subscribers_get_french(context: RenderContext, locale: str, clock: str) -> None:
    renderer = Renderer()
    email = renderer.render(ChannelKind.EMAIL, context, locale)
    assert email.subject.startswith("[Critique · Analyse en cours]")
    assert f"Prochaine mise à jour avant aujourd'hui, {clock} UTC." in email.text
    assert email.html is not None and 'lang="fr"' in email.html
    assert "Services concernés" in renderer.render(ChannelKind.SMS, context, locale).text


@pytest.mark.parametrize("locale", ["de", "en", "en-GB", "", "../../etc"])
def test_other_locales_fall_back_to_english(context: RenderContext, locale: str) -> None:
    assert Renderer().render(ChannelKind.EMAIL, context, locale).subject.startswith("[Critical")


def test_locale_candidates() -> None:
    assert locale_candidates("fr_ca") == ["fr-CA", "fr"]
    assert locale_candidates("EN") == ["en"]
    assert locale_candidates("../x") == []


def test_a_user_override_wins(tmp_path: Path, context: RenderContext) -> None:
    (tmp_path / "sms").mkdir()
    (tmp_path / "sms" / "body.txt.j2").write_text(
        "{{ organisation }} status: {{ update.status }} -\n  {{ update.message }}\n"
    )
    renderer = Renderer(tmp_path)
    assert renderer.render(ChannelKind.SMS, context).text == (
        "Acme status: investigating - Card payments are failing for some customers. "
        "We are rolling back a deploy."
    )
    # files the user did not override still come from the packaged set
    assert renderer.render(ChannelKind.EMAIL, context).subject.startswith("[Critical")


def test_a_broken_override_names_the_file_and_line(tmp_path: Path, context: RenderContext) -> None:
    (tmp_path / "email").mkdir()
    broken = tmp_path / "email" / "subject.txt.j2"
    broken.write_text("Incident\n{{ incident.title }\n")

    with pytest.raises(TemplateProblem) as caught:
        Renderer(tmp_path).render(ChannelKind.EMAIL, context)

    problem = caught.value
    assert str(broken) in str(problem) and problem.line == 2
    assert "syntax error" in str(problem)
    assert "\n" not in str(problem)


def test_an_undefined_variable_is_an_error_not_a_blank(tmp_path: Path, context: RenderContext) -> None:
    (tmp_path / "sms").mkdir()
    bad = tmp_path / "sms" / "body.txt.j2"
    bad.write_text("{{ organisation }}\n{{ update.mesage }}\n")

    with pytest.raises(TemplateProblem) as caught:
        Renderer(tmp_path).render(ChannelKind.SMS, context)
    assert str(caught.value).startswith(f"{bad}:2: undefined")
    assert "mesage" in str(caught.value)


def test_a_webhook_override_that_is_not_json_fails_clearly(tmp_path: Path, context: RenderContext) -> None:
    (tmp_path / "webhook").mkdir()
    (tmp_path / "webhook" / "body.json.j2").write_text('{"title": "{{ incident.title }}",}')
    with pytest.raises(TemplateProblem, match=r"body\.json\.j2: rendered output is not valid JSON"):
        Renderer(tmp_path).render(ChannelKind.WEBHOOK, context)


def test_the_sandbox_blocks_reaching_into_python(tmp_path: Path, context: RenderContext) -> None:
    (tmp_path / "sms").mkdir()
    (tmp_path / "sms" / "body.txt.j2").write_text("{{ ''.__class__.__mro__[1].__subclasses__() }}")
    with pytest.raises(TemplateProblem, match="sandbox"):
        Renderer(tmp_path).render(ChannelKind.SMS, context)


def test_a_missing_override_directory_is_reported(tmp_path: Path) -> None:
    with pytest.raises(TemplateProblem, match="does not exist"):
        Renderer(tmp_path / "nope")


def test_the_packaged_templates_pass_their_own_check() -> None:
    assert validate_templates(None) == []


def test_check_lists_every_problem_in_a_user_folder(tmp_path: Path) -> None:
    (tmp_path / "email").mkdir()
    (tmp_path / "fr" / "sms").mkdir(parents=True)
    (tmp_path / "email" / "subject.txt.j2").write_text("{% if %}")
    (tmp_path / "email" / "subjet.txt.j2").write_text("typo in the file name")
    (tmp_path / "fr" / "sms" / "body.txt.j2").write_text("{{ nope }}")

    problems = [str(p) for p in validate_templates(tmp_path)]

    assert any("email/subject.txt.j2:1: syntax error" in p for p in problems)
    assert any("subjet.txt.j2: not a template Tocsin uses" in p for p in problems)
    assert any("fr/sms/body.txt.j2:1: undefined" in p for p in problems)


def test_naive_datetimes_are_taken_as_utc(context: RenderContext) -> None:
    naive = context.model_copy(update={"next_update_at": datetime(2024, 3, 1, 9, 5)})
    naive = RenderContext.model_validate(naive.model_dump())
    assert "Next update by today, 9:05 AM UTC." in Renderer().render(ChannelKind.EMAIL, naive).text
