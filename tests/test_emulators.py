"""The provider emulators, exercised through the real SDKs (sendgrid, twilio, tweepy) and plain HTTP."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import smtplib
import time
from datetime import UTC
from email.message import EmailMessage

import httpx
import pytest
import requests
import tweepy
from python_http_client import exceptions as sg_errors
from requests.adapters import HTTPAdapter
from sendgrid import SendGridAPIClient
from standardwebhooks import Webhook
from twilio.base.exceptions import TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client as TwilioClient

from tests.emulators import (
    EmulatorClient,
    EmulatorProcess,
    SendGridEmulator,
    TwilioEmulator,
    WebhookReceiver,
    XEmulator,
)
from tests.emulators.smtp import SmtpSink
from tests.emulators.x import weighted_length

# ---------------------------------------------------------------------------------------------- helpers


class TwilioEmulatorHttpClient(TwilioHttpClient):
    """The Twilio SDK builds https://api.twilio.com URLs itself; send them to the emulator instead."""

    def __init__(self, base_url: str) -> None:
        super().__init__(timeout=5)
        self.base_url = base_url

    def request(self, method, url, *args, **kwargs):
        url = url.replace("https://api.twilio.com", self.base_url, 1)
        return super().request(method, url, *args, **kwargs)


class RewriteAdapter(HTTPAdapter):
    """Mounted on tweepy's session: rewrites https://api.twitter.com to the emulator."""

    def __init__(self, base_url: str) -> None:
        super().__init__()
        self.base_url = base_url

    def send(self, request, **kwargs):
        request.url = request.url.replace("https://api.twitter.com", self.base_url, 1)
        return super().send(request, **kwargs)


def tweepy_client(base_url: str, **credentials: str) -> tweepy.Client:
    client = tweepy.Client(**credentials)
    client.session.mount("https://api.twitter.com", RewriteAdapter(base_url))
    return client


def mail(*emails: str, subject: str | None = "Outage", content=None) -> dict:
    body = {
        "personalizations": [
            {"to": [{"email": e}], "custom_args": {"tocsin_delivery_id": str(i)}}
            for i, e in enumerate(emails)
        ],
        "from": {"email": "status@example.com"},
        "content": content
        if content is not None
        else [{"type": "text/plain", "value": "down"}, {"type": "text/html", "value": "<b>down</b>"}],
    }
    if subject:
        body["subject"] = subject
    return body


# ---------------------------------------------------------------------------------------------- SendGrid


def test_sendgrid_accepts_mail_through_the_sdk_and_records_each_recipient():
    with SendGridEmulator(api_key="SG.k") as emu:
        response = SendGridAPIClient("SG.k", host=emu.base_url).send(mail("a@example.com", "b@example.com"))
        assert response.status_code == 202
        assert response.body == b""
        message_id = response.headers["X-Message-Id"]
        got = [(m["email"], m["message_id"], m["custom_args"]["tocsin_delivery_id"]) for m in emu.received]
        assert got == [
            ("a@example.com", message_id, "0"),
            ("b@example.com", message_id, "1"),
        ]
        assert emu.received[0]["html"] == "<b>down</b>"
        assert emu.stats == {
            "requests": 1,
            "accepted": 2,
            "accepted_requests": 1,
            "rejected": {},
            "hung": 0,
            "dropped": 0,
            "early_retries": 0,
            "max_in_flight": 1,
            "early_account_requests": 0,
        }


def test_sendgrid_validation_errors_have_sendgrids_shape():
    with SendGridEmulator(api_key="SG.k") as emu:
        sdk = SendGridAPIClient("SG.k", host=emu.base_url)
        cases = [
            (mail("bad-address"), "personalizations.0.to.0.email"),
            (mail("a@example.com", subject=None), "subject"),
            (
                mail(
                    "a@example.com",
                    content=[{"type": "text/html", "value": "h"}, {"type": "text/plain", "value": "t"}],
                ),
                "content",
            ),
            ({**mail("a@example.com"), "from": {"email": "nope"}}, "from.email"),
            (mail(*[f"u{i}@example.com" for i in range(1001)]), "personalizations"),
        ]
        for body, field in cases:
            with pytest.raises(sg_errors.BadRequestsError) as caught:
                sdk.send(body)
            errors = caught.value.to_dict["errors"]
            assert field in [e["field"] for e in errors]
            assert all(set(e) == {"message", "field", "help"} for e in errors)
        assert emu.received == []
        assert emu.stats["rejected"] == {"400": len(cases)}


