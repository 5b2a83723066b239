"""``tocsin check`` and ``tocsin check --send`` against every provider's emulator, as a user runs them:
one table of channels and providers, the exit code saying whether the policy's channels are ready, and
the canary judged from the ledger and the providers' delivery reports."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from twilio.request_validator import RequestValidator

from channels.base import ChannelKind
from dispatcher.audience.subscribers import add_subscribers
from dispatcher.comms.canary import canary_outcomes, send_canary
from dispatcher.engine.runtime import Runtime
from dispatcher.runners.embedded import EmbeddedRunner
from dispatcher.store.schema import deliveries, incidents, updates
from dispatcher.web.app import create_app
from tests.cli import Ran, start_tocsin, stop, tocsin
from tests.emulators import SendGridEmulator, TwilioEmulator, WebhookReceiver, XEmulator
from tests.emulators.smtp import SmtpSink
from tests.helpers import person

SG_KEY = "SG.check-key"
SID, TOKEN, FROM = "AC" + "c3" * 16, "twilio-check-token", "+15005550006"
SECRET = "whsec_" + "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFB"
STAFF, PHONE = "ops@example.com", "+12025550123"


@dataclass
class Providers:
    sendgrid: SendGridEmulator
    smtp: SmtpSink
    twilio: TwilioEmulator
    x: XEmulator
    hooks: WebhookReceiver

    def config(self, canary: bool = False) -> str:
        text = f"""
webhook_secret = "{SECRET}"
public_url = "https://tocsin.example.com"
[channels.email]
providers = ["sendgrid", "smtp"]
[channels.sms]
providers = ["twilio"]
[channels.webhook]
providers = ["webhook"]
[channels.social]
providers = ["x"]
[providers.sendgrid]
api_key = "{SG_KEY}"
from_email = "status@example.com"
base_url = "{self.sendgrid.base_url}"
[providers.smtp]
host = "{self.smtp.host}"
port = {self.smtp.port}
starttls = false
from_email = "status@example.com"
[providers.twilio]
account_sid = "{SID}"
auth_token = "{TOKEN}"
from_number = "{FROM}"
base_url = "{self.twilio.base_url}"
[providers.x]
consumer_key = "ck"
consumer_secret = "cs"
access_token = "at-1"
access_token_secret = "ats"
base_url = "{self.x.base_url}"
[providers.webhook]
allow_destinations = ["127.0.0.0/8"]
"""
        if canary:
            text += f"""[canary]
