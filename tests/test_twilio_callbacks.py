"""Twilio callback helpers: signatures computed by the SDK's own RequestValidator, field parsing."""

from __future__ import annotations

import pytest
from multidict import MultiDict
from twilio.request_validator import RequestValidator

from channels.callbacks.twilio_callbacks import (
    InboundMessage,
    StatusEvent,
    keyword_of,
    parse_inbound,
    parse_status_callback,
    verify_signature,
)

TOKEN = "12345-auth-token"
URL = "https://status.example.com/hooks/twilio/status?channel=sms"
PARAMS = {
    "AccountSid": "AC" + "1" * 32,
    "MessageSid": "SM" + "a" * 32,
    "SmsSid": "SM" + "a" * 32,
    "MessageStatus": "undelivered",
    "SmsStatus": "undelivered",
    "ErrorCode": "30003",
    "To": "+15551230001",
    "From": "+15557654321",
    "ApiVersion": "2010-04-01",
}


def sign(url: str = URL, params: dict[str, str] = PARAMS, token: str = TOKEN) -> str:
    return str(RequestValidator(token).compute_signature(url, params))


# ------------------------------------------------------------------------------------------ signatures


def test_a_signature_computed_by_the_sdk_verifies():
    assert verify_signature(TOKEN, URL, PARAMS, sign())


def test_the_signature_covers_every_parameter_and_the_url():
    signature = sign()
    assert not verify_signature(TOKEN, URL, {**PARAMS, "MessageStatus": "delivered"}, signature)
    assert not verify_signature(TOKEN, URL, {**PARAMS, "Extra": "1"}, signature)
    without_error = {k: v for k, v in PARAMS.items() if k != "ErrorCode"}
    assert not verify_signature(TOKEN, URL, without_error, signature)
    assert not verify_signature(TOKEN, URL.replace("channel=sms", "channel=email"), PARAMS, signature)
    assert not verify_signature(TOKEN, URL.replace("https://", "http://"), PARAMS, signature)


def test_a_forged_or_missing_signature_fails():
    assert not verify_signature(TOKEN, URL, PARAMS, sign(token="someone-elses-token"))
    assert not verify_signature(TOKEN, URL, PARAMS, "bm90IGEgc2lnbmF0dXJl")
    assert not verify_signature(TOKEN, URL, PARAMS, "")
    assert not verify_signature(TOKEN, URL, PARAMS, None)
    assert not verify_signature("", URL, PARAMS, sign())


def test_the_port_may_or_may_not_be_in_the_url():
    # Twilio is inconsistent about signing https://host:443/...; the SDK accepts both forms.
    signature = sign("https://status.example.com:443/hooks/twilio/status?channel=sms")
    assert verify_signature(TOKEN, URL, PARAMS, signature)


def test_multidict_params_are_accepted():
    form = MultiDict(PARAMS)
    assert verify_signature(TOKEN, URL, form, sign())


def test_empty_form():
    assert verify_signature(TOKEN, URL, {}, sign(params={}))


# ------------------------------------------------------------------------------------------ status


def test_status_callback_is_parsed():
    event = parse_status_callback(PARAMS)
    assert event == StatusEvent(message_sid="SM" + "a" * 32, status="undelivered", error_code=30003)
    assert event.is_final and event.is_failure


@pytest.mark.parametrize(
    ("status", "final", "failure"),
    [
        ("queued", False, False),
        ("sent", False, False),
        ("delivered", True, False),
        ("failed", True, True),
        ("Undelivered", True, True),
    ],
)
def test_status_kinds(status, final, failure):
    event = parse_status_callback({"MessageSid": "SM1", "MessageStatus": status})
    assert event.error_code is None
    assert event.status == status.lower()
    assert (event.is_final, event.is_failure) == (final, failure)


def test_empty_error_code_is_none_and_legacy_fields_are_read():
    event = parse_status_callback({"SmsSid": "SM2", "SmsStatus": "sent", "ErrorCode": ""})
    assert event == StatusEvent("SM2", "sent", None)


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"MessageStatus": "sent"}, "MessageSid"),
        ({"MessageSid": "  ", "MessageStatus": "sent"}, "MessageSid"),
        ({"MessageSid": "SM1"}, "MessageStatus"),
    ],
)
def test_missing_fields_are_named(params, field):
    with pytest.raises(ValueError, match=field):
        parse_status_callback(params)


def test_non_numeric_error_code_is_named():
    with pytest.raises(ValueError, match="ErrorCode"):
        parse_status_callback({"MessageSid": "SM1", "MessageStatus": "failed", "ErrorCode": "oops"})


# ------------------------------------------------------------------------------------------ inbound


@pytest.mark.parametrize(
    ("body", "keyword"),
    [
        *[(word, "stop") for word in ("STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT")],
        *[(word, "start") for word in ("START", "YES", "UNSTOP")],
        *[(word, "help") for word in ("HELP", "INFO")],
        ("stop", "stop"),
        ("  Stop \n", "stop"),
        ("unSubscribe", "stop"),
        ("\tyes ", "start"),
        ("Help", "help"),
        ("please stop", None),
        ("STOP IT", None),
        ("stopp", None),
        ("", None),
        ("Is checkout still down?", None),
    ],
)
def test_keywords(body, keyword):
    assert keyword_of(body) == keyword
    assert parse_inbound({"From": "+15551230001", "Body": body}).keyword == keyword


def test_inbound_message_is_parsed():
    message = parse_inbound(
        {"From": "+15551230001", "To": "+15557654321", "Body": " STOP ", "MessageSid": "SM" + "b" * 32}
    )
    assert message == InboundMessage(
        from_number="+15551230001",
        body=" STOP ",
        keyword="stop",
        to_number="+15557654321",
        message_sid="SM" + "b" * 32,
    )


def test_inbound_without_body_or_from():
    assert parse_inbound({"From": "+15551230001"}) == InboundMessage("+15551230001", "", None)
    with pytest.raises(ValueError, match="From"):
        parse_inbound({"Body": "STOP"})