def test_sendgrid_wrong_key_is_401_with_error_body():
    with SendGridEmulator(api_key="SG.k") as emu:
        with pytest.raises(sg_errors.UnauthorizedError) as caught:
            SendGridAPIClient("SG.other", host=emu.base_url).send(mail("a@example.com"))
        assert caught.value.to_dict["errors"][0]["message"].startswith("The provided authorization grant")


def test_sendgrid_429_carries_rate_limit_headers():
    with SendGridEmulator(api_key="SG.k", fail_next=[{"status": 429, "retry_after": 5}]) as emu:
        with pytest.raises(sg_errors.TooManyRequestsError) as caught:
            SendGridAPIClient("SG.k", host=emu.base_url).send(mail("a@example.com"))
        headers = caught.value.headers
        assert headers["Retry-After"] == "5"
        assert headers["X-RateLimit-Remaining"] == "0"
        assert int(headers["X-RateLimit-Limit"]) > 0
        assert 3 <= int(headers["X-RateLimit-Reset"]) - time.time() <= 6


def test_sendgrid_down_and_auth_broken_modes():
    with SendGridEmulator(api_key="SG.k", down=True) as emu:
        sdk = SendGridAPIClient("SG.k", host=emu.base_url)
        with pytest.raises(sg_errors.ServiceUnavailableError):
            sdk.send(mail("a@example.com"))
        emu.set_faults(down="auth")
        with pytest.raises(sg_errors.UnauthorizedError):
            sdk.send(mail("a@example.com"))
        emu.set_faults(down=False)
        assert sdk.send(mail("a@example.com")).status_code == 202


# ---------------------------------------------------------------------------------------------- Twilio

SID = "AC" + "1" * 32


@pytest.fixture
def twilio():
    with TwilioEmulator(
        account_sid=SID, auth_token="tok", stop_numbers=["+15005550009"], landlines=["+15005550010"]
    ) as emu:
        yield emu, TwilioClient(SID, "tok", http_client=TwilioEmulatorHttpClient(emu.base_url))


def test_twilio_queues_a_message_through_the_sdk(twilio):
    emu, client = twilio
    message = client.messages.create(
        to="+15551234567",
        from_="+15557654321",
        body="Checkout is down",
        status_callback="https://example.com/cb",
    )
    assert re.fullmatch(r"SM[0-9a-f]{32}", message.sid)
    assert message.status == "queued"
    assert message.to == "+15551234567"
    assert emu.received == [
        {
            "sid": message.sid,
            "to": "+15551234567",
            "from": "+15557654321",
            "messaging_service_sid": None,
            "body": "Checkout is down",
            "status_callback": "https://example.com/cb",
            "account_sid": SID,
        }
    ]
    service = client.messages.create(to="+15551234567", messaging_service_sid="MG" + "2" * 32, body="x")
    assert service.status == "accepted"


@pytest.mark.parametrize(
    ("to", "code"), [("5551234", 21211), ("+15005550009", 21610), ("+15005550010", 21614)]
)
def test_twilio_permanent_errors_have_twilios_codes(twilio, to, code):
    emu, client = twilio
    with pytest.raises(TwilioRestException) as caught:
        client.messages.create(to=to, from_="+15557654321", body="x")
    assert (caught.value.status, caught.value.code) == (400, code)
    assert emu.received == []


def test_twilio_bad_credentials_and_throttling(twilio):
    emu, _ = twilio
    wrong = TwilioClient(SID, "wrong", http_client=TwilioEmulatorHttpClient(emu.base_url))
    with pytest.raises(TwilioRestException) as caught:
        wrong.messages.create(to="+15551234567", from_="+15557654321", body="x")
    assert (caught.value.status, caught.value.code) == (401, 20003)
    emu.set_faults(fail_next=[{"status": 429, "retry_after": 2}])
    raw = httpx.post(
        f"{emu.base_url}/2010-04-01/Accounts/{SID}/Messages.json",
        auth=(SID, "tok"),
        data={"To": "+15551234567", "From": "+15557654321", "Body": "x"},
    )
    assert raw.status_code == 429 and raw.headers["Retry-After"] == "2"
    assert raw.json() == {
        "code": 20429,
        "message": "Too Many Requests",
        "more_info": "https://www.twilio.com/docs/errors/20429",
        "status": 429,
    }


