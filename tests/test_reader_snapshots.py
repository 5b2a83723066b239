"""Each channel's rendering for readers in other time zones and languages, compared with expected
files written by hand (tests/snapshots/readers/): what a reader in Paris, New York, Los Angeles or
Berlin reads of the same update, posted at 23:40 UTC on 24 November with the next update promised
for 00:40 UTC."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from channels.base import MANAGE_URL_PLACEHOLDER, ChannelKind
from channels.text.fit import sms_budget, x_budget
from channels.text.sms_segments import count_segments
from dispatcher.domain.models import IncidentStatus, Severity
from dispatcher.domain.update_texts import LocaleText
from dispatcher.rendering.renderer import RenderContext, Renderer

SNAPSHOTS = Path(__file__).parent / "snapshots" / "readers"
POSTED = datetime(2026, 11, 24, 23, 40, tzinfo=UTC)
ORGANISATION_ZONE = "America/New_York"

CONTEXT = RenderContext(
    incident_id=42,
    incident_title="Card payments failing",
    incident_status=IncidentStatus.IDENTIFIED,
    incident_severity=Severity.MAJOR,
    components=("Payments", "Checkout"),
    opened_at=datetime(2026, 11, 24, 22, 55, tzinfo=UTC),
    update_id=7,
    update_status=IncidentStatus.IDENTIFIED,
    message="We found the cause: a faulty deploy at 22:50 UTC. We are rolling it back. We are sorry.",
    next_update_at=datetime(2026, 11, 25, 0, 40, tzinfo=UTC),
    published_at=POSTED,
    organisation="AcmePay",
    status_page_url="https://status.acmepay.example",
    texts={
        "fr": LocaleText(
            message=(
                "Nous avons trouvé la cause : un déploiement défectueux. Nous l'annulons. "
                "Nous sommes désolés."
            ),
            sms="Cause trouvée : un déploiement défectueux, retour arrière en cours. Désolés.",
        )
    },
    manage_url=MANAGE_URL_PLACEHOLDER,
)


def expected(name: str) -> str:
    return (SNAPSHOTS / name).read_text(encoding="utf-8").rstrip("\n")


def render(kind: ChannelKind, locale: str, zone: str, hint: bool = False) -> str:
    budget = sms_budget(2) if kind is ChannelKind.SMS else x_budget() if kind is ChannelKind.SOCIAL else None
    message = Renderer().render(
        kind, CONTEXT, locale, zone=zone, now=POSTED, sms_opt_out_hint=hint, budget=budget
    )
    if kind is ChannelKind.EMAIL:
        return f"Subject: {message.subject}\n\n{message.text}".rstrip("\n")
    return message.text


@pytest.mark.parametrize(
    ("snapshot", "kind", "locale", "zone", "hint"),
    [
        ("sms.fr.Europe-Paris.txt", ChannelKind.SMS, "fr", "Europe/Paris", False),
        ("sms.en.America-Los_Angeles.stop.txt", ChannelKind.SMS, "en", "America/Los_Angeles", True),
        ("email.fr.Europe-Paris.txt", ChannelKind.EMAIL, "fr", "Europe/Paris", False),
        ("email.en.America-New_York.txt", ChannelKind.EMAIL, "en", "America/New_York", False),
        ("email.de.Europe-Berlin.txt", ChannelKind.EMAIL, "de", "Europe/Berlin", False),
        # Broadcast: the organisation's zone, with UTC, in the default language.
        ("social.en.America-New_York.txt", ChannelKind.SOCIAL, "en", ORGANISATION_ZONE, False),
        ("chat.en.America-New_York.md", ChannelKind.CHAT, "en", ORGANISATION_ZONE, False),
    ],
)
def test_a_reader_gets_the_expected_text(
    snapshot: str, kind: ChannelKind, locale: str, zone: str, hint: bool
) -> None:
    assert render(kind, locale, zone, hint) == expected(snapshot)


def test_the_short_texts_fit_their_budgets() -> None:
    for name in ("sms.fr.Europe-Paris.txt", "sms.en.America-Los_Angeles.stop.txt"):
        assert count_segments(expected(name)).segments <= 2


def test_the_webhook_document_is_the_readers_language_with_machine_times() -> None:
    message = Renderer().render(ChannelKind.WEBHOOK, CONTEXT, "fr", zone="Europe/Paris", now=POSTED)
    assert json.loads(message.json_body or "") == json.loads(expected("webhook.fr.Europe-Paris.json"))


def test_the_html_email_carries_machine_readable_times_and_the_readers_link() -> None:
    html = Renderer().render(ChannelKind.EMAIL, CONTEXT, "fr", zone="Europe/Paris", now=POSTED).html or ""
    assert '<time datetime="2026-11-25T00:40:00Z">aujourd&#39;hui, 01:40 CET</time>' in html
    assert '<time datetime="2026-11-24T22:55:00Z">hier, 23:55 CET</time>' in html
    link = f'<a href="{MANAGE_URL_PLACEHOLDER}" style="color:#495057;">Gérer ou arrêter ces notifications</a>'
    assert link in html
