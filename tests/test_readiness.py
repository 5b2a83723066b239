"""Channel readiness as people see it: the tick probes every provider on its interval; a channel that goes
from ready to not ready is announced to staff through the channels still standing, and its recovery too;
``/readyz``, ``/metrics``, the console's compose page and ``tocsin preview`` show what the probes found.
Providers are the in-memory ones (what is under test is the decision, not a wire format: the probes'
wire formats are in ``test_readiness_probes.py``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from channels.base import ChannelKind
from channels.memory import MemoryAdapter
from channels.readiness import Readiness
from dispatcher.audience.subscribers import add_subscribers
from dispatcher.comms import tick
from dispatcher.comms.tick import TickReport, run_tick
from dispatcher.domain.models import ContactPoint, Subscriber
from dispatcher.engine.readiness.state import snapshot
from dispatcher.engine.runtime import Runtime
from dispatcher.runners.embedded import EmbeddedRunner
from dispatcher.store.schema import incidents, updates
from dispatcher.web.app import create_app
from tests.helpers import ManualClock, hand_clock, incident
from tests.test_console import Browser

STAFF = "oncall@example.com"
STAFF_PHONE = "+12025550101"


@dataclass
class Stage:
    rt: Runtime
    clock: ManualClock
    email: MemoryAdapter
    sms: MemoryAdapter
    backup_sms: MemoryAdapter

    def tick(self) -> TickReport:
        runner = EmbeddedRunner(self.rt)
        report = run_tick(self.rt, runner.queue)
        runner.run_until_idle()
        return report

    def internal_updates(self) -> list[tuple[int, str, list[str]]]:
        with self.rt.engine.connect() as conn:
            rows = conn.execute(select(updates.c.incident_id, updates.c.message, updates.c.channels))
            return [(r.incident_id, r.message, list(r.channels)) for r in rows]


@pytest.fixture
def stage(make_runtime: Callable[..., Runtime]) -> Stage:
    email, sms, backup = MemoryAdapter(), MemoryAdapter(), MemoryAdapter()
    rt = make_runtime(
        adapters={"sendgrid": email, "twilio": sms, "memory": backup},
        channels={
            "email": {"providers": ["sendgrid"]},
            "sms": {"providers": ["twilio", "memory"]},
            "webhook": {"enabled": False},
            "social": {"enabled": False},
        },
        readiness={"probe_every": 300},
    )
    staff = Subscriber(
        name="On-call",
        internal=True,
        contact_points=[
            ContactPoint(channel=ChannelKind.EMAIL, address=STAFF),
            ContactPoint(channel=ChannelKind.SMS, address=STAFF_PHONE),
        ],
    )
    add_subscribers(rt, [staff])
    return Stage(rt, hand_clock(rt), email, sms, backup)


def test_the_tick_probes_on_its_interval(stage: Stage) -> None:
    stage.tick()
    assert (stage.email.probes, stage.sms.probes) == (1, 1)
    stage.clock.advance(seconds=299)
    stage.tick()
    assert stage.email.probes == 1, "not due yet"
    stage.clock.advance(seconds=1)
    stage.tick()
    assert stage.email.probes == 2


def test_a_channel_going_down_is_told_to_staff_on_the_channels_still_standing(stage: Stage) -> None:
    stage.tick()
    assert stage.internal_updates() == [], "all ready: nothing to say"

    revoked = "SendGrid refused the API key (401): revoked or wrong"
    stage.email.answer_probes(Readiness.not_ready(revoked))
    stage.clock.advance(minutes=5)
    report = stage.tick()

    assert report.readiness == ["email: ready -> down"]
    [(incident_id, text, channels)] = stage.internal_updates()
    assert channels == ["sms"], "email is down: the alert goes by SMS"
    assert text.startswith("Channel email is DOWN.\n- sendgrid: " + revoked)
    assert "updates will not reach anyone on email" in text
    assert stage.sms.addresses() == [STAFF_PHONE]
    assert stage.email.addresses() == []
    with stage.rt.engine.connect() as conn:
        alert = conn.execute(select(incidents).where(incidents.c.id == incident_id)).mappings().one()
    assert (alert["kind"], alert["title"], alert["status"]) == (
        "readiness",
        "Channel email not ready",
        "investigating",
    )

    stage.clock.advance(minutes=5)
    assert stage.tick().readiness == [], "still down: said once, not every round"

    stage.email.answer_probes(Readiness.ok("the API key may send (mail.send)"))
    stage.clock.advance(minutes=5)
    assert stage.tick().readiness == ["email: down -> ready"]
    told = stage.internal_updates()
    assert len(told) == 2 and told[1][0] == incident_id
    assert told[1][1].startswith("Channel email is ready again")
    assert sorted(told[1][2]) == ["email", "sms"]
    with stage.rt.engine.connect() as conn:
        status = conn.execute(select(incidents.c.status).where(incidents.c.id == incident_id)).scalar_one()
    assert status == "resolved"
    assert snapshot(stage.rt)[ChannelKind.EMAIL].incident_id is None


def test_a_probe_that_fails_once_is_asked_again_and_a_blip_alerts_nobody(stage: Stage) -> None:
    stage.tick()
    stage.email.answer_next_probe(Readiness.not_ready("cannot reach SendGrid: ConnectionResetError"))
    stage.clock.advance(minutes=5)

    report = stage.tick()

    assert stage.email.probes == 3, "the failed probe was asked again in the same round"
    assert report.readiness == [] and stage.internal_updates() == [], "a blip is no change: no alert"
    assert snapshot(stage.rt)[ChannelKind.EMAIL].state == "ready"


def test_a_fallback_carrying_the_channel_is_degraded_not_down(stage: Stage) -> None:
    stage.sms.answer_probes(Readiness.not_ready("Twilio refused account_sid and auth_token (20003)"))
    stage.tick()
    [(_, text, channels)] = stage.internal_updates()
    assert text.startswith("Channel sms is DEGRADED.")
    assert "sms still goes out through memory; failover is gone" in text
    assert sorted(channels) == ["email", "sms"], "a degraded channel still carries the alert"
    assert snapshot(stage.rt)[ChannelKind.SMS].summary() == (
        "degraded: twilio (Twilio refused account_sid and auth_token (20003))"
    )


def test_with_no_channel_standing_the_tick_reports_the_error_loudly(
    stage: Stage, caplog: pytest.LogCaptureFixture
) -> None:
    for adapter in (stage.email, stage.sms, stage.backup_sms):
        adapter.answer_probes(Readiness.not_ready("gone"))
    report = stage.tick()
    assert sorted(report.readiness) == ["email: ready -> down", "sms: ready -> down"]
    assert len(report.errors) == 2
    assert all("staff not told: no channel is standing" in e for e in report.errors)
    assert "could not tell staff" in caplog.text


def test_a_probe_that_crashes_is_not_ready_and_logged(stage: Stage, caplog: pytest.LogCaptureFixture) -> None:
    def crash() -> Readiness:
        raise KeyError("bug in a probe")

    stage.email.probe = crash  # type: ignore[method-assign]
    stage.tick()
    found = snapshot(stage.rt)[ChannelKind.EMAIL]
    assert found.state == "down"
    assert found.providers[0].detail == "the probe crashed: KeyError: 'bug in a probe'"
    assert "the probe of sendgrid crashed" in caplog.text


def test_one_failing_duty_does_not_keep_the_others_from_running(
    stage: Stage, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(rt: Runtime, queue: object, report: TickReport) -> None:
        raise RuntimeError("maintenance table on fire")

    duties = [(name, broken if name == "maintenance" else duty) for name, duty in tick.DUTIES]
    monkeypatch.setattr(tick, "DUTIES", duties)
    report = stage.tick()
    assert report.errors == ["maintenance: RuntimeError: maintenance table on fire"]
    assert stage.email.probes == 1, "the duties after it still ran"
    assert "tick: maintenance failed" in caplog.text and "Traceback" in caplog.text


def test_readyz_and_metrics_show_each_channel_and_provider(stage: Stage) -> None:
    stage.sms.answer_probes(Readiness.not_ready("Twilio refused account_sid and auth_token (20003)"))
    stage.tick()
    with TestClient(create_app(lambda: stage.rt)) as http:
        ready = http.get("/readyz")
        metrics = http.get("/metrics").text
    assert ready.status_code == 200, "a channel down does not make the instance unready"
    channels = ready.json()["channels"]
    assert channels["email"]["state"] == "ready" and channels["email"]["standing"] is True
    assert channels["sms"]["state"] == "degraded"
    assert [(p["provider"], p["ready"]) for p in channels["sms"]["providers"]] == [
        ("twilio", False),
        ("memory", True),
    ]
    assert channels["sms"]["providers"][0]["detail"] == "Twilio refused account_sid and auth_token (20003)"
    assert 'tocsin_provider_ready{channel="sms",provider="twilio"} 0.0' in metrics
    assert 'tocsin_provider_ready{channel="sms",provider="memory"} 1.0' in metrics
    assert 'tocsin_provider_ready{channel="email",provider="sendgrid"} 1.0' in metrics
    assert 'tocsin_readiness_checked_timestamp_seconds{channel="email"}' in metrics


def test_the_compose_page_shows_the_channels_standing(stage: Stage) -> None:
    stage.email.answer_probes(Readiness.not_ready("SendGrid refused the API key (401): revoked or wrong"))
    stage.tick()
    inc = incident(stage.rt)
    with TestClient(create_app(lambda: stage.rt)) as http:
        browser = Browser(http, stage.rt)
        browser.log_in()
        page = browser.get(f"/console/incidents/{inc.id}").text
    standing = page[page.index('<div id="standing"') : page.index('<div class="compose">')]
    assert "<strong>email</strong>: down" in standing
    assert "sendgrid: SendGrid refused the API key (401): revoked or wrong" in standing
    assert "<strong>sms</strong>: ready" in standing