email = ["{STAFF}"]
sms = ["{PHONE}"]
webhook = ["{self.hooks.base_url}/canary"]
wait = 3
"""
        return text


@pytest.fixture
def providers() -> Iterator[Providers]:
    with (
        SendGridEmulator(api_key=SG_KEY) as sendgrid,
        SmtpSink() as smtp,
        TwilioEmulator(account_sid=SID, auth_token=TOKEN) as twilio,
        XEmulator() as x,
        WebhookReceiver(secret=SECRET) as hooks,
    ):
        yield Providers(sendgrid, smtp, twilio, x, hooks)


def check(tmp_path: Path, providers: Providers, *args: str, canary: bool = False) -> Ran:
    (tmp_path / "tocsin.toml").write_text(providers.config(canary))
    if not (tmp_path / "tocsin.db").exists():
        assert tocsin("init", cwd=tmp_path).code == 0
    return tocsin("check", *args, cwd=tmp_path)


def row(out: str, channel: str, provider: str) -> list[str]:
    """The table row of ``channel`` and ``provider``: its cells."""
    for line in out.splitlines():
        cells = [c.strip() for c in line.strip("│┃ ").split("│")]
        if cells[:2] == [channel, provider]:
            return cells
    raise AssertionError(f"no row {channel}/{provider} in:\n{out}")


def test_every_provider_ready(tmp_path: Path, providers: Providers) -> None:
    ran = check(tmp_path, providers)
    assert ran.code == 0, ran.out + ran.err
    assert row(ran.out, "-", "database")[2] == "yes"
    assert row(ran.out, "email", "sendgrid")[2:4] == ["yes", "the API key may send (mail.send)"]
    assert row(ran.out, "email", "smtp")[2] == "yes"
    assert row(ran.out, "sms", "twilio")[2:4] == ["yes", f"account {SID} is active; sending from {FROM}"]
    assert row(ran.out, "social", "x")[2:4] == ["yes", "posting as @examplestatus"]
    assert row(ran.out, "webhook", "webhook")[2] == "yes"
    assert row(ran.out, "email", "sendgrid")[4].endswith(" ms")
    assert "every channel the policy uses is ready" in ran.out, "public_url is set: no warning"
    sent = (
        providers.sendgrid.received
        + providers.twilio.received
        + providers.x.received
        + providers.hooks.received
    )
    assert sent == [] and providers.smtp.messages == [], "probes send nothing"


def test_email_without_an_unsubscribe_link_is_said_not_hidden(tmp_path: Path, providers: Providers) -> None:
    (tmp_path / "tocsin.toml").write_text(
        providers.config().replace('public_url = "https://tocsin.example.com"\n', "")
    )
    assert tocsin("init", cwd=tmp_path).code == 0
    ran = tocsin("check", cwd=tmp_path)
    assert ran.code == 0, "a warning, not a failure: email still goes out"
    assert "email goes out without its one-click unsubscribe link: set public_url" in " ".join(
        ran.out.split()
    )
    assert "ready, with warnings above" in ran.out


def test_a_worker_says_at_start_that_email_goes_without_its_unsubscribe_link(
    tmp_path: Path, providers: Providers
) -> None:
    (tmp_path / "tocsin.toml").write_text(
        providers.config().replace('public_url = "https://tocsin.example.com"\n', "")
    )
    assert tocsin("init", cwd=tmp_path).code == 0
    worker = start_tocsin("worker", "--tick", "60", cwd=tmp_path)
    log = tmp_path / "worker.log"
    try:
        deadline = time.monotonic() + 60
        while "public_url" not in log.read_text() and worker.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        stop(worker)
    said = " ".join(log.read_text().split())
    assert "warning: email goes out without its one-click unsubscribe link: set public_url" in said


def test_a_revoked_key_and_a_read_only_token_are_named_and_fail_the_check(
    tmp_path: Path, providers: Providers
) -> None:
    providers.sendgrid.revoke_key()
    providers.x.configure({"read_only_tokens": ["at-1"]})
    ran = check(tmp_path, providers)
    assert ran.code == 1
    assert row(ran.out, "email", "sendgrid")[2:4] == [
        "NO",
        "SendGrid refused the API key (401): revoked or wrong",
    ]
    assert row(ran.out, "email", "smtp")[2] == "yes"
    assert row(ran.out, "social", "x")[2] == "NO"
    assert "email is degraded: a fallback carries it; failover is gone" in ran.out
    assert "social is down: updates on it reach no one" in ran.out
    assert "not ready: social" in ran.out
    assert "email: ready -> degraded; staff told" in ran.out

    providers.x.configure({"read_only_tokens": []})
    again = check(tmp_path, providers)
    assert again.code == 0, "a degraded channel still delivers: a warning, not a failure"
    assert "ready, with warnings above" in again.out


def test_a_wrong_twilio_account_is_not_ready(tmp_path: Path, providers: Providers) -> None:
    providers.twilio.configure({"account_sid": "AC" + "d4" * 16})  # the token belongs to another account
    ran = check(tmp_path, providers)
    assert ran.code == 1
    assert row(ran.out, "sms", "twilio")[2] == "NO"
    assert "Twilio refused account_sid and auth_token" in ran.out


def test_check_send_reports_each_canary_from_the_ledger(tmp_path: Path, providers: Providers) -> None:
    ran = check(tmp_path, providers, "--send", canary=True)
    assert ran.code == 0, ran.out + ran.err
    canary = ran.out[ran.out.index("Canary") :]
    assert row(canary, "email", STAFF)[2:4] == ["sendgrid", "unconfirmed"]
    assert row(canary, "sms", PHONE)[2:4] == ["twilio", "unconfirmed"]
    webhook = row(canary, "webhook", f"{providers.hooks.base_url}/canary")
    assert webhook[2:5] == ["webhook", "yes", "accepted by the receiving end (webhook)"]
    [mail] = providers.sendgrid.received
    assert mail["email"] == STAFF and "[TEST] Tocsin canary" in str(mail["text"])
    assert [m["to"] for m in providers.twilio.received] == [PHONE]
    [hook] = providers.hooks.received
    assert hook["verified"] is True and "[TEST] Tocsin canary" in str(hook["body"])
    assert providers.x.received == [], "a canary never goes to the public"


def test_a_canary_that_cannot_arrive_fails_the_check(tmp_path: Path, providers: Providers) -> None:
    providers.hooks.configure({"responses": {"/canary": 410}})
    ran = check(tmp_path, providers, "--send", canary=True)
    assert ran.code == 1
    assert row(ran.out[ran.out.index("Canary") :], "webhook", f"{providers.hooks.base_url}/canary")[3] == "NO"
    assert "did not arrive" in ran.out


def test_without_canary_contacts_send_says_what_to_configure(tmp_path: Path, providers: Providers) -> None:
    ran = check(tmp_path, providers, "--send")
    assert ran.code == 1
    assert (
        "canary: no canary contacts on an enabled channel: set [canary] email, sms, webhook or chat"
        in ran.err
    )


def test_twilio_s_status_callback_confirms_the_canary(make_runtime: Callable[..., Runtime]) -> None:
    """ "Arrived" comes from the provider's own delivery report, written into the ledger by the callback."""
    with TwilioEmulator(account_sid=SID, auth_token=TOKEN) as twilio:
        rt = make_runtime(
            channels={"sms": {"providers": ["twilio"]}},
            providers={
                "twilio": {
                    "account_sid": SID,
                    "auth_token": TOKEN,
                    "from_number": FROM,
                    "base_url": twilio.base_url,
                }
            },
            canary={"sms": [PHONE]},
        )
        runner = EmbeddedRunner(rt)
        update_id = send_canary(rt, runner.queue)
        runner.run_until_idle()
        [before] = canary_outcomes(rt, update_id)
        assert (before.provider, before.arrived) == ("twilio", None)
        [message] = twilio.received
    path = "/providers/twilio/status"
    params = {"MessageSid": message["sid"], "MessageStatus": "delivered", "To": PHONE}
    signature = RequestValidator(TOKEN).compute_signature("http://testserver" + path, params)
    with TestClient(create_app(lambda: rt)) as http:
        assert http.post(path, data=params, headers={"X-Twilio-Signature": signature}).status_code == 204
    [after] = canary_outcomes(rt, update_id)
    assert (after.arrived, after.detail) == (True, "delivered (twilio reported it)")


