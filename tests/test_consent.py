"""Consent: double opt-in signup, RFC 8058 one-click unsubscribe, SMS STOP/START/HELP.

Driven as people and providers do: the real HTTP app (FastAPI TestClient), the real SendGrid SDK against
the local SendGrid emulator, real SMTP to an aiosmtpd server, and the outbox; the ledger says what was
owed and what was suppressed."""

from __future__ import annotations

import email
import email.policy
import html
import json
import os
import re
from collections.abc import Callable, Iterator
from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from aiohttp import web
from fastapi.testclient import TestClient
from sqlalchemy import select
from twilio.request_validator import RequestValidator

from channels.base import ChannelKind
from dispatcher.audience import consent
from dispatcher.audience.subscribers import add_subscribers
from dispatcher.config import keys
from dispatcher.config.settings import Settings
from dispatcher.domain.errors import ConfigurationError, InvalidInput
from dispatcher.domain.models import ContactPoint, Subscriber
from dispatcher.engine.runtime import Runtime
from dispatcher.store.schema import contact_points
from dispatcher.web.app import create_app
from tests.emulators import SendGridEmulator
from tests.helpers import draft, incident, publish_and_deliver, states
from tests.test_channel_smtp import CountingController, Sink
from tests.test_provider_callbacks import TOKEN as TWILIO_TOKEN

PUBLIC_URL = "https://status.example.com"
KEY = "consent-signing-key-for-tests-0123456789"
API_KEY = "SG.test-key"
LINK = re.compile(r"https://status\.example\.com(/[A-Za-z/]+\?token=[A-Za-z0-9._%-]+)")


