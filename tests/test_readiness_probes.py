"""Readiness probes against the providers' wire formats: each official SDK (or protocol) talks to a local
emulator, which answers as the provider does, including a revoked key and a wrong account. Nothing is
ever sent by a probe."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from moto.server import ThreadedMotoServer

from channels import registry
from channels.readiness import Probing, Readiness
from dispatcher.config.resources import templates_root
from tests.emulators import SendGridEmulator, TwilioEmulator, XEmulator
from tests.emulators.smtp import SmtpSink
from tests.services import free_port

SG_KEY = "SG.probe-key"
SID, TOKEN, FROM = "AC" + "a1" * 16, "twilio-token", "+15005550006"
X_CREDENTIALS = {
    "consumer_key": "ck",
    "consumer_secret": "cs",
    "access_token": "at-1",
    "access_token_secret": "ats",
}


def probe(name: str, options: dict[str, object]) -> Readiness:
    adapter = registry.create(name, options)
    try:
        assert isinstance(adapter, Probing)
        return adapter.probe()
    finally:
        adapter.close()


# --------------------------------------------------------------------------------------- SendGrid


@pytest.fixture
def sendgrid() -> Iterator[SendGridEmulator]:
    with SendGridEmulator(api_key=SG_KEY) as emu:
        yield emu


def sendgrid_probe(emu: SendGridEmulator) -> Readiness:
    return probe(
        "sendgrid", {"api_key": SG_KEY, "from_email": "status@example.com", "base_url": emu.base_url}
    )


def test_sendgrid_is_ready_when_its_key_may_send(sendgrid: SendGridEmulator) -> None:
    assert sendgrid_probe(sendgrid) == Readiness.ok("the API key may send (mail.send)")
    assert sendgrid.received == [], "nothing sent"


def test_sendgrid_is_not_ready_with_a_key_that_cannot_send(sendgrid: SendGridEmulator) -> None:
    sendgrid.configure({"scopes": ["stats.read", "alerts.read"]})
    found = sendgrid_probe(sendgrid)
    assert not found.ready and found.detail == "the API key lacks the mail.send scope (2 other scopes)"


def test_sendgrid_is_not_ready_once_the_key_is_revoked(sendgrid: SendGridEmulator) -> None:
    sendgrid.revoke_key()
    found = sendgrid_probe(sendgrid)
    assert found == Readiness.not_ready("SendGrid refused the API key (401): revoked or wrong")
    assert SG_KEY not in found.detail


def test_sendgrid_down_is_not_ready(sendgrid: SendGridEmulator) -> None:
    sendgrid.set_faults(down=True)
    assert sendgrid_probe(sendgrid).detail.startswith("SendGrid answered 503")


# --------------------------------------------------------------------------------------- Twilio


@pytest.fixture
def twilio() -> Iterator[TwilioEmulator]:
    with TwilioEmulator(account_sid=SID, auth_token=TOKEN) as emu:
        yield emu


def twilio_probe(emu: TwilioEmulator, **options: object) -> Readiness:
    base = {"account_sid": SID, "auth_token": TOKEN, "from_number": FROM, "base_url": emu.base_url}
    return probe("twilio", {**base, **options})


def test_twilio_is_ready_when_the_account_is_active_and_owns_the_number(twilio: TwilioEmulator) -> None:
    twilio.configure({"phone_numbers": [FROM]})
    assert twilio_probe(twilio) == Readiness.ok(f"account {SID} is active; sending from {FROM}")
    assert twilio.received == []


def test_twilio_with_credentials_of_another_account_is_not_ready(twilio: TwilioEmulator) -> None:
    other = "AC" + "b2" * 16
    found = twilio_probe(twilio, account_sid=other)
    assert not found.ready
    assert found.detail.startswith("Twilio refused account_sid and auth_token (20003: Authenticate)")
    assert TOKEN not in found.detail


def test_twilio_with_a_revoked_token_is_not_ready(twilio: TwilioEmulator) -> None:
    twilio.configure({"auth_token": "rotated-token"})
    assert "revoked or wrong" in twilio_probe(twilio).detail


def test_a_suspended_twilio_account_is_not_ready(twilio: TwilioEmulator) -> None:
    twilio.configure({"account_status": "suspended"})
    assert twilio_probe(twilio) == Readiness.not_ready(f"the Twilio account {SID} is suspended")


def test_a_sender_number_the_account_does_not_own_is_not_ready(twilio: TwilioEmulator) -> None:
    twilio.configure({"phone_numbers": ["+15005550001"]})
    assert twilio_probe(twilio) == Readiness.not_ready(
        f"from_number {FROM} is not a number of the account {SID}"
    )


# --------------------------------------------------------------------------------------- X


@pytest.fixture
def x() -> Iterator[XEmulator]:
    with XEmulator() as emu:
        yield emu


def x_probe(emu: XEmulator) -> Readiness:
    return probe("x", {**X_CREDENTIALS, "base_url": emu.base_url})


def test_x_is_ready_when_it_names_the_posting_account(x: XEmulator) -> None:
    assert x_probe(x) == Readiness.ok("posting as @examplestatus")
    assert x.received == []


def test_x_with_a_revoked_access_token_is_not_ready(x: XEmulator) -> None:
    x.configure({"revoked_tokens": ["at-1"]})
    found = x_probe(x)
    assert not found.ready and found.detail.startswith("X refused the access token (401")


def test_x_with_a_read_only_token_is_not_ready(x: XEmulator) -> None:
    x.configure({"read_only_tokens": ["at-1"]})
    found = x_probe(x)
    assert not found.ready
    assert "may only read (x-access-level: read)" in found.detail


# --------------------------------------------------------------------------------------- SMTP


def test_smtp_logs_in_and_says_noop_without_sending() -> None:
    with SmtpSink(username="relay", password="pw") as sink:
        options = {"host": sink.host, "port": sink.port, "starttls": False, "from_email": "s@example.com"}
        assert probe("smtp", {**options, "username": "relay", "password": "pw"}) == Readiness.ok(
            f"{sink.host}:{sink.port} accepts a session as relay"
        )
        wrong = probe("smtp", {**options, "username": "relay", "password": "old"})
        assert not wrong.ready and "authentication failed (535)" in wrong.detail
        assert sink.messages == []


def test_smtp_not_listening_is_not_ready() -> None:
    port = free_port()
    found = probe(
        "smtp", {"host": "127.0.0.1", "port": port, "starttls": False, "from_email": "s@example.com"}
    )
    assert not found.ready and "cannot connect" in found.detail


# --------------------------------------------------------------------------------------- the rest


def test_apprise_rooms_are_valid_urls() -> None:
    found = probe("apprise", {"rooms": {"ops": "json://127.0.0.1:9/ops", "team": "slack://T0/B0/XYZ"}})
    assert found == Readiness.ok("2 room(s), every URL valid for Apprise")


def test_folders_must_be_writable(tmp_path: Path) -> None:
    assert probe("outbox", {"directory": str(tmp_path / "outbox")}).ready
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    found = probe("outbox", {"directory": str(blocker / "outbox")})
    assert not found.ready and found.detail.startswith(
        f"the outbox folder {blocker / 'outbox'}: cannot write"
    )


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def test_the_status_site_bucket_must_take_an_object(s3_endpoint: str, tmp_path: Path) -> None:
    keys = {"s3_access_key_id": "AKID", "s3_secret_access_key": "secret", "s3_region": "us-east-1"}
    bucket = f"status-{uuid.uuid4().hex[:10]}"
    client = boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        region_name="us-east-1",
        aws_access_key_id="AKID",
        aws_secret_access_key="secret",
    )
    client.create_bucket(Bucket=bucket)
    options = {
        "s3_bucket": bucket,
        "s3_endpoint_url": s3_endpoint,
        **keys,
        "directory": str(tmp_path / "status"),
        "template_dirs": [str(templates_root())],
    }
    assert probe("statuspage", options) == Readiness.ok(f"writable: {tmp_path / 'status'}, s3://{bucket}/")
    assert client.list_objects_v2(Bucket=bucket).get("KeyCount", 0) == 0, "the probe object is gone"
    missing = probe("statuspage", {**options, "s3_bucket": "no-such-bucket-here"})
    assert not missing.ready and "NoSuchBucket" in missing.detail
