"""The webhook adapter, signing with Standard Webhooks and posting to the local receiver."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import time
from collections.abc import Iterator

import pytest

from channels import registry
from channels.base import ChannelKind, Message, Outcome, PermanentError, Recipient
from channels.webhook import WebhookAdapter, secret_key, sign
from tests.emulators import WebhookReceiver


def new_secret() -> str:
    return "whsec_" + base64.b64encode(os.urandom(32)).decode()


SECRET = new_secret()
BODY = json.dumps({"type": "incident.update", "update_id": 42, "status": "investigating"})
MESSAGE = Message(
    kind=ChannelKind.WEBHOOK, update_id=42, incident_id=7, subject="s", text="t", json_body=BODY
)


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver(secret=SECRET, responses={"/gone": 410, "/broken": 503}, hang_seconds=5) as emu:
        yield emu


def make_adapter(**options: object) -> WebhookAdapter:
    # The receiver listens on 127.0.0.1, which the SSRF guard refuses unless allowed.
    adapter = registry.create("webhook", {"timeout": 1.0, "allow_destinations": ["127.0.0.0/8"], **options})
    assert isinstance(adapter, WebhookAdapter)
    return adapter


def endpoints(receiver: WebhookReceiver, count: int, secret: str | None = SECRET) -> list[Recipient]:
    return [
        Recipient(delivery_id=i, address=f"{receiver.base_url}/hooks/{i}", secret=secret)
        for i in range(1, count + 1)
    ]


def test_every_endpoint_gets_one_signed_delivery_verified_by_standardwebhooks(receiver):
    recipients = endpoints(receiver, 50)

    results = make_adapter(concurrency=8).send(MESSAGE, recipients)

    assert [r.outcome for r in results] == [Outcome.SENT] * 50
    assert [r.delivery_id for r in results] == list(range(1, 51))
    assert {r.provider_message_id for r in results} == {f"tocsin-{i}" for i in range(1, 51)}
    received = receiver.received
    assert sorted(m["path"] for m in received) == sorted(f"/hooks/{i}" for i in range(1, 51))
    assert all(m["verified"] and m["body"] == json.loads(BODY) for m in received)
    assert {m["webhook_id"] for m in received} == {f"tocsin-{i}" for i in range(1, 51)}
    assert all(abs(m["timestamp"] - time.time()) < 10 for m in received)
    assert receiver.stats["duplicates"] == 0
    assert receiver.rejected == []


def test_default_secret_is_used_when_the_endpoint_has_none(receiver):
    results = make_adapter(default_secret=SECRET).send(MESSAGE, endpoints(receiver, 3, secret=None))
    assert [r.outcome for r in results] == [Outcome.SENT] * 3
    assert all(m["verified"] for m in receiver.received)


def test_no_secret_at_all_fails_that_recipient_without_sending(receiver):
    results = make_adapter().send(MESSAGE, endpoints(receiver, 1, secret=None))
    assert results[0].outcome is Outcome.FAILED
    assert "secret" in (results[0].error or "")
    assert receiver.stats["requests"] == 0


def test_wrong_secret_is_rejected_by_the_receiver(receiver):
    results = make_adapter().send(MESSAGE, endpoints(receiver, 1, secret=new_secret()))
    assert results[0].outcome is Outcome.FAILED  # 401 is a 4xx other than 408/429
    assert receiver.received == []
    assert receiver.rejected[0]["status"] == 401


def test_webhook_id_is_the_same_when_the_same_recipient_is_sent_twice(receiver):
    adapter = make_adapter()
    recipient = endpoints(receiver, 1)[0]
    adapter.send(MESSAGE, [recipient])
    adapter.send(MESSAGE, [recipient])
    first, second = receiver.received
    assert first["webhook_id"] == second["webhook_id"] == "tocsin-1"
    assert receiver.stats["duplicates"] == 1  # the receiver can de-duplicate on webhook-id


def test_gone_endpoint_fails_broken_endpoint_retries_others_are_sent(receiver):
    recipients = [
        Recipient(1, f"{receiver.base_url}/ok/1", secret=SECRET),
        Recipient(2, f"{receiver.base_url}/gone", secret=SECRET),
        Recipient(3, f"{receiver.base_url}/broken", secret=SECRET),
        Recipient(4, f"{receiver.base_url}/ok/4", secret=SECRET),
    ]
    results = make_adapter().send(MESSAGE, recipients)
    outcomes = {r.delivery_id: r for r in results}
    assert outcomes[1].outcome is Outcome.SENT and outcomes[4].outcome is Outcome.SENT
    assert outcomes[2].outcome is Outcome.FAILED and "gone" in (outcomes[2].error or "")
    assert outcomes[3].outcome is Outcome.RETRY
    assert sorted(m["path"] for m in receiver.received) == ["/ok/1", "/ok/4"]


def test_rate_limited_endpoint_retries_after_its_retry_after(receiver):
    receiver.configure({"responses": {"/busy": {"status": 429, "retry_after": 30}}})
    results = make_adapter().send(MESSAGE, [Recipient(1, f"{receiver.base_url}/busy", secret=SECRET)])
    assert results[0].outcome is Outcome.RETRY
    assert results[0].retry_after == 30


def test_client_error_other_than_408_429_fails(receiver):
    receiver.configure({"responses": {"/bad": 400, "/timeout": 408}})
    results = make_adapter().send(
        MESSAGE,
        [
            Recipient(1, f"{receiver.base_url}/bad", secret=SECRET),
            Recipient(2, f"{receiver.base_url}/timeout", secret=SECRET),
        ],
    )
    assert [r.outcome for r in results] == [Outcome.FAILED, Outcome.RETRY]


def test_hanging_endpoint_retries_within_the_timeout_while_others_are_sent(receiver):
    receiver.set_faults(fail_next=["hang"])
    started = time.monotonic()
    results = make_adapter(timeout=0.5, concurrency=1).send(MESSAGE, endpoints(receiver, 3))
    assert time.monotonic() - started < 3
    assert sorted(r.outcome for r in results) == sorted([Outcome.RETRY, Outcome.SENT, Outcome.SENT])
    assert len(receiver.received) == 2


def test_unreachable_and_invalid_urls(receiver):
    results = make_adapter().send(
        MESSAGE,
        [Recipient(1, "http://127.0.0.1:9/hook", secret=SECRET), Recipient(2, "not a url", secret=SECRET)],
    )
    assert [r.outcome for r in results] == [Outcome.RETRY, Outcome.FAILED]


def test_endpoints_sharing_a_host_are_each_judged_by_their_own_url(receiver):
    """A batch checks a host once, but a URL's own scheme and credentials are still its own."""
    host = receiver.base_url.removeprefix("http://")
    results = make_adapter().send(
        MESSAGE,
        [
            Recipient(1, f"http://{host}/hooks/1", secret=SECRET),
            Recipient(2, f"http://ada:secret@{host}/hooks/2", secret=SECRET),
            Recipient(3, f"ftp://{host}/hooks/3", secret=SECRET),
            Recipient(4, f"http://{host}/hooks/4", secret=SECRET),
        ],
    )

    assert [r.outcome for r in results] == [Outcome.SENT, Outcome.FAILED, Outcome.FAILED, Outcome.SENT]
    assert "credentials" in (results[1].error or "") and "ftp" in (results[2].error or "")
    assert sorted(m["path"] for m in receiver.received) == ["/hooks/1", "/hooks/4"]


