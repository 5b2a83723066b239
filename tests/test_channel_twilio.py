"""The Twilio adapter, driving the real twilio SDK against the local Twilio emulator."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import pytest
from pydantic import ValidationError

from channels.base import (
    Adapter,
    ChannelKind,
    LengthRule,
    Message,
    Outcome,
    PermanentError,
    ProviderUnavailable,
    Recipient,
    TransientError,
)
from channels.twilio import RedirectingHttpClient, TwilioAdapter, TwilioOptions
from tests.emulators import TwilioEmulator

SID = "AC" + "1" * 32
TOKEN = "test-auth-token"
FROM = "+15557654321"
SERVICE = "MG" + "2" * 32
STOP_NUMBER = "+15005550009"
LANDLINE = "+15005550010"
CALLBACK = "https://status.example.com/hooks/twilio/status"

MESSAGE = Message(
    kind=ChannelKind.SMS,
    update_id=42,
    incident_id=7,
    subject="[Investigating] Checkout is failing",
    text="Example: checkout is failing. We are investigating. https://status.example.com/i/7",
)


@pytest.fixture
def emulator() -> Iterator[TwilioEmulator]:
    with TwilioEmulator(
        account_sid=SID,
        auth_token=TOKEN,
        stop_numbers=[STOP_NUMBER],
        landlines=[LANDLINE],
        hang_seconds=5,
    ) as emu:
        yield emu


def make_adapter(emulator: TwilioEmulator, **overrides: object) -> TwilioAdapter:
    options: dict[str, object] = {
        "account_sid": SID,
        "auth_token": TOKEN,
        "from_number": FROM,
        "base_url": emulator.base_url,
        "status_callback_url": CALLBACK,
        "timeout": 1.0,
        **overrides,
    }
    options = {k: v for k, v in options.items() if v is not None}
    adapter = TwilioAdapter.from_options(options)
    assert isinstance(adapter, TwilioAdapter)
    return adapter


def numbers(count: int, start: int = 1) -> list[Recipient]:
    return [Recipient(delivery_id=i, address=f"+1555123{i:04d}") for i in range(start, start + count)]


def test_adapter_contract_and_capabilities():
    assert TwilioAdapter.name == "twilio"
    caps = TwilioAdapter.capabilities
    assert caps.kinds == frozenset({ChannelKind.SMS})
    assert (caps.max_batch, caps.length_rule, caps.rate_limit_per_second) == (
        100,
        LengthRule.SMS_SEGMENTS,
        1.0,
    )
    assert not caps.broadcast
    adapter = TwilioAdapter.from_options({"account_sid": SID, "auth_token": TOKEN, "from_number": FROM})
    assert isinstance(adapter, Adapter)
    adapter.close()


def test_a_batch_of_five_numbers_is_five_messages_with_their_sids(emulator):
    recipients = numbers(5)

    results = make_adapter(emulator).send(MESSAGE, recipients)

    received = emulator.received
    assert [m["to"] for m in received] == [r.address for r in recipients]
    assert all(m["from"] == FROM and m["messaging_service_sid"] is None for m in received)
    assert all(m["body"] == MESSAGE.text for m in received)
    assert sorted(m["status_callback"] for m in received) == sorted(
        f"{CALLBACK}?tocsin_delivery_id={r.delivery_id}" for r in recipients
    ), "each callback URL names its delivery, so the callback finds the ledger row by id"
    assert all(m["account_sid"] == SID for m in received)
    assert [r.delivery_id for r in results] == [1, 2, 3, 4, 5]
    assert all(r.outcome is Outcome.SENT for r in results)
    assert [r.provider_message_id for r in results] == [m["sid"] for m in received]
    assert all(re.fullmatch(r"SM[0-9a-f]{32}", r.provider_message_id or "") for r in results)
    assert emulator.stats["requests"] == 5  # one call per recipient, no SDK retries


def test_without_a_status_callback_none_is_sent(emulator):
    make_adapter(emulator, status_callback_url=None).send(MESSAGE, numbers(1))
    assert emulator.received[0]["status_callback"] is None


def test_messaging_service_sid_is_sent_instead_of_from(emulator):
    adapter = make_adapter(emulator, from_number=None, messaging_service_sid=SERVICE)
    results = adapter.send(MESSAGE, numbers(2))
    assert [(m["from"], m["messaging_service_sid"]) for m in emulator.received] == [(None, SERVICE)] * 2
    assert [r.outcome for r in results] == [Outcome.SENT] * 2


def test_a_number_that_replied_stop_is_opted_out_and_the_others_are_sent(emulator):
    recipients = [*numbers(2), Recipient(delivery_id=99, address=STOP_NUMBER), *numbers(2, start=3)]

    results = make_adapter(emulator).send(MESSAGE, recipients)

    by_id = {r.delivery_id: r for r in results}
    assert by_id[99].outcome is Outcome.OPTED_OUT
    assert by_id[99].error is not None and by_id[99].error.startswith("twilio 21610: ")
    assert [by_id[i].outcome for i in (1, 2, 3, 4)] == [Outcome.SENT] * 4
    assert STOP_NUMBER not in {m["to"] for m in emulator.received}
    assert len(emulator.received) == 4


def test_invalid_and_landline_numbers_fail_alone_with_twilios_code(emulator):
    recipients = [
        *numbers(1),
        Recipient(delivery_id=50, address="5551234"),
        Recipient(delivery_id=51, address=LANDLINE),
        *numbers(1, start=2),
    ]
    results = make_adapter(emulator).send(MESSAGE, recipients)
    by_id = {r.delivery_id: r for r in results}
    assert by_id[50].outcome is Outcome.FAILED
    assert by_id[50].error == "twilio 21211: The 'To' number 5551234 is not a valid phone number."
    assert by_id[51].outcome is Outcome.FAILED
    assert by_id[51].error is not None and by_id[51].error.startswith("twilio 21614: ")
    assert (by_id[1].outcome, by_id[2].outcome) == (Outcome.SENT, Outcome.SENT)


def test_a_first_recipient_that_fails_does_not_make_the_batch_raise(emulator):
    recipients = [Recipient(delivery_id=50, address="bogus"), *numbers(2)]
    results = make_adapter(emulator).send(MESSAGE, recipients)
    assert [r.outcome for r in results] == [Outcome.FAILED, Outcome.SENT, Outcome.SENT]


def test_throttled_first_call_raises_transient_with_retry_after(emulator):
    emulator.set_faults(fail_next=[{"status": 429, "retry_after": 7}])
    with pytest.raises(TransientError) as caught:
        make_adapter(emulator).send(MESSAGE, numbers(3))
    assert caught.value.retry_after == 7.0
    assert caught.value.message == "twilio 20429: Too Many Requests"
    assert emulator.received == [] and emulator.stats["requests"] == 1


@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_error_on_the_first_call_raises_transient(emulator, status):
    emulator.set_faults(fail_next=[status])
    with pytest.raises(TransientError):
        make_adapter(emulator).send(MESSAGE, numbers(3))
    assert emulator.stats["requests"] == 1


def test_throttling_mid_batch_gives_retry_results_and_stops_calling(emulator):
    adapter = make_adapter(emulator)
    # The first two calls pass; the third meets a 429. No further call is made.
    original = adapter._send_one
    calls = {"n": 0}

    def third_is_throttled(message, recipient):
        calls["n"] += 1
        if calls["n"] == 3:
            emulator.set_faults(fail_next=[{"status": 429, "retry_after": 3}])
        return original(message, recipient)

    adapter._send_one = third_is_throttled  # type: ignore[method-assign]
    results = adapter.send(MESSAGE, numbers(5))

    assert [r.outcome for r in results] == [Outcome.SENT] * 2 + [Outcome.RETRY] * 3
    assert all(r.retry_after == 3.0 for r in results[2:])
    assert results[2].error == "twilio 20429: Too Many Requests"
    assert len(emulator.received) == 2 and emulator.stats["requests"] == 3


def test_wrong_token_raises_provider_unavailable(emulator):
    with pytest.raises(ProviderUnavailable) as caught:
        make_adapter(emulator, auth_token="wrong").send(MESSAGE, numbers(3))
    assert caught.value.message.startswith("twilio 20003: Authenticate")
    assert "wrong" not in caught.value.message
    assert emulator.received == [] and emulator.stats["requests"] == 1


def test_provider_down_with_auth_mode_raises_provider_unavailable(emulator):
    emulator.set_faults(down="auth")
    with pytest.raises(ProviderUnavailable):
        make_adapter(emulator).send(MESSAGE, numbers(2))


def test_auth_failing_mid_batch_keeps_the_sent_and_retries_the_rest(emulator):
    adapter = make_adapter(emulator)
    original = adapter._send_one
    calls = {"n": 0}

    def token_rotated_after_two(message, recipient):
        calls["n"] += 1
        if calls["n"] == 3:
            emulator.auth_token = "rotated"
        return original(message, recipient)

    adapter._send_one = token_rotated_after_two  # type: ignore[method-assign]
    results = adapter.send(MESSAGE, numbers(4))

    assert [r.outcome for r in results] == [Outcome.SENT, Outcome.SENT, Outcome.RETRY, Outcome.RETRY]
    assert results[2].error is not None and results[2].error.startswith("twilio 20003")
    assert emulator.stats["requests"] == 3
    # The next attempt of the remaining rows starts with a 401: now the whole batch fails over.
    with pytest.raises(ProviderUnavailable):
        make_adapter(emulator).send(MESSAGE, numbers(2, start=3))


def test_a_hanging_twilio_raises_transient_within_the_timeout(emulator):
    emulator.set_faults(fail_next=["hang"])
    started = time.monotonic()
    with pytest.raises(TransientError) as caught:
        make_adapter(emulator, timeout=0.5).send(MESSAGE, numbers(3))
    assert time.monotonic() - started < 3.0
    assert "Timeout" in caught.value.message
    assert emulator.stats["requests"] == 1


def test_a_hang_mid_batch_becomes_retry_for_the_rest(emulator):
    adapter = make_adapter(emulator, timeout=0.5)
    original = adapter._send_one
    calls = {"n": 0}

    def second_hangs(message, recipient):
        calls["n"] += 1
        if calls["n"] == 2:
            emulator.set_faults(fail_next=["hang"])
        return original(message, recipient)

    adapter._send_one = second_hangs  # type: ignore[method-assign]
    started = time.monotonic()
    results = adapter.send(MESSAGE, numbers(4))
    assert time.monotonic() - started < 3.0
    assert [r.outcome for r in results] == [Outcome.SENT] + [Outcome.RETRY] * 3


def test_a_dropped_connection_raises_transient(emulator):
    emulator.set_faults(fail_next=["drop"])
    with pytest.raises(TransientError):
        make_adapter(emulator).send(MESSAGE, numbers(1))


def test_unreachable_twilio_raises_transient():
    adapter = TwilioAdapter.from_options(
        {
            "account_sid": SID,
            "auth_token": TOKEN,
            "from_number": FROM,
            "base_url": "http://127.0.0.1:9",
            "timeout": 1.0,
        }
    )
    with pytest.raises(TransientError) as caught:
        adapter.send(MESSAGE, numbers(1))
    assert "ConnectionError" in caught.value.message


def test_an_empty_body_fails_the_whole_batch_permanently_after_one_call(emulator):
    empty = Message(ChannelKind.SMS, 1, 1, "subject", "")
    with pytest.raises(PermanentError) as caught:
        make_adapter(emulator).send(empty, numbers(3))
    assert caught.value.message == "twilio 21602: Message body is required."
    assert emulator.stats["requests"] == 1


def test_wrong_base_url_path_is_provider_unavailable(emulator):
    adapter = make_adapter(emulator, base_url=emulator.base_url + "/nowhere")
    with pytest.raises(ProviderUnavailable) as caught:
        adapter.send(MESSAGE, numbers(1))
    assert "base_url" in caught.value.message


def test_only_sms_is_carried(emulator):
    email = Message(ChannelKind.EMAIL, 1, 1, "s", "t")
    with pytest.raises(PermanentError):
        make_adapter(emulator).send(email, numbers(1))
    assert emulator.stats["requests"] == 0


def test_redirecting_client_rewrites_only_the_twilio_prefix():
    client = RedirectingHttpClient("http://127.0.0.1:1/", timeout=2)
    assert client.base_url == "http://127.0.0.1:1"
    assert client.timeout == 2
    assert client.last_response is None


# ------------------------------------------------------------------------------------------- options


def options(**overrides: object) -> dict[str, object]:
    base: dict[str, object] = {"account_sid": SID, "auth_token": TOKEN, "from_number": FROM, **overrides}
    return {k: v for k, v in base.items() if v is not None}


def test_options_defaults_and_secret():
    parsed = TwilioOptions.model_validate(options())
    assert parsed.base_url == "https://api.twilio.com"
    assert parsed.timeout == 10.0
    assert parsed.status_callback_url is None and parsed.max_segments is None
    assert TOKEN not in repr(parsed)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"from_number": None}, "from_number"),
        ({"messaging_service_sid": SERVICE}, "from_number"),
        ({"from_number": "5557654321"}, "from_number"),
        ({"from_number": None, "messaging_service_sid": "XX123"}, "messaging_service_sid"),
        ({"account_sid": "AC123"}, "account_sid"),
        ({"base_url": "api.twilio.com"}, "base_url"),
        ({"status_callback_url": "example.com/cb"}, "status_callback_url"),
        ({"timeout": 0}, "timeout"),
        ({"max_segments": 0}, "max_segments"),
        ({"sender": FROM}, "sender"),
    ],
)
def test_bad_options_are_rejected_naming_the_field(overrides, field):
    with pytest.raises(ValidationError) as caught:
        TwilioOptions.model_validate(options(**overrides))
    assert field in str(caught.value)