def test_twilio_logs_every_request_with_its_number_and_answer_and_a_pass_lets_one_through(twilio):
    emu, client = twilio
    emu.set_faults(fail_next=["pass", 503, "drop"])
    sends = ["+15551230001", "+15551230002", "+15551230003"]
    for to in sends:
        with contextlib.suppress(TwilioRestException, requests.ConnectionError):
            client.messages.create(to=to, from_="+15557654321", body="x")
    assert [(e["key"], e["outcome"], e["account"]) for e in emu.request_log] == [
        ("+15551230001", "accepted", SID),
        ("+15551230002", "fault 503", SID),
        ("+15551230003", "drop", SID),
    ]
    assert [m["to"] for m in emu.received] == ["+15551230001", "+15551230003"], "a drop is a ghost"


def test_a_request_of_an_account_told_to_wait_is_counted_early(twilio):
    emu, client = twilio
    emu.set_faults(fail_next=[{"status": 429, "retry_after": 30}])
    for _ in range(2):
        with contextlib.suppress(TwilioRestException):
            client.messages.create(to="+15551234567", from_="+15557654321", body="x")
    assert emu.stats["early_account_requests"] == 1
    assert [e["outcome"] for e in emu.request_log] == ["fault 429", "accepted"]


def test_twilio_sender_mps_refuses_a_sender_over_its_sliding_second():
    now = [100.0]
    with TwilioEmulator(account_sid=SID, auth_token="tok", sender_mps=2, clock=lambda: now[0]) as emu:
        client = TwilioClient(SID, "tok", http_client=TwilioEmulatorHttpClient(emu.base_url))

        def post(sender: str) -> httpx.Response:
            return httpx.post(
                f"{emu.base_url}/2010-04-01/Accounts/{SID}/Messages.json",
                auth=(SID, "tok"),
                data={"To": "+15551234567", "From": sender, "Body": "x"},
            )

        assert [post("+15550000001").status_code for _ in range(2)] == [201, 201]
        now[0] += 0.5
        refused = post("+15550000001")
        assert (refused.status_code, refused.headers["Retry-After"]) == (429, "1")
        assert refused.json()["code"] == 20429
        with pytest.raises(TwilioRestException) as caught:  # the SDK sees Twilio's 20429
            client.messages.create(to="+15551234567", from_="+15550000001", body="x")
        assert (caught.value.status, caught.value.code) == (429, 20429)
        assert post("+15550000002").status_code == 201  # each sender has its own window
        now[0] += 0.5  # the first two leave the window: (100.0, 101.0]
        assert [post("+15550000001").status_code for _ in range(3)] == [201, 201, 429]
        assert emu.stats["accepted"] == 5 and emu.stats["rejected"] == {"429": 3}
        assert emu.rejected[0]["code"] == 20429
    with EmulatorProcess("twilio", "--sender-mps", "1", "--account-sid", SID, "--auth-token", "tok") as proc:
        assert proc.client.config()["sender_mps"] == 1
        sent = [
            httpx.post(
                f"{proc.base_url}/2010-04-01/Accounts/{SID}/Messages.json",
                auth=(SID, "tok"),
                data={"To": "+15551234567", "MessagingServiceSid": "MG" + "2" * 32, "Body": "x"},
            ).status_code
            for _ in range(2)
        ]
        assert sent == [201, 429]
        proc.client.configure(sender_mps=None)  # off again
        assert proc.client.config()["sender_mps"] is None


# ---------------------------------------------------------------------------------------------- X

OAUTH1 = {"consumer_key": "ck", "consumer_secret": "cs", "access_token": "at", "access_token_secret": "ats"}


def test_x_posts_and_replies_through_tweepy():
    with XEmulator() as emu:
        client = tweepy_client(emu.base_url, **OAUTH1)
        first = client.create_tweet(text="Investigating checkout failures", user_auth=True)
        reply = client.create_tweet(text="Fixed", in_reply_to_tweet_id=first.data["id"], user_auth=True)
        assert first.data["text"] == "Investigating checkout failures"
        assert [m["in_reply_to_tweet_id"] for m in emu.received] == [None, first.data["id"]]
        assert emu.received[1]["id"] == reply.data["id"]
        assert emu.received[0]["auth"] == "oauth1"


def test_x_lists_the_accounts_own_posts_as_x_shows_them():
    with XEmulator() as emu:
        client = tweepy_client(emu.base_url, **OAUTH1)
        first = client.create_tweet(text="Down & out: https://status.example.com/i/1", user_auth=True)
        client.create_tweet(text="Fixed", in_reply_to_tweet_id=first.data["id"], user_auth=True)
        me = client.get_me(user_auth=True).data
        posts = client.get_users_tweets(
            me.id, max_results=5, tweet_fields=["created_at", "referenced_tweets"], user_auth=True
        ).data
        assert me.username == emu.username
        assert [p.text for p in posts][:1] == ["Fixed"]
        assert re.fullmatch(r"Down &amp; out: https://t\.co/\d{10}", posts[1].text)
        assert str(posts[0].referenced_tweets[0].id) == first.data["id"]
        assert posts[1].created_at.tzinfo == UTC
        later = client.get_users_tweets(me.id, start_time="2999-01-01T00:00:00Z", user_auth=True)
        assert later.data is None and later.meta["result_count"] == 0


