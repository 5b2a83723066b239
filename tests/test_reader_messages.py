"""Read as each recipient would: their time zone and day, the promise said once and never cut, SMS and X
within budget, a visible way to stop emails, and their own language.

Each test publishes through the real engine to the outbox provider (or the SendGrid emulator) and reads
what a recipient got."""

from __future__ import annotations

import email
import email.policy
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from channels.base import ChannelKind
from channels.text.sms_segments import count_segments
from channels.text.x_text import weighted_length
from dispatcher.audience.subscribers import add_subscribers
from dispatcher.comms.first_word import send_first_notice
from dispatcher.comms.preview import preview_draft
from dispatcher.comms.publish import publish
from dispatcher.comms.tick import run_tick
from dispatcher.domain.identity import Identity
from dispatcher.domain.models import ContactPoint, Incident, IncidentStatus, Subscriber, UpdateDraft
from dispatcher.engine.runtime import Runtime
from dispatcher.web.app import create_app
from tests.helpers import TimedStage, incident

STATUS = "https://status.acmepay.example"
# 04:00 UTC on 25 November is 23:00 on the 24th in New York and 05:00 on the 25th in Paris.
T0 = datetime(2026, 11, 25, 4, 0, tzinfo=UTC)
LONG = (
    "Since 03:40 UTC card payments at checkout fail for about a third of customers; your saved carts are "
    "kept and nothing was charged twice. We rolled back the 03:35 deploy and payments are recovering in "
    "Europe, but the US region still shows errors from the payment gateway, which we are working through "
    "with its on-call engineers. If a payment fails, wait a few minutes and try again; there is no need to "
    "contact support. We are sorry for the disruption this causes you and your customers."
)


def reader(
    n: int,
    *,
    zone: str | None = None,
    locale: str = "en",
    phone: str | None = None,
    mail: bool = True,
) -> Subscriber:
    points = [ContactPoint(channel=ChannelKind.EMAIL, address=f"reader{n}@example.com")] if mail else []
    if phone:
        points.append(ContactPoint(channel=ChannelKind.SMS, address=phone))
    return Subscriber(name=f"Reader {n}", locale=locale, timezone=zone, contact_points=points)


FAR = "promised beyond the cadence on purpose"
"""These promises lie beyond a major incident's hourly cadence (to cross midnight or a day): said why."""


class Stage(TimedStage):
    def publish(self, inc: Incident, text: str, promise: timedelta | None, **fields: Any) -> int:
        next_at = None if promise is None else self.clock.at + promise
        upd = UpdateDraft(
            incident_id=inc.id,
            status=fields.pop("status", IncidentStatus.INVESTIGATING),
            message=text,
            next_update_at=next_at,
            **fields,
        )
        published = publish(self.rt, upd, self.runner.queue).update
        self.runner.run_until_idle()
        return published.id

    def files(self, update_id: int, channel: ChannelKind) -> list[Path]:
        return sorted((self.outbox / f"update-{update_id}" / channel.value).glob("*.*"))

    def sms(self, update_id: int) -> dict[str, str]:
        """Phone number -> the SMS text it got."""
        docs = [json.loads(p.read_text()) for p in self.files(update_id, ChannelKind.SMS)]
        return {d["to"]: d["text"] for d in docs}

    def post(self, update_id: int, channel: ChannelKind) -> str:
        (path,) = self.files(update_id, channel)
        return str(json.loads(path.read_text())["text"])

    def emails(self, update_id: int) -> dict[str, email.message.EmailMessage]:
        found = {}
        for path in self.files(update_id, ChannelKind.EMAIL):
            message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
            assert isinstance(message, email.message.EmailMessage)
            found[email.utils.parseaddr(str(message["To"]))[1]] = message
        return found


def text_of(message: email.message.EmailMessage, kind: str = "plain") -> str:
    part = next(p for p in message.walk() if p.get_content_type() == f"text/{kind}")
    assert isinstance(part, email.message.EmailMessage)
    return str(part.get_content()).replace("\r\n", "\n")


