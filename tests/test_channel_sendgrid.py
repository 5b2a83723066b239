"""The SendGrid adapter, driving the real sendgrid SDK against the local SendGrid emulator."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from channels import registry
from channels.base import (
    ChannelKind,
    Message,
    Outcome,
    PermanentError,
    ProviderUnavailable,
    Recipient,
    TransientError,
)
from channels.sendgrid import SendGridAdapter
from tests.emulators import SendGridEmulator

API_KEY = "SG.test-key"

MESSAGE = Message(
    kind=ChannelKind.EMAIL,
    update_id=42,
    incident_id=7,
    subject="[Investigating] Checkout is failing",
    text="We are investigating failed checkouts.",
    html="<p>We are investigating failed checkouts.</p>",
)


@pytest.fixture
def emulator() -> Iterator[SendGridEmulator]:
    with SendGridEmulator(api_key=API_KEY, hang_seconds=5) as emu:
        yield emu


def make_adapter(emulator: SendGridEmulator, **overrides: object) -> SendGridAdapter:
    options = {
        "api_key": API_KEY,
        "base_url": emulator.base_url,
        "from_email": "status@example.com",
        "from_name": "Example Status",
        "timeout": 30.0,  # a 1,000-recipient request on a loaded machine; the hang test sets its own
        **overrides,
    }
    adapter = registry.create("sendgrid", options)
    assert isinstance(adapter, SendGridAdapter)
    return adapter


def people(count: int, start: int = 1) -> list[Recipient]:
    return [Recipient(delivery_id=i, address=f"user{i}@example.com") for i in range(start, start + count)]


def test_a_thousand_subscribers_get_one_request_with_one_personalization_each(emulator):
    recipients = people(1000)

    results = make_adapter(emulator).send(MESSAGE, recipients)

    assert emulator.stats["accepted_requests"] == 1
    assert emulator.requests_log[0]["personalizations"] == 1000
    received = emulator.received
    assert sorted(m["email"] for m in received) == sorted(r.address for r in recipients)  # none lost/twice
    assert {m["personalization"] for m in received} == set(range(1000))
    by_email = {m["email"]: m for m in received}
    first = by_email["user1@example.com"]
    assert first["custom_args"] == {
        "tocsin_delivery_id": "1",
        "tocsin_message_id": "tocsin-1",
        "tocsin_update_id": "42",
        "tocsin_incident_id": "7",
    }
    assert first["subject"] == MESSAGE.subject
    assert (first["text"], first["html"]) == (MESSAGE.text, MESSAGE.html)
    assert first["from"] == {"email": "status@example.com", "name": "Example Status"}
    message_id = emulator.requests_log[0]["message_id"]
    assert [r.delivery_id for r in results] == [r.delivery_id for r in recipients]
    assert all(r.outcome is Outcome.SENT and r.provider_message_id == message_id for r in results)


def test_text_only_message_sends_plain_content_only(emulator):
    message = Message(ChannelKind.EMAIL, 1, 1, "Resolved", "All good now.")
    make_adapter(emulator, categories=["outage"], reply_to="support@example.com").send(message, people(2))
    assert [(m["text"], m["html"]) for m in emulator.received] == [("All good now.", None)] * 2
    assert emulator.received[0]["categories"] == ["outage"]
    assert emulator.received[0]["reply_to"] == {"email": "support@example.com"}


def test_more_than_a_thousand_recipients_go_in_several_requests(emulator):
    results = make_adapter(emulator).send(MESSAGE, people(1500))
    assert [log["personalizations"] for log in emulator.requests_log] == [1000, 500]
    assert len({m["email"] for m in emulator.received}) == 1500 == len(emulator.received)
    assert all(r.outcome is Outcome.SENT for r in results)


def test_second_request_failing_reports_per_recipient_retry_not_a_raise(emulator):
    adapter = make_adapter(emulator)
    original = adapter._post
    calls = {"n": 0}

    def post_then_break(body):  # the first request passes, the second meets a 503
        calls["n"] += 1
        if calls["n"] == 2:
            emulator.set_faults(fail_next=[503])
        return original(body)

    adapter._post = post_then_break  # type: ignore[method-assign]
    results = adapter.send(MESSAGE, people(1200))
    assert [r.outcome for r in results[:1000]] == [Outcome.SENT] * 1000
    assert [r.outcome for r in results[1000:]] == [Outcome.RETRY] * 200
    assert len(emulator.received) == 1000


def test_a_bad_recipient_address_fails_alone_naming_the_field(emulator):
    recipients = [*people(2), Recipient(delivery_id=3, address="not-an-address")]

    results = make_adapter(emulator).send(MESSAGE, recipients)

    by_id = {r.delivery_id: r for r in results}
    assert by_id[3].outcome is Outcome.FAILED
    assert "personalizations.2.to.0.email" in by_id[3].error
    assert "400" in by_id[3].error
    assert [by_id[1].outcome, by_id[2].outcome] == [Outcome.SENT, Outcome.SENT]
    assert sorted(m["email"] for m in emulator.received) == ["user1@example.com", "user2@example.com"]
    assert emulator.stats["requests"] == 2


def test_a_bad_request_not_about_addresses_is_a_permanent_error(emulator):
    with pytest.raises(PermanentError) as caught:
        make_adapter(emulator, from_email="status@example.com").send(
            Message(kind=ChannelKind.EMAIL, update_id=1, incident_id=1, subject="", text="x"), people(2)
        )
    assert "400" in caught.value.message and "subject" in caught.value.message
    assert emulator.received == []


def test_wrong_api_key_means_provider_unavailable(emulator):
    with pytest.raises(ProviderUnavailable) as caught:
        make_adapter(emulator, api_key="SG.wrong").send(MESSAGE, people(3))
    assert "401" in caught.value.message
    assert "SG.wrong" not in caught.value.message
    assert emulator.received == []


def test_forbidden_key_means_provider_unavailable(emulator):
    emulator.set_faults(fail_next=[403])
    with pytest.raises(ProviderUnavailable):
        make_adapter(emulator).send(MESSAGE, people(1))


def test_rate_limited_is_transient_with_retry_after(emulator):
    emulator.set_faults(fail_next=[{"status": 429, "retry_after": 7}])
    with pytest.raises(TransientError) as caught:
        make_adapter(emulator).send(MESSAGE, people(3))
    assert caught.value.retry_after == 7
    assert emulator.received == []


def test_server_error_is_transient(emulator):
    emulator.set_faults(fail_next=[500])
    with pytest.raises(TransientError):
        make_adapter(emulator).send(MESSAGE, people(1))


def test_payload_too_large_is_permanent(emulator):
    emulator.configure({"max_payload_bytes": 100})
    with pytest.raises(PermanentError, match="413"):
        make_adapter(emulator).send(MESSAGE, people(1))


def test_provider_down_means_transient_503(emulator):
    emulator.set_faults(down=True)
    with pytest.raises(TransientError, match="503"):
        make_adapter(emulator).send(MESSAGE, people(1))


def test_hanging_sendgrid_gives_transient_error_within_the_timeout(emulator):
    emulator.set_faults(fail_next=["hang"])
    started = time.monotonic()
    with pytest.raises(TransientError):
        make_adapter(emulator, timeout=0.5).send(MESSAGE, people(2))
    assert time.monotonic() - started < 3


def test_dropped_connection_is_transient_though_the_mail_was_accepted(emulator):
    emulator.set_faults(fail_next=["drop"])
    with pytest.raises(TransientError):
        make_adapter(emulator).send(MESSAGE, people(2))
    assert len(emulator.received) == 2  # the ghost: retrying will duplicate (SendGrid has no idempotency)


def test_nothing_listening_is_transient():
    adapter = registry.create(
        "sendgrid", {"api_key": "SG.k", "base_url": "http://127.0.0.1:9", "from_email": "a@example.com"}
    )
    with pytest.raises(TransientError):
        adapter.send(MESSAGE, people(1))


def test_options_are_validated_with_a_clear_error():
    with pytest.raises(registry.InvalidProviderOptions, match="from_email"):
        registry.create("sendgrid", {"api_key": "k", "from_email": "nope"})
    adapter = registry.create("sendgrid", {"api_key": "SG.secret", "from_email": "a@example.com"})
    assert "SG.secret" not in repr(adapter.options)  # type: ignore[attr-defined]