class RecordingSendGrid(SendGridEmulator):
    """The SendGrid emulator, also keeping every request body as sent on the wire."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.bodies: list[dict[str, Any]] = []

    async def mail_send(self, request: web.Request) -> web.Response:
        self.bodies.append(json.loads(await request.read()))
        return await super().mail_send(request)

    def personalization_to(self, address: str) -> dict[str, Any]:
        for body in reversed(self.bodies):
            for personalization in body["personalizations"]:
                if personalization["to"][0]["email"] == address:
                    return dict(personalization)
        raise AssertionError(f"nothing was sent to {address}")


@pytest.fixture
def sendgrid() -> Iterator[RecordingSendGrid]:
    with RecordingSendGrid(api_key=API_KEY) as emulator:
        yield emulator


def sendgrid_settings(emulator: SendGridEmulator) -> dict[str, Any]:
    return {
        "public_url": PUBLIC_URL,
        "signing_key": KEY,
        "channels": {"email": {"providers": ["sendgrid"]}},
        "providers": {
            "sendgrid": {
                "api_key": API_KEY,
                "base_url": emulator.base_url,
                "from_email": "status@example.com",
            },
            "twilio": {"auth_token": TWILIO_TOKEN},
        },
    }


@pytest.fixture
def rt(make_runtime: Callable[..., Runtime], sendgrid: RecordingSendGrid) -> Runtime:
    return make_runtime(**sendgrid_settings(sendgrid))


@pytest.fixture
def client(rt: Runtime) -> Iterator[TestClient]:
    with TestClient(create_app(lambda: rt), base_url="http://testserver") as http:
        yield http


def point(rt: Runtime, address: str) -> Any:
    with rt.engine.connect() as conn:
        return conn.execute(select(contact_points).where(contact_points.c.address == address)).one()


def received_by(emulator: SendGridEmulator, address: str) -> list[dict[str, Any]]:
    return [m for m in emulator.received if m["email"] == address]


def path_of(link: str) -> str:
    parts = urlsplit(link)
    return f"{parts.path}?{parts.query}"


# --- double opt-in ---------------------------------------------------------------------------------


def test_double_opt_in_end_to_end(rt: Runtime, client: TestClient, sendgrid: RecordingSendGrid) -> None:
    add_subscribers(
        rt, [Subscriber(contact_points=[ContactPoint(channel=ChannelKind.EMAIL, address="old@example.com")])]
    )

    answer = client.post(
        "/subscribe", json={"email": "New.Person@Example.com", "locale": "fr", "components": []}
    )
    assert answer.status_code == 202
    assert answer.json() == {"status": "pending_confirmation", "email": "New.Person@example.com"}

    # One confirmation email, in French, with a signed link, through SendGrid; not a ledger row.
    [confirmation] = received_by(sendgrid, "New.Person@example.com")
    assert "Confirmez" in confirmation["subject"]
    assert "tocsin_delivery_id" not in confirmation["custom_args"]
    [link] = LINK.findall(confirmation["text"])
    assert link.startswith("/subscribe/confirm?token=")
    assert not point(rt, "New.Person@example.com").confirmed

    # Before confirming: owed nothing.
    before = publish_and_deliver(rt, draft(incident(rt), channels=[ChannelKind.EMAIL])).update.id
    assert (
        received_by(sendgrid, "old@example.com") and len(received_by(sendgrid, "New.Person@example.com")) == 1
    )
    assert states(rt, before) == {"sent": 1}

    page = client.get(link)
    assert page.status_code == 200 and "Subscription confirmed" in page.text
    assert point(rt, "New.Person@example.com").confirmed
    assert client.get(link).status_code == 200, "following the link twice is fine"

    after = publish_and_deliver(
        rt, draft(incident(rt), message="We found the cause.", channels=[ChannelKind.EMAIL])
    ).update.id
    assert states(rt, after) == {"sent": 2}
    update_mail = received_by(sendgrid, "New.Person@example.com")[-1]
    assert "We found the cause." in update_mail["text"] and "Publié" in update_mail["text"], (
        "the French templates"
    )


def test_signing_up_again_sends_nothing_to_a_confirmed_address(
    rt: Runtime, client: TestClient, sendgrid: RecordingSendGrid
) -> None:
    add_subscribers(
        rt,
        [Subscriber(contact_points=[ContactPoint(channel=ChannelKind.EMAIL, address="known@example.com")])],
    )

    answer = client.post("/subscribe", json={"email": "known@example.com"})

    assert answer.status_code == 202 and answer.json()["status"] == "pending_confirmation"
    assert received_by(sendgrid, "known@example.com") == []


def test_a_form_signup_gets_a_page_and_bad_input_is_named(rt: Runtime, client: TestClient) -> None:
    form = client.post("/subscribe", data={"email": "form@example.com", "components": "API, Dashboard"})
    assert form.status_code == 202 and "Check your inbox" in form.text
    with rt.engine.connect() as conn:
        from dispatcher.store.schema import subscribers

        stored = conn.execute(
            select(subscribers.c.components).where(
                subscribers.c.id == point(rt, "form@example.com").subscriber_id
            )
        ).scalar_one()
    assert stored == ["API", "Dashboard"]

    bad = client.post("/subscribe", json={"email": "not-an-address"})
    assert bad.status_code == 422
    assert bad.headers["content-type"] == "application/problem+json"
    assert bad.json()["errors"][0]["field"] == "email"
    assert client.post("/subscribe", json={"locale": "fr"}).json()["errors"][0]["field"] == "email"
    assert client.post("/subscribe", json={"email": "a@example.com", "locale": "???"}).status_code == 422
    assert client.post("/subscribe", data={"email": "nope"}).status_code == 422
    assert "form" in client.get("/subscribe").text


def test_forged_expired_and_misused_links_are_refused(
    rt: Runtime, client: TestClient, sendgrid: RecordingSendGrid
) -> None:
    signup = consent.request_signup(rt, "forge@example.com")
    [link] = LINK.findall(received_by(sendgrid, "forge@example.com")[0]["text"])
    token = link.split("token=")[1]
    purpose, point_id, expires, signature = token.split(".")

    forged = f"{purpose}.{int(point_id) + 1}.{expires}.{signature}"
    longer = f"{purpose}.{point_id}.{int(expires) + 86400}.{signature}"
    for bad in (forged, longer, token[:-2] + "xx"):
        assert client.get(f"/subscribe/confirm?token={bad}").status_code == 404, "no address matches it"
    assert client.get("/subscribe/confirm?token=garbage").status_code == 422, "not a link's shape"
    with pytest.raises(InvalidInput, match="unsubscribe link: malformed"):
        consent.unsubscribe(rt, token)  # a confirmation link is not an unsubscribe link
    assert not point(rt, "forge@example.com").confirmed

    clock_now = rt.clock.now()

    class Later:
        def now(self) -> Any:
            return clock_now + keys.CONFIRM_VALID_FOR + timedelta(minutes=1)

    rt.clock = Later()
    with pytest.raises(InvalidInput, match="expired"):
        consent.confirm(rt, token)
    assert signup.contact_point_id == point(rt, "forge@example.com").id


# --- one-click unsubscribe -------------------------------------------------------------------------


def test_one_click_unsubscribe_through_sendgrid_and_the_http_app(
    rt: Runtime, client: TestClient, sendgrid: RecordingSendGrid
) -> None:
    add_subscribers(
        rt,
        [
            Subscriber(contact_points=[ContactPoint(channel=ChannelKind.EMAIL, address=f"p{i}@example.com")])
            for i in range(2)
        ],
    )
    first = publish_and_deliver(rt, draft(incident(rt), channels=[ChannelKind.EMAIL])).update.id
    assert states(rt, first) == {"sent": 2}

    headers = {a: sendgrid.personalization_to(a)["headers"] for a in ("p0@example.com", "p1@example.com")}
    for sent in headers.values():
        assert sent["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert re.fullmatch(
            r"<https://status\.example\.com/unsubscribe\?token=[^>]+>", sent["List-Unsubscribe"]
        )
    assert headers["p0@example.com"] != headers["p1@example.com"], "each recipient has their own link"

    link = headers["p0@example.com"]["List-Unsubscribe"].strip("<>")
    page = client.get(path_of(link))
    assert page.status_code == 200 and "p0@example.com" in page.text and "<button" in page.text
    assert not point(rt, "p0@example.com").opted_out, "looking at the page changes nothing"

    # What a mail client does (RFC 8058): POST the form body to the link.
    answer = client.post(
        path_of(link),
        content=b"List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert answer.status_code == 200
    gone = point(rt, "p0@example.com")
    assert gone.opted_out and gone.opted_out_reason == "unsubscribe"
    assert client.post(path_of(link), data={"List-Unsubscribe": "One-Click"}).status_code == 200

    before = len(sendgrid.received)
    second = publish_and_deliver(
        rt, draft(incident(rt), message="Later news.", channels=[ChannelKind.EMAIL])
    ).update.id
    assert states(rt, second) == {"sent": 1, "suppressed": 1}
    assert [m["email"] for m in sendgrid.received[before:]] == ["p1@example.com"]

    assert client.post("/unsubscribe?token=u.1.9999999999.forged").status_code == 422
    assert client.post(f"/unsubscribe?token=u.1.9999999999.{'A' * 43}").status_code == 404
    assert client.get("/unsubscribe?token=").status_code == 422


@pytest.fixture
def smtp_sink() -> Iterator[tuple[Sink, CountingController]]:
    sink = Sink()
    controller = CountingController(sink, hostname="127.0.0.1", port=0)
    controller.start()
    try:
        yield sink, controller
    finally:
        controller.stop()


def test_the_smtp_message_carries_the_one_click_headers(
    make_runtime: Callable[..., Runtime], smtp_sink: tuple[Sink, CountingController]
) -> None:
    sink, controller = smtp_sink
    rt = make_runtime(
        public_url=PUBLIC_URL,
        signing_key=KEY,
        channels={"email": {"providers": ["smtp"]}},
        providers={
            "smtp": {
                "host": "127.0.0.1",
                "port": controller.port,
                "starttls": False,
                "from_email": "status@example.com",
            }
        },
    )
    add_subscribers(
        rt, [Subscriber(contact_points=[ContactPoint(channel=ChannelKind.EMAIL, address="smtp@example.com")])]
    )
    first = publish_and_deliver(rt, draft(incident(rt), channels=[ChannelKind.EMAIL])).update.id
    assert states(rt, first) == {"sent": 1}

    [(_, rcpts, message)] = sink.messages
    assert rcpts == ["smtp@example.com"]
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    link = str(message["List-Unsubscribe"]).strip("<>")
    assert link.startswith(f"{PUBLIC_URL}/unsubscribe?token=")

    with TestClient(create_app(lambda: rt)) as http:
        assert http.post(path_of(link), data={"List-Unsubscribe": "One-Click"}).status_code == 200
    second = publish_and_deliver(
        rt, draft(incident(rt), message="More.", channels=[ChannelKind.EMAIL])
    ).update.id
    assert states(rt, second) == {"suppressed": 1}
    assert len(sink.messages) == 1


def test_outbox_confirmation_and_no_link_without_a_public_url(
    make_runtime: Callable[..., Runtime], tmp_path: Path
) -> None:
    rt = make_runtime(signing_key=KEY)  # email through the outbox, no public_url configured
    with pytest.raises(ConfigurationError, match="public_url"):
        consent.request_signup(rt, "out@example.com")
    signup = consent.request_signup(rt, "out@example.com", base_url="http://localhost:8000/")

    [eml] = (tmp_path / "outbox").glob("update-0/email/*.eml")
    parsed = email.message_from_bytes(eml.read_bytes(), policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    assert parsed["Subject"].startswith("Confirm your subscription")
    body = parsed.get_body(("plain",))
    assert body is not None
    assert f"http://localhost:8000/subscribe/confirm?token=c.{signup.contact_point_id}." in body.get_content()

    add_subscribers(
        rt, [Subscriber(contact_points=[ContactPoint(channel=ChannelKind.EMAIL, address="x@example.com")])]
    )
    update_id = publish_and_deliver(rt, draft(incident(rt), channels=[ChannelKind.EMAIL])).update.id
    [mail] = (tmp_path / "outbox").glob(f"update-{update_id}/email/*.eml")
    assert "List-Unsubscribe" not in email.message_from_bytes(mail.read_bytes(), policy=email.policy.default)


# --- the signing key -------------------------------------------------------------------------------


def test_where_the_signing_key_comes_from(tmp_path: Path) -> None:
    assert keys.signing_key(Settings(signing_key="abc")) == b"abc"
    derived = keys.signing_key(Settings(webhook_secret="whsec_x"))
    assert derived != b"whsec_x" and derived == keys.signing_key(Settings(webhook_secret="whsec_x"))

    database = tmp_path / "data" / "tocsin.db"
    database.parent.mkdir()
    key = keys.signing_key(Settings(database_url=f"sqlite:///{database}"))
    key_file = tmp_path / "data" / "tocsin.db.signing-key"
    assert key_file.read_text().strip().encode() == key and len(key) == 64
    assert os.stat(key_file).st_mode & 0o777 == 0o600
    keys._file_keys.clear()  # as a second process would: read from the file, not made anew
    assert keys.signing_key(Settings(database_url=f"sqlite:///{database}")) == key

    with pytest.raises(ConfigurationError, match="TOCSIN_SIGNING_KEY"):
        keys.signing_key(Settings(database_url="postgresql://db.example/tocsin"))


# --- SMS keywords ----------------------------------------------------------------------------------


def twilio_post(client: TestClient, path: str, params: dict[str, str]) -> Any:
    """As Twilio calls back: signed over the public URL Tocsin is configured with."""
    signature = RequestValidator(TWILIO_TOKEN).compute_signature(PUBLIC_URL + path, params)
    return client.post(path, data=params, headers={"X-Twilio-Signature": signature})


def test_sms_stop_suppresses_start_resumes_and_help_answers(rt: Runtime, client: TestClient) -> None:
    add_subscribers(
        rt,
        [Subscriber(contact_points=[ContactPoint(channel=ChannelKind.SMS, address="+12025550142")])],
    )
    stop = twilio_post(client, "/providers/twilio/inbound", {"From": "+12025550142", "Body": "STOP"})
    assert stop.status_code == 200
    stopped = publish_and_deliver(rt, draft(incident(rt), channels=[ChannelKind.SMS])).update.id
    assert states(rt, stopped) == {"suppressed": 1}

    twilio_post(client, "/providers/twilio/inbound", {"From": "+12025550142", "Body": "start"})
    resumed = publish_and_deliver(
        rt, draft(incident(rt), message="Back.", channels=[ChannelKind.SMS])
    ).update.id
    assert states(rt, resumed) == {"sent": 1}

    help_reply = twilio_post(client, "/providers/twilio/inbound", {"From": "+12025550142", "Body": "HELP"})
    text = help_reply.text
    assert "<Message>" in text and "Reply STOP" in text and "START" in text


def test_sms_help_answers_with_the_numbers_own_manage_link(rt: Runtime, client: TestClient) -> None:
    """An outage SMS spends its budget on the news (and the STOP hint where carriers need it); a reader
    who asks for HELP gets their own signed link to the page where they change or stop what they get."""
    add_subscribers(
        rt,
        [Subscriber(contact_points=[ContactPoint(channel=ChannelKind.SMS, address="+12025550142")])],
    )
    reply = twilio_post(client, "/providers/twilio/inbound", {"From": "+12025550142", "Body": "HELP"})
    found = re.search(r"Manage your subscription: (\S+)</Message>", reply.text)
    assert found is not None, reply.text
    link = html.unescape(found.group(1))
    assert link.startswith(f"{PUBLIC_URL}/manage?token=")
    page = client.get(link.removeprefix(PUBLIC_URL))
    assert page.status_code == 200 and "+12025550142" in page.text

    stranger = twilio_post(client, "/providers/twilio/inbound", {"From": "+12025550199", "Body": "HELP"})
    assert "Reply STOP" in stranger.text and "manage" not in stranger.text.lower()