@pytest.fixture
def stage(make_runtime: Any, tmp_path: Path) -> Stage:
    rt: Runtime = make_runtime(
        organisation="AcmePay",
        status_page_url=STATUS,
        public_url="https://tocsin.acmepay.example",
        signing_key="a-signing-key-for-the-tests-0123456789",
        channels={"chat": {"enabled": True, "providers": ["outbox"]}},
    )
    return Stage(rt, tmp_path / "outbox", T0)


def test_promises_read_in_the_readers_zone_with_the_day_when_it_is_not_today(stage: Stage) -> None:
    add_subscribers(
        stage.rt,
        [
            reader(1, zone="America/New_York", phone="+12125550101"),
            reader(2, zone="Europe/Paris", locale="fr"),
            reader(3, phone="+447700900123"),  # no zone: the organisation's (UTC)
        ],
    )
    inc = incident(stage.rt)
    first = stage.publish(
        inc,
        "Card payments fail for some customers. We are sorry.",
        timedelta(minutes=71),
        override_reason=FAR,
    )

    # 05:11 UTC: after midnight in New York, so "tomorrow" there; the same morning in Paris.
    assert "Next update by tomorrow, 12:11 AM EST." in stage.sms(first)["+12125550101"]
    mails = stage.emails(first)
    assert "Next update by tomorrow, 12:11 AM EST." in text_of(mails["reader1@example.com"])
    assert "Prochaine mise à jour avant aujourd'hui, 06:11 CET." in text_of(mails["reader2@example.com"])
    html = text_of(mails["reader1@example.com"], "html")
    assert '<time datetime="2026-11-25T05:11:00Z">tomorrow, 12:11 AM EST</time>' in html

    # A promise a day away names its day: it must not read like "now".
    second = stage.publish(
        inc, "Still failing for some customers. We are sorry.", timedelta(hours=24), override_reason=FAR
    )
    assert "Next update by tomorrow, 4:00 AM UTC." in stage.sms(second)["+447700900123"]
    assert "Next update by tomorrow, 11:00 PM EST." in stage.sms(second)["+12125550101"]
    third = stage.publish(
        inc, "Still failing for some customers. We are sorry.", timedelta(hours=48), override_reason=FAR
    )
    assert "Next update by Fri, Nov 27, 4:00 AM UTC." in stage.sms(third)["+447700900123"]


def test_broadcast_posts_use_the_organisations_zone_and_carry_utc(make_runtime: Any, tmp_path: Path) -> None:
    rt = make_runtime(status_page_url=STATUS, timezone="Europe/Paris")
    stage = Stage(rt, tmp_path / "outbox", T0)
    inc = incident(rt)
    upd = stage.publish(
        inc,
        "Card payments fail for some customers. We are sorry.",
        timedelta(minutes=90),
        override_reason=FAR,
    )
    assert "Next update by 6:30 AM CET (5:30 AM UTC)." in stage.post(upd, ChannelKind.SOCIAL)


def test_the_status_page_shows_times_in_the_organisations_zone_with_utc(
    make_runtime: Any, tmp_path: Path
) -> None:
    site = tmp_path / "www" / "status"
    rt = make_runtime(
        timezone="Europe/Paris",
        status_page_url=STATUS,
        channels={"statuspage": {"enabled": True, "providers": ["statuspage"]}},
        providers={"statuspage": {"directory": str(site), "components": ["checkout"]}},
    )
    stage = Stage(rt, tmp_path / "outbox", T0)
    upd = stage.publish(
        incident(rt), "Card payments fail for some customers. We are sorry.", timedelta(minutes=30)
    )

    page = (site / "index.html").read_text(encoding="utf-8")
    # 04:00 UTC is 05:00 in Paris: the page says both, and machines still read UTC.
    assert '<time datetime="2026-11-25T04:00:00Z">2026-11-25 05:00 CET (04:00 UTC)</time>' in page, page
    status = json.loads((site / "status.json").read_text(encoding="utf-8"))
    assert status["time_zone"] == "Europe/Paris" and upd


