"""Providers call back after the send: signed status callbacks, STOP replies and SendGrid events update
the ledger and the subscribers; forged or stale calls get 403 and change nothing."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from twilio.request_validator import RequestValidator

from channels.base import ChannelKind
from dispatcher.engine.runtime import Runtime
from dispatcher.store.schema import contact_points, deliveries
from dispatcher.web.app import create_app
from tests.helpers import draft, incident, publish_and_deliver, states, subscribe
from tests.test_sendgrid_events import SendGridSigner

TOKEN = "twilio-auth-token"
BASE = "http://testserver"


@pytest.fixture
def signer() -> SendGridSigner:
    return SendGridSigner()


@pytest.fixture
def rt(make_runtime: Callable[..., Runtime], signer: SendGridSigner) -> Runtime:
    return make_runtime(
        providers={"twilio": {"auth_token": TOKEN}},
        sendgrid_event_public_key=signer.public_key,
    )


@pytest.fixture
def client(rt: Runtime) -> Iterator[TestClient]:
    with TestClient(create_app(lambda: rt), base_url=BASE) as http:
        yield http


def twilio_post(client: TestClient, path: str, params: dict[str, str], forge: bool = False) -> object:
    signature = RequestValidator(TOKEN).compute_signature(BASE + path, params)
    if forge:
        signature = RequestValidator("not-the-token").compute_signature(BASE + path, params)
    return client.post(path, data=params, headers={"X-Twilio-Signature": signature})


def sms_row(rt: Runtime, update_id: int, number: str) -> object:
    with rt.engine.connect() as conn:
        return conn.execute(
            select(deliveries).where(deliveries.c.update_id == update_id, deliveries.c.address == number)
        ).one()


def opted_out(rt: Runtime, channel: ChannelKind, address: str) -> bool:
    with rt.engine.connect() as conn:
        return bool(
            conn.execute(
                select(contact_points.c.opted_out).where(
                    contact_points.c.channel == channel.value, contact_points.c.address == address
                )
            ).scalar_one()
        )


def test_a_signed_status_callback_updates_the_ledger_and_a_forged_one_changes_nothing(
    rt: Runtime, client: TestClient
) -> None:
    subscribe(rt, 2, email=False, sms=True)
    update_id = publish_and_deliver(rt, draft(incident(rt), channels=[ChannelKind.SMS])).update.id
    row = sms_row(rt, update_id, "+12025550000")
    params = {"MessageSid": row.provider_message_id, "MessageStatus": "delivered", "To": row.address}

    forged = twilio_post(
        client, "/providers/twilio/status", {**params, "MessageStatus": "failed"}, forge=True
    )
    assert forged.status_code == 403
    assert sms_row(rt, update_id, row.address).provider_status is None

    assert twilio_post(client, "/providers/twilio/status", params).status_code == 204
    assert sms_row(rt, update_id, row.address).provider_status == "delivered"

    # As the Twilio adapter sends it: the delivery id in the (signed) callback URL.
    path = f"/providers/twilio/status?tocsin_delivery_id={row.id}"
    assert twilio_post(client, path, {**params, "MessageStatus": "undelivered"}).status_code == 204
    assert sms_row(rt, update_id, row.address).provider_status == "undelivered"
    wrong_row = f"/providers/twilio/status?tocsin_delivery_id={row.id + 1}"
    twilio_post(client, wrong_row, {**params, "MessageStatus": "failed"})
    assert sms_row(rt, update_id, row.address).provider_status == "undelivered", "id and sid must agree"


def test_a_stop_reply_opts_the_number_out_and_start_brings_it_back(rt: Runtime, client: TestClient) -> None:
    subscribe(rt, 2, email=False, sms=True)
    stop = twilio_post(client, "/providers/twilio/inbound", {"From": "+12025550001", "Body": " stop "})
    assert stop.status_code == 200 and "<Response>" in stop.text
    assert opted_out(rt, ChannelKind.SMS, "+12025550001")

    published = publish_and_deliver(rt, draft(incident(rt), channels=[ChannelKind.SMS]))
    assert states(rt, published.update.id) == {"sent": 1, "suppressed": 1}

    twilio_post(client, "/providers/twilio/inbound", {"From": "+12025550001", "Body": "START"})
    assert not opted_out(rt, ChannelKind.SMS, "+12025550001")
    help_reply = twilio_post(client, "/providers/twilio/inbound", {"From": "+12025550001", "Body": "help"})
    assert "Reply STOP" in help_reply.text


def test_sendgrid_bounces_suppress_the_address(
    rt: Runtime, client: TestClient, signer: SendGridSigner
) -> None:
    subscribe(rt, 2)
    update_id = publish_and_deliver(rt, draft(incident(rt), channels=[ChannelKind.EMAIL])).update.id
    row = sms_row(rt, update_id, "person0@example.com")
    events = [
        {
            "email": "person0@example.com",
            "event": "bounce",
            "type": "bounce",
            "timestamp": int(time.time()),
            "reason": "550 mailbox unknown",
            "tocsin_delivery_id": str(row.id),
        },
        {"email": "person1@example.com", "event": "delivered", "timestamp": int(time.time())},
    ]
    body = json.dumps(events).encode()

    stale = client.post(
        "/providers/sendgrid/events", content=body, headers=signer.headers(body, int(time.time()) - 3600)
    )
    assert stale.status_code == 403
    assert not opted_out(rt, ChannelKind.EMAIL, "person0@example.com")

    ok = client.post(
        "/providers/sendgrid/events", content=body, headers=signer.headers(body, int(time.time()))
    )
    assert ok.status_code == 204
    assert opted_out(rt, ChannelKind.EMAIL, "person0@example.com")
    assert not opted_out(rt, ChannelKind.EMAIL, "person1@example.com")
    bounced = sms_row(rt, update_id, "person0@example.com")
    assert bounced.provider_status == "bounce" and "mailbox unknown" in bounced.last_error

    later = publish_and_deliver(rt, draft(incident(rt), channels=[ChannelKind.EMAIL]))
    assert states(rt, later.update.id) == {"sent": 1, "suppressed": 1}