def test_a_full_batch_of_500_in_one_call(receiver):
    receiver.verify = False
    results = make_adapter().send(MESSAGE, endpoints(receiver, 500))
    assert sum(r.outcome is Outcome.SENT for r in results) == 500
    assert receiver.stats["unique_ids"] == 500 and receiver.stats["duplicates"] == 0


def test_signature_matches_the_reference_implementation():
    from standardwebhooks import Webhook

    timestamp = int(time.time())
    signature = sign(secret_key(SECRET), "tocsin-9", timestamp, BODY)
    headers = {"webhook-id": "tocsin-9", "webhook-timestamp": str(timestamp), "webhook-signature": signature}
    assert Webhook(SECRET).verify(BODY, headers) == json.loads(BODY)


def test_message_without_json_body_is_permanent(receiver):
    message = Message(ChannelKind.WEBHOOK, 1, 1, "s", "t")
    with pytest.raises(PermanentError):
        make_adapter().send(message, endpoints(receiver, 1))


def test_options_are_validated():
    with pytest.raises(registry.InvalidProviderOptions, match="default_secret"):
        registry.create("webhook", {"default_secret": "whsec_!!!"})
    with pytest.raises(registry.InvalidProviderOptions, match="concurrency"):
        registry.create("webhook", {"concurrency": 0})


def test_send_works_from_inside_a_running_event_loop(receiver):
    # called from async code (e.g. an async worker): send() must not fail because a loop is running
    async def from_async_code():
        return make_adapter().send(MESSAGE, endpoints(receiver, 2))

    results = asyncio.run(from_async_code())
    assert [r.outcome for r in results] == [Outcome.SENT] * 2