def test_the_holding_message_states_the_promise_once_on_every_channel(stage: Stage) -> None:
    add_subscribers(stage.rt, [reader(1, phone="+447700900123")])
    inc = incident(stage.rt)
    stage.publish(inc, "Card payments fail for some customers. We are sorry.", timedelta(minutes=30))
    stage.clock.advance(minutes=31)
    report = run_tick(stage.rt, stage.runner.queue)
    stage.runner.run_until_idle()
    (holding,) = report.holdings

    texts = {
        "sms": stage.sms(holding)["+447700900123"],
        "email": text_of(stage.emails(holding)["reader1@example.com"]),
        "social": stage.post(holding, ChannelKind.SOCIAL),
        "chat": stage.post(holding, ChannelKind.CHAT),
    }
    for channel, text in texts.items():
        assert text.count("Next update by") == 1, (channel, text)
        assert "There is no new information yet." in text, channel


def test_the_first_notice_states_the_promise_once_on_every_channel_in_the_readers_words(stage: Stage) -> None:
    add_subscribers(stage.rt, [reader(1, phone="+447700900123"), reader(2, zone="Europe/Paris", locale="fr")])
    inc = incident(stage.rt)
    notice = send_first_notice(stage.rt, inc.id, Identity("alice"), stage.runner.queue).update
    stage.runner.run_until_idle()

    texts = {
        "sms": stage.sms(notice.id)["+447700900123"],
        "email": text_of(stage.emails(notice.id)["reader1@example.com"]),
        "social": stage.post(notice.id, ChannelKind.SOCIAL),
        "chat": stage.post(notice.id, ChannelKind.CHAT),
    }
    for channel, text in texts.items():
        assert text.count("Next update by") == 1, (channel, text)
        assert "We are aware of a problem with checkout and are investigating." in text, channel
    french = text_of(stage.emails(notice.id)["reader2@example.com"])
    assert french.count("Prochaine mise à jour avant") == 1, french
    assert "Prochaine mise à jour avant aujourd'hui, 06:00 CET." in french


def test_an_x_post_cut_to_fit_keeps_its_status_promise_and_link(stage: Stage) -> None:
    inc = incident(stage.rt)
    upd = stage.publish(inc, LONG, timedelta(minutes=30))

    post = stage.post(upd, ChannelKind.SOCIAL)
    assert weighted_length(post) <= 280
    assert post.startswith("[Major] Investigating: Checkout failing.")
    assert "Next update by 4:30 AM UTC." in post
    assert post.endswith(STATUS)
    assert "…" in post  # the body, and only the body, was cut


def test_preview_flags_a_shortened_message_and_shows_what_readers_get(stage: Stage) -> None:
    inc = incident(stage.rt)
    upd = UpdateDraft(
        incident_id=inc.id,
        status=IncidentStatus.INVESTIGATING,
        message=LONG,
        next_update_at=T0 + timedelta(minutes=30),
    )
    result = preview_draft(stage.rt, upd)

    flagged = {f.rule: f for f in result.findings}
    social = next(c for c in result.channels if c.channel is ChannelKind.SOCIAL)
    assert social.shortened
    assert "social-shortened" in flagged and social.message.text in flagged["social-shortened"].message
    assert "sms-shortened" in flagged


def test_sms_fits_two_segments_ends_with_promise_link_and_stop_where_the_carrier_needs_it(
    stage: Stage,
) -> None:
    add_subscribers(stage.rt, [reader(1, phone="+12125550101"), reader(2, phone="+447700900123")])
    inc = incident(stage.rt)
    upd = stage.publish(inc, LONG, timedelta(minutes=30))

    got = stage.sms(upd)
    american, british = got["+12125550101"], got["+447700900123"]
    for text in (american, british):
        assert count_segments(text).segments <= 2, text
        assert text.startswith("AcmePay: MAJOR - Investigating: Checkout failing.")
        assert "Next update by 4:30 AM UTC." in text
    assert american.endswith(f"{STATUS} Reply STOP to opt out.")
    assert british.endswith(STATUS)


