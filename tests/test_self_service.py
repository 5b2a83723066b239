"""Self-service subscriptions over HTTP as a person or a program drives them: a code texted through the
Twilio emulator, a verification ping a webhook endpoint must answer, the signed manage page, rate limits
and answers that never tell who subscribes."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from standardwebhooks import Webhook

from channels.base import ChannelKind
from dispatcher.audience.subscribers import add_subscribers
from dispatcher.domain.models import ContactPoint, Severity, Subscriber
from dispatcher.engine.runtime import Runtime
from dispatcher.store.schema import contact_points, subscribers
from dispatcher.web.app import create_app
from tests.emulators import SendGridEmulator, TwilioEmulator, WebhookReceiver
from tests.helpers import draft, incident, publish_and_deliver

PUBLIC_URL = "https://status.example.com"
SID, TOKEN, FROM = "AC" + "1" * 32, "twilio-token", "+12025550100"
CODE = re.compile(r"your code is (\d{6})")
MANAGE = re.compile(r"https://status\.example\.com(/manage\?token=[A-Za-z0-9._%-]+)")


@pytest.fixture
def twilio() -> Iterator[TwilioEmulator]:
    with TwilioEmulator(account_sid=SID, auth_token=TOKEN) as emulator:
        yield emulator


@pytest.fixture
def hooks() -> Iterator[WebhookReceiver]:
    with WebhookReceiver(verify=False, answer_challenges=True, responses={"/mute": 204}) as receiver:
        yield receiver


@pytest.fixture
def sendgrid() -> Iterator[SendGridEmulator]:
    with SendGridEmulator(api_key="SG.key") as emulator:
        yield emulator


def settings_for(twilio: TwilioEmulator, sendgrid: SendGridEmulator) -> dict[str, Any]:
    return {
        "public_url": PUBLIC_URL,
        "signing_key": "self-service-signing-key-0123456789abcdef",
        "channels": {
            "email": {"providers": ["sendgrid"]},
            "sms": {"providers": ["twilio"]},
            "webhook": {"providers": ["webhook"]},
        },
        "providers": {
            "twilio": {
                "account_sid": SID,
                "auth_token": TOKEN,
                "from_number": FROM,
                "base_url": twilio.base_url,
            },
            "sendgrid": {
                "api_key": "SG.key",
                "base_url": sendgrid.base_url,
                "from_email": "status@example.com",
            },
            "webhook": {"allow_destinations": ["127.0.0.0/8"], "timeout": 5},
            "statuspage": {"components": ["API", "Checkout"]},
        },
    }


@pytest.fixture
def rt(make_runtime: Callable[..., Runtime], twilio: TwilioEmulator, sendgrid: SendGridEmulator) -> Runtime:
    return make_runtime(**settings_for(twilio, sendgrid))


@pytest.fixture
def client(rt: Runtime) -> Iterator[TestClient]:
    with TestClient(create_app(lambda: rt), base_url="http://testserver") as http:
        yield http


def texts_to(twilio: TwilioEmulator, number: str) -> list[str]:
    return [m["body"] for m in twilio.received if m["to"] == number]


def point(rt: Runtime, address: str) -> Any:
    with rt.engine.connect() as conn:
        return conn.execute(select(contact_points).where(contact_points.c.address == address)).one()


def path_of(link: str) -> str:
    parts = urlsplit(link)
    return f"{parts.path}?{parts.query}"


def test_a_number_confirmed_by_the_code_we_texted_then_gets_updates(
    rt: Runtime, client: TestClient, twilio: TwilioEmulator
) -> None:
    page = client.post(
        "/subscribe",
        data={
            "channel": "sms",
            "phone": "+1 (202) 555-0143",
            "components": "Checkout",
            "min_severity": "major",
        },
    )
    assert page.status_code == 202 and "Enter the code we texted you" in page.text
    [text] = texts_to(twilio, "+12025550143")
    code = CODE.search(text)
    assert code is not None, text
    action = re.search(r'action="(/subscribe/verify\?token=[^"]+)"', page.text)
    assert action is not None
    assert not point(rt, "+12025550143").confirmed

    wrong = client.post(
        action.group(1).replace("&amp;", "&"),
        data={"code": "000000" if code.group(1) != "000000" else "111111"},
    )
    assert wrong.status_code == 409 and "not the code we sent; 4 tries left" in wrong.text
    right = client.post(action.group(1).replace("&amp;", "&"), data={"code": code.group(1)})
    assert right.status_code == 200 and "Subscription confirmed" in right.text
    assert 'id="manage-link"' in right.text
    assert point(rt, "+12025550143").confirmed
    with rt.engine.connect() as conn:
        stored = conn.execute(
            select(subscribers.c.components, subscribers.c.min_severity_rank).where(
                subscribers.c.id == point(rt, "+12025550143").subscriber_id
            )
        ).one()
    assert (stored.components, stored.min_severity_rank) == (["Checkout"], Severity.MAJOR.rank)

    publish_and_deliver(
        rt, draft(incident(rt, components=["Checkout"]), "Checkout is failing.", channels=[ChannelKind.SMS])
    )
    assert any("Checkout is failing." in t for t in texts_to(twilio, "+12025550143"))


def test_the_answer_is_the_same_for_a_number_already_subscribed(
    rt: Runtime, client: TestClient, twilio: TwilioEmulator
) -> None:
    add_subscribers(
        rt, [Subscriber(contact_points=[ContactPoint(channel=ChannelKind.SMS, address="+12025550177")])]
    )

    known = client.post("/subscribe", json={"channel": "sms", "address": "+12025550177"})
    unknown = client.post("/subscribe", json={"channel": "sms", "address": "+12025550178"})

    assert known.status_code == unknown.status_code == 202
    assert set(known.json()) == set(unknown.json()) == {"status", "phone", "verify_token"}
    assert known.json()["status"] == unknown.json()["status"] == "code_sent"
    [told] = texts_to(twilio, "+12025550177")
    assert "already gets our status updates" in told and CODE.search(told) is None
    manage = MANAGE.search(told)
    assert manage is not None
    assert client.get(manage.group(1)).status_code == 200, "the owner can manage it from that text"

    email_known = client.post("/subscribe", json={"email": "x@example.com"})
    email_again = client.post("/subscribe", json={"email": "x@example.com"})
    assert email_known.json()["status"] == email_again.json()["status"] == "pending_confirmation"


def test_a_webhook_that_answers_the_ping_is_subscribed_and_gets_signed_updates(
    rt: Runtime, client: TestClient, hooks: WebhookReceiver
) -> None:
    url = f"{hooks.base_url}/hooks/acme"
    answer = client.post("/subscribe", json={"channel": "webhook", "address": url, "components": ["API"]})

    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert body["status"] == "verified" and body["secret"].startswith("whsec_")
    [ping] = hooks.by_path("/hooks/acme")
    assert ping["body"]["type"] == "subscription.verify" and ping["body"]["manage_url"].startswith(
        PUBLIC_URL + "/manage?token="
    )
    assert point(rt, url).confirmed

    publish_and_deliver(
        rt, draft(incident(rt, components=["API"]), "API errors.", channels=[ChannelKind.WEBHOOK])
    )
    delivered = [r for r in hooks.by_path("/hooks/acme") if r["body"].get("type") == "incident.update"]
    assert [d["body"]["update"]["message"] for d in delivered] == ["API errors."]
    # The ping was signed with the secret the page showed (the receiver's reference verifier agrees).
    headers = {
        "webhook-id": ping["webhook_id"],
        "webhook-timestamp": str(ping["timestamp"]),
        "webhook-signature": ping["signature"],
    }
    assert Webhook(body["secret"]).verify(json.dumps(ping["body"]), headers) == ping["body"]


def test_a_webhook_that_does_not_answer_the_challenge_is_not_subscribed(
    rt: Runtime, client: TestClient, hooks: WebhookReceiver
) -> None:
    url = f"{hooks.base_url}/mute"
    page = client.post("/subscribe", data={"channel": "webhook", "url": url})

    assert page.status_code == 409
    assert "answered the verification ping with HTTP 204 but not with its challenge" in page.text
    assert not point(rt, url).confirmed
    unknown = client.post(
        "/subscribe", json={"channel": "webhook", "address": "https://no-such-host.invalid/hook"}
    )
    assert unknown.status_code == 409 and "cannot find the host 'no-such-host.invalid'" in unknown.text
    blocked = client.post("/subscribe", json={"channel": "webhook", "address": "http://10.0.0.8/hook"})
    assert blocked.status_code == 409 and blocked.json()["errors"][0]["field"] == "address"


def test_the_manage_page_changes_preferences_and_stops_everything(
    rt: Runtime, client: TestClient, twilio: TwilioEmulator
) -> None:
    add_subscribers(
        rt,
        [
            Subscriber(
                contact_points=[
                    ContactPoint(channel=ChannelKind.SMS, address="+12025550190"),
                    ContactPoint(channel=ChannelKind.EMAIL, address="ops@example.com"),
                ]
            )
        ],
    )
    client.post("/subscribe", json={"channel": "sms", "address": "+12025550190"})
    manage = MANAGE.search(texts_to(twilio, "+12025550190")[-1])
    assert manage is not None
    link = manage.group(1)
    page = client.get(link)
    assert "+12025550190" in page.text and "ops@example.com" in page.text
    sms, email = point(rt, "+12025550190"), point(rt, "ops@example.com")

    saved = client.post(
        link,
        data={
            "action": "save",
            "receiving": [str(email.id)],
            "components": ["API"],
            "min_severity": "critical",
            "locale": "fr",
            "timezone": "Europe/Paris",
            "quiet_start": "22:00",
            "quiet_end": "7:00",
        },
    )
    assert saved.status_code == 200 and 'id="saved"' in saved.text
    with rt.engine.connect() as conn:
        row = conn.execute(select(subscribers).where(subscribers.c.id == sms.subscriber_id)).one()
    assert (
        row.components,
        row.min_severity_rank,
        row.locale,
        row.timezone,
        row.quiet_start,
        row.quiet_end,
    ) == (["API"], Severity.CRITICAL.rank, "fr", "Europe/Paris", "22:00", "07:00")
    assert point(rt, "+12025550190").opted_out and not point(rt, "ops@example.com").opted_out

    bad = client.post(link, data={"action": "save", "timezone": "Mars/Olympus"})
    assert bad.status_code == 422 and "Mars/Olympus" in bad.text

    as_json = client.post(link, json={"locale": "de"})
    assert as_json.status_code == 200 and as_json.json()["preferences"]["locale"] == "de"
    assert point(rt, "+12025550190").opted_out and not point(rt, "ops@example.com").opted_out, (
        "a JSON body without receiving leaves every contact as it was"
    )
    nothing_ticked = client.post(link, data={"action": "save", "locale": "fr"})
    assert nothing_ticked.status_code == 200
    assert point(rt, "ops@example.com").opted_out, "a form with no box ticked stops every contact"
    client.post(link, json={"receiving": [email.id]})
    assert not point(rt, "ops@example.com").opted_out

    client.post(link, data={"action": "stop"})
    assert point(rt, "+12025550190").opted_out and point(rt, "ops@example.com").opted_out
    assert client.get(link.replace("token=m.", "token=m.9")).status_code == 404, "a forged link is refused"


def test_sending_is_rate_limited_per_destination_the_same_for_everyone(
    rt: Runtime, client: TestClient, twilio: TwilioEmulator
) -> None:
    for _ in range(3):
        assert (
            client.post("/subscribe", json={"channel": "sms", "address": "+12025550111"}).status_code == 202
        )
    limited = client.post("/subscribe", json={"channel": "sms", "address": "+12025550111"})
    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) > 0
    assert len(texts_to(twilio, "+12025550111")) == 3, "no fourth text to that number"
    assert client.post("/subscribe", json={"channel": "sms", "address": "+12025550112"}).status_code == 202