def test_x_errors_through_tweepy():
    with XEmulator(app_bearer_token="app-token") as emu:
        client = tweepy_client(emu.base_url, **OAUTH1)
        client.create_tweet(text="same", user_auth=True)
        with pytest.raises(tweepy.Forbidden) as caught:
            client.create_tweet(text="same", user_auth=True)
        assert caught.value.api_messages == ["You are not allowed to create a Tweet with duplicate content."]
        with pytest.raises(tweepy.BadRequest):
            client.create_tweet(text="x" * 281, user_auth=True)
        client.create_tweet(text="x" * 280, user_auth=True)
        with pytest.raises(tweepy.Forbidden):
            tweepy_client(emu.base_url, bearer_token="app-token").create_tweet(text="other", user_auth=False)
        anonymous = requests.post(emu.base_url + "/2/tweets", json={"text": "t"}, timeout=5)
        assert anonymous.status_code == 401 and anonymous.json()["title"] == "Unauthorized"
        emu.set_faults(fail_next=[{"status": 429, "retry_after": 60}])
        with pytest.raises(tweepy.TooManyRequests) as limited:
            client.create_tweet(text="later", user_auth=True)
        headers = limited.value.response.headers
        assert headers["x-rate-limit-remaining"] == "0"
        assert int(headers["x-rate-limit-reset"]) > time.time() + 30
        assert len(emu.received) == 2


def test_x_weighted_length():
    assert weighted_length("hello") == 5
    assert weighted_length("see https://example.com/a/very/long/path/indeed") == 4 + 23
    assert weighted_length("日本") == 4


# ---------------------------------------------------------------------------------------------- webhooks


def signed(secret: str, msg_id: str, body: str) -> dict[str, str]:
    from datetime import datetime

    now = datetime.now(tz=UTC)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(secret).sign(msg_id, now, body),
        "content-type": "application/json",
    }


def test_webhook_receiver_verifies_signatures_and_per_path_answers():
    secret = "whsec_" + base64.b64encode(os.urandom(24)).decode()
    other = "whsec_" + base64.b64encode(os.urandom(24)).decode()
    with WebhookReceiver(secret=secret, secrets={"/special": other}, responses={"/gone": 410}) as emu:
        body = json.dumps({"a": 1})

        def post(path: str, key: str, msg_id: str) -> int:
            answer = httpx.post(emu.base_url + path, content=body, headers=signed(key, msg_id, body))
            return answer.status_code

        assert post("/hooks/1", secret, "m1") == 204
        assert post("/hooks/1", other, "m2") == 401
        assert post("/special", other, "m3") == 204
        assert post("/gone", secret, "m4") == 410
        assert [(m["webhook_id"], m["path"], m["body"]) for m in emu.received] == [
            ("m1", "/hooks/1", {"a": 1}),
            ("m3", "/special", {"a": 1}),
        ]
        assert emu.rejected[0]["webhook_id"] == "m2"
        assert emu.stats["rejected"] == {"401": 1, "410": 1}


def test_failure_rate_is_reproducible_with_a_seed():
    def outcomes() -> list[int]:
        with WebhookReceiver(verify=False, failure_rate=0.5, failure_kinds=["5xx", "429"], seed=3) as emu:
            return [httpx.post(emu.base_url + "/h", content=b"{}").status_code for _ in range(30)]

    first = outcomes()
    assert first == outcomes()
    assert 204 in first and any(code >= 500 for code in first) and 429 in first


# ---------------------------------------------------------------------------------------------- control API