def test_sms_budget_is_configurable(make_runtime: Any, tmp_path: Path) -> None:
    rt = make_runtime(status_page_url=STATUS, channels={"sms": {"max_segments": 1}})
    stage = Stage(rt, tmp_path / "outbox", T0)
    add_subscribers(rt, [reader(1, phone="+447700900123", mail=False)])
    upd = stage.publish(incident(rt), LONG, timedelta(minutes=30))
    (text,) = stage.sms(upd).values()
    assert count_segments(text).segments == 1 and "Next update by" in text and text.endswith(STATUS)


def test_every_email_shows_its_own_manage_or_stop_link_in_the_body(stage: Stage) -> None:
    add_subscribers(stage.rt, [reader(1), reader(2, locale="fr")])
    upd = stage.publish(incident(stage.rt), "Card payments fail. We are sorry.", timedelta(minutes=30))

    links = {}
    for address, message in stage.emails(upd).items():
        one_click = re.fullmatch(r"<(.+)>", str(message["List-Unsubscribe"]))
        assert one_click is not None, address
        assert one_click.group(1).startswith("https://tocsin.acmepay.example/unsubscribe?token=")
        helped = re.fullmatch(r"<(.+)>", str(message["List-Help"]))
        assert helped is not None, address
        link = helped.group(1)
        assert link.startswith("https://tocsin.acmepay.example/manage?token=")
        french = address == "reader2@example.com"
        label = "Gérer ou arrêter ces notifications" if french else "Manage or stop these updates"
        assert f"{label}{' :' if french else ':'} {link}" in text_of(message)
        assert f'<a href="{link}" style="color:#495057;">{label}</a>' in text_of(message, "html")
        links[address] = link
    assert len(set(links.values())) == 2  # each reader their own

    # The link opens the reader's own self-service page, where they change what they get or stop it all.
    with TestClient(create_app(lambda: stage.rt)) as http:
        for address, link in links.items():
            page = http.get(link.removeprefix("https://tocsin.acmepay.example"))
            assert page.status_code == 200 and address in page.text, page.text
        stopped = http.post(
            links["reader1@example.com"].removeprefix("https://tocsin.acmepay.example"),
            data={"action": "stop"},
        )
    assert stopped.status_code == 200 and "you will get no more updates" in stopped.text
    later = stage.publish(incident(stage.rt), "Checkout fails again. We are sorry.", timedelta(minutes=30))
    assert set(stage.emails(later)) == {"reader2@example.com"}


def test_a_french_reader_gets_the_french_text_or_a_marked_fallback(stage: Stage) -> None:
    from dispatcher.domain.update_texts import LocaleText  # here: main had no texts per language

    add_subscribers(stage.rt, [reader(1, locale="fr"), reader(2, locale="fr-CA"), reader(3)])
    inc = incident(stage.rt)
    french = LocaleText(
        message="Les paiements par carte échouent pour certains clients. Nous sommes désolés.",
        sms="Paiements par carte en échec.",
    )
    english = "Card payments fail for some customers. We are sorry."
    upd = stage.publish(inc, english, timedelta(minutes=30), texts={"fr": french})
    mails = stage.emails(upd)
    for address in ("reader1@example.com", "reader2@example.com"):
        body = text_of(mails[address])
        assert "Les paiements par carte échouent" in body and "Card payments" not in body
        assert body.startswith("INCIDENT MAJEUR · Analyse en cours")
    assert "Card payments fail" in text_of(mails["reader3@example.com"])

    english_only = stage.publish(inc, "Still failing. We are sorry.", timedelta(minutes=30))
    body = text_of(stage.emails(english_only)["reader1@example.com"])
    assert "Cette mise à jour n'est disponible qu'en anglais.\n\nStill failing. We are sorry." in body
