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


def test_a_throttled_call_stops_and_the_rest_are_untried_with_the_accounts_retry_after(emulator):
    emulator.set_faults(fail_next=[{"status": 429, "retry_after": 7}])

    results = make_adapter(emulator).send(MESSAGE, numbers(3))

    assert [r.outcome for r in results] == [Outcome.RETRY, Outcome.UNTRIED, Outcome.UNTRIED]
    assert all(r.retry_after == 7.0 for r in results)
    assert results[0].error == "twilio 20429: Too Many Requests"
    assert emulator.received == [] and emulator.stats["requests"] == 1, "no request while told to wait"


@pytest.mark.parametrize("status", [500, 502, 503])
def test_a_server_error_fails_its_own_recipient_and_the_next_ones_are_sent(emulator, status):
    emulator.set_faults(fail_next=[status])

    results = make_adapter(emulator).send(MESSAGE, numbers(3))

    assert [r.outcome for r in results] == [Outcome.RETRY, Outcome.SENT, Outcome.SENT]
    assert results[0].error is not None and results[0].error.startswith("twilio 205")
    assert emulator.stats["requests"] == 3


def test_throttling_mid_batch_gives_retry_results_and_stops_calling(emulator):
    emulator.set_faults(fail_next=["pass", "pass", {"status": 429, "retry_after": 3}])

    results = make_adapter(emulator).send(MESSAGE, numbers(5))

    assert [r.outcome for r in results] == [Outcome.SENT] * 2 + [Outcome.RETRY] + [Outcome.UNTRIED] * 2
    assert all(r.retry_after == 3.0 for r in results[2:])
    assert results[2].error == "twilio 20429: Too Many Requests"
    assert len(emulator.received) == 2 and emulator.stats["requests"] == 3


def test_results_stream_as_each_request_completes_and_closing_the_stream_stops_sending(emulator):
    stream = make_adapter(emulator).send_stream(MESSAGE, numbers(5))

    first, second = next(stream), next(stream)
    stream.close()

    assert [r.outcome for r in first + second] == [Outcome.SENT, Outcome.SENT]
    assert emulator.stats["requests"] == 2, "no request after the caller stopped reading"


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


def test_auth_failing_mid_batch_keeps_the_sent_and_leaves_the_rest_for_the_next_provider(emulator):
    adapter = make_adapter(emulator)
    stream = adapter.send_stream(MESSAGE, numbers(4))
    sent = next(stream) + next(stream)
    emulator.auth_token = "rotated"  # the token is rotated while we are sending

    with pytest.raises(ProviderUnavailable) as caught:
        next(stream)

    assert [r.outcome for r in sent] == [Outcome.SENT, Outcome.SENT]
    assert caught.value.message.startswith("twilio 20003")
    assert emulator.stats["requests"] == 3
    # Their next attempt starts with the 401: the whole call fails over.
    with pytest.raises(ProviderUnavailable):
        make_adapter(emulator).send(MESSAGE, numbers(2, start=3))


def test_through_send_a_mid_batch_auth_failure_leaves_the_rest_untried_and_keeps_the_sent(emulator):
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

    assert [r.outcome for r in results] == [Outcome.SENT, Outcome.SENT, Outcome.UNTRIED, Outcome.UNTRIED]
    assert results[2].error is not None and results[2].error.startswith("twilio 20003")


def test_a_hanging_twilio_fails_that_recipient_within_the_timeout_and_the_next_is_sent(emulator):
    emulator.set_faults(fail_next=["hang"])
    started = time.monotonic()

    results = make_adapter(emulator, timeout=0.5).send(MESSAGE, numbers(3))

    assert time.monotonic() - started < 3.0
    assert [r.outcome for r in results] == [Outcome.RETRY, Outcome.SENT, Outcome.SENT]
    assert "Timeout" in (results[0].error or "")
    assert emulator.stats["requests"] == 3


def test_a_hang_mid_batch_fails_only_that_recipient(emulator):
    emulator.set_faults(fail_next=["pass", "hang"])
    started = time.monotonic()

    results = make_adapter(emulator, timeout=0.5).send(MESSAGE, numbers(4))

    assert time.monotonic() - started < 3.0
    assert [r.outcome for r in results] == [Outcome.SENT, Outcome.RETRY, Outcome.SENT, Outcome.SENT]


def test_a_dropped_connection_is_a_retry_of_that_recipient_though_twilio_kept_the_message(emulator):
    emulator.set_faults(fail_next=["drop"])

    results = make_adapter(emulator).send(MESSAGE, numbers(1))

    assert [r.outcome for r in results] == [Outcome.RETRY]
    assert len(emulator.received) == 1, "a ghost: Twilio accepted it, the client never heard"


def test_unreachable_twilio_leaves_every_recipient_untried():
    adapter = TwilioAdapter.from_options(
        {
            "account_sid": SID,
            "auth_token": TOKEN,
            "from_number": FROM,
            "base_url": "http://127.0.0.1:9",
            "timeout": 1.0,
        }
    )
    results = adapter.send(MESSAGE, numbers(2))
    assert [r.outcome for r in results] == [Outcome.UNTRIED, Outcome.UNTRIED]
    assert "ConnectionError" in (results[0].error or "")


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