def test_control_endpoints_inspect_and_steer_the_emulator():
    with WebhookReceiver(verify=False) as emu, EmulatorClient(emu.base_url) as control:
        control.set_faults(fail_next=[503, {"status": 429, "retry_after": 4}, "drop"], latency_ms=1)
        assert control.faults()["fail_next"][1] == {"action": "status", "status": 429, "retry_after": 4.0}
        assert httpx.post(emu.base_url + "/a", content=b"{}", headers={"webhook-id": "x"}).status_code == 503
        limited = httpx.post(emu.base_url + "/a", content=b"{}", headers={"webhook-id": "x"})
        assert (limited.status_code, limited.headers["Retry-After"]) == (429, "4")
        with pytest.raises(httpx.RemoteProtocolError):  # ghost: recorded, never answered
            httpx.post(emu.base_url + "/a", content=b"{}", headers={"webhook-id": "ghost"})
        assert httpx.post(emu.base_url + "/a", content=b"{}", headers={"webhook-id": "y"}).status_code == 204
        assert [m["webhook_id"] for m in control.received()] == ["ghost", "y"]
        assert control.stats()["rejected"] == {"429": 1, "503": 1}
        assert control.stats()["dropped"] == 1
        with pytest.raises(ValueError, match="unknown fault keys"):
            control.set_faults(nonsense=1)
        control.reset()
        assert control.received() == [] and control.stats()["requests"] == 0
        assert control.faults()["latency_ms"] == 0


def test_hang_holds_the_request_until_the_client_gives_up():
    with SendGridEmulator(fail_next=["hang"]) as emu:
        started = time.monotonic()
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(emu.base_url + "/v3/mail/send", json={}, timeout=0.3)
        assert time.monotonic() - started < 2
        assert emu.stats["hung"] == 1


def test_subprocess_mode_serves_and_answers_control_endpoints():
    with EmulatorProcess("webhook", "--no-verify", "--latency-ms", "1") as proc:
        assert proc.base_url.startswith("http://127.0.0.1:")
        for i in range(5):
            answer = httpx.post(f"{proc.base_url}/p", content=b"{}", headers={"webhook-id": f"id{i}"})
            assert answer.status_code == 204
        stats = proc.client.wait_for(5)
        assert (stats["accepted"], stats["unique_ids"]) == (5, 5)
        proc.client.set_faults(down=True)
        assert httpx.post(f"{proc.base_url}/p", content=b"{}").status_code == 503
    with EmulatorProcess("sendgrid", "--api-key", "SG.p") as proc:
        assert SendGridAPIClient("SG.p", host=proc.base_url).send(mail("a@example.com")).status_code == 202
        assert proc.client.received()[0]["email"] == "a@example.com"


# ---------------------------------------------------------------------------------------------- SMTP


def test_smtp_sink_records_mail_and_injects_faults():
    with SmtpSink(username="u", password="p", reject_rcpt=["gone@example.com"]) as sink:
        message = EmailMessage()
        message["Subject"], message["From"], message["To"] = "Outage", "s@example.com", "a@example.com"
        message.set_content("down")
        with smtplib.SMTP(sink.host, sink.port, timeout=5) as smtp, pytest.raises(smtplib.SMTPSenderRefused):
            smtp.send_message(message)  # AUTH is required
        with smtplib.SMTP(sink.host, sink.port, timeout=5) as smtp:
            smtp.login("u", "p")
            refused = smtp.send_message(message, to_addrs=["a@example.com", "gone@example.com"])
        assert refused == {"gone@example.com": (550, refused["gone@example.com"][1])}
        assert sink.messages[0].rcpt_tos == ["a@example.com"]
        assert sink.messages[0].message["Subject"] == "Outage"
        assert sink.messages[0].auth_login == "u"
        sink.fail_next(1)
        with smtplib.SMTP(sink.host, sink.port, timeout=5) as smtp:
            smtp.login("u", "p")
            with pytest.raises(smtplib.SMTPSenderRefused) as caught:
                smtp.send_message(message)
        assert caught.value.smtp_code == 421
        assert len(sink.messages) == 1


def test_the_fast_benchmark_receiver_counts_deliveries_and_duplicates_over_real_http():
    from tests.emulators.client import EmulatorProcess

    with EmulatorProcess("webhook-fast") as receiver, httpx.Client(base_url=receiver.base_url) as http:
        for webhook_id in ("tocsin-1", "tocsin-2", "tocsin-1"):  # one sent twice
            answer = http.post("/s/1", content=b"{}", headers={"webhook-id": webhook_id})
            assert answer.status_code == 204
        assert http.get("/s/1").status_code == 404  # only POSTs are deliveries
        assert receiver.client.stats() == {"requests": 4, "accepted": 3, "unique_ids": 2, "duplicates": 1}
        receiver.client.reset()
        assert receiver.client.stats()["accepted"] == 0
        assert http.post("/s/2", content=b"{}").status_code == 204  # no webhook-id: accepted, no id
        assert receiver.client.stats() == {"requests": 1, "accepted": 1, "unique_ids": 0, "duplicates": 0}