def test_preview_shows_the_channels_standing(tmp_path: Path, providers: Providers) -> None:
    providers.sendgrid.revoke_key()
    check(tmp_path, providers)
    assert tocsin("incident", "open", "Checkout failing", "--severity", "minor", cwd=tmp_path).code == 0
    ran = tocsin(
        "preview",
        "1",
        "--message",
        "Checkout fails since 09:12 UTC. Sorry.",
        "--next-update-in",
        "30m",
        cwd=tmp_path,
    )
    assert ran.code == 0, ran.err
    assert "channels standing:" in ran.out
    assert "email: degraded: sendgrid (SendGrid refused the API key (401): revoked or wrong)" in ran.out
    assert "sms: ready" in ran.out


def test_the_canary_reaches_the_canary_contacts_only_and_closes_at_once(
    make_runtime: Callable[..., Runtime],
) -> None:
    rt = make_runtime(canary={"email": [STAFF]})
    add_subscribers(rt, [person(1), person(2), person(3, internal=True)])  # none gets the test message
    runner = EmbeddedRunner(rt)
    update_id = send_canary(rt, runner.queue)
    runner.run_until_idle()
    [outcome] = canary_outcomes(rt, update_id)
    assert (outcome.channel, outcome.address, outcome.arrived) == (ChannelKind.EMAIL, STAFF, True)
    assert [p.name for p in (rt.settings.outbox_dir / f"update-{update_id}" / "email").iterdir()] != []
    with rt.engine.connect() as conn:
        kind, status = conn.execute(
            select(incidents.c.kind, incidents.c.status)
            .join(updates, updates.c.incident_id == incidents.c.id)
            .where(updates.c.id == update_id)
        ).one()
        addresses = (
            conn.execute(select(deliveries.c.address).where(deliveries.c.update_id == update_id))
            .scalars()
            .all()
        )
    assert (kind, status) == ("canary", "resolved"), "closed at once: no reminder, never on the status page"
    assert addresses == [STAFF]
