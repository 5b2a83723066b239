"""A live status page and self-service API for browser tests and screenshots.

The static site is published by the real ``statuspage`` channel into a folder served over HTTP on
127.0.0.1 (as any web server would); ``tocsin api``'s app runs under uvicorn at ``public_url``, with
email through the SendGrid emulator, texts through the Twilio emulator and webhooks to a local receiver
that answers verification pings. A few weeks of history give the uptime bars something to show.
Shared by tests/test_statuspage_playwright.py and docs/make_screenshots.py.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import uvicorn
from sqlalchemy import insert

from channels.base import ChannelKind
from dispatcher.comms.components import ComponentDraft, create_component
from dispatcher.comms.incidents import open_incident
from dispatcher.comms.maintenance import MaintenanceDraft, schedule_maintenance
from dispatcher.comms.publish import publish
from dispatcher.config.settings import ChannelSettings, Settings
from dispatcher.domain.models import Incident, IncidentDraft, IncidentStatus, Severity
from dispatcher.engine.runtime import Runtime, build_runtime
from dispatcher.runners.embedded import EmbeddedRunner
from dispatcher.store.engine import migrate
from dispatcher.store.schema import component_impacts
from dispatcher.web.app import create_app
from tests.emulators import SendGridEmulator, TwilioEmulator, WebhookReceiver
from tests.helpers import ManualClock, draft
from tests.services import free_port

SENDGRID_KEY = "SG.status-test"
TWILIO_SID, TWILIO_TOKEN, TWILIO_FROM = "AC" + "2" * 32, "twilio-status-token", "+12025550100"


@dataclass
class StatusStage:
    site: str
    """The static status page, e.g. ``http://127.0.0.1:5123/``."""
    api: str
    """``tocsin api`` (``public_url``), e.g. ``http://127.0.0.1:5124``."""
    rt: Runtime
    sendgrid: SendGridEmulator
    twilio: TwilioEmulator
    hooks: WebhookReceiver
    checkout_outage: Incident
    """Three days ago: an hour of major outage, then an hour of partial outage."""
    bad_day: datetime


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@contextlib.contextmanager
def _static(folder: Path) -> Iterator[str]:
    handler = functools.partial(_Quiet, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, name="status-site", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        thread.join(10)


@contextlib.contextmanager
def _serving(rt: Runtime, port: int) -> Iterator[str]:
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(lambda: rt), host="127.0.0.1", port=port, log_level="warning", lifespan="off"
        )
    )
    thread = threading.Thread(target=server.run, name="status-api", daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("tocsin api did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def _settings(folder: Path, api: str, sendgrid: SendGridEmulator, twilio: TwilioEmulator) -> Settings:
    return Settings(
        database_url=f"sqlite:///{folder / 'tocsin.db'}",
        outbox_dir=folder / "outbox",
        policy_file=folder / "policy.toml",
        organisation="Example Corp",
        public_url=api,
        signing_key="status-stage-signing-key-0123456789abcdef",
        channels={
            ChannelKind.EMAIL: ChannelSettings(providers=["sendgrid"]),
            ChannelKind.SMS: ChannelSettings(providers=["twilio"]),
            ChannelKind.WEBHOOK: ChannelSettings(providers=["webhook"]),
            ChannelKind.SOCIAL: ChannelSettings(providers=["outbox"], enabled=False),
            ChannelKind.STATUSPAGE: ChannelSettings(providers=["statuspage"], enabled=True),
        },
        providers={
            "sendgrid": {
                "api_key": SENDGRID_KEY,
                "base_url": sendgrid.base_url,
                "from_email": "status@example.com",
            },
            "twilio": {
                "account_sid": TWILIO_SID,
                "auth_token": TWILIO_TOKEN,
                "from_number": TWILIO_FROM,
                "base_url": twilio.base_url,
            },
            "webhook": {"timeout": 5, "allow_destinations": ["127.0.0.0/8"]},
            "statuspage": {"directory": str(folder / "www" / "status")},
        },
    )


def _history(rt: Runtime, clock: ManualClock, now: datetime) -> tuple[Incident, datetime]:
    """A month of components and incidents: what the uptime bars are made of."""
    runner = EmbeddedRunner(rt)
    clock.at = now - timedelta(days=60)
    create_component(rt, ComponentDraft(name="API", description="The public REST API and webhooks"))
    create_component(rt, ComponentDraft(name="Dashboard", description="app.example.com"))
    create_component(rt, ComponentDraft(name="Checkout", group="Payments"))
    create_component(rt, ComponentDraft(name="Refunds", group="Payments"))

    def say(inc: Incident, message: str, status: IncidentStatus) -> int:
        promise = None if status is IncidentStatus.RESOLVED else clock.at + timedelta(minutes=30)
        published = publish(rt, draft(inc, message, status=status, next_update_at=promise), runner.queue)
        runner.run_until_idle()
        return published.update.id

    def hit(inc: Incident, component: str, level: str, update_id: int) -> None:
        with rt.engine.begin() as conn:
            conn.execute(
                insert(component_impacts),
                {
                    "incident_id": inc.id,
                    "component": component,
                    "impact": level,
                    "effective_at": clock.at,
                    "source": "update",
                    "update_id": update_id,
                },
            )

    def outage(
        days_ago: int, title: str, component: str, severity: Severity, first: str, worst: str, minutes: int
    ) -> Incident:
        clock.at = now - timedelta(days=days_ago, hours=2)
        inc = open_incident(rt, IncidentDraft(title=title, severity=severity, components=[component]))
        hit(inc, component, worst, say(inc, first, IncidentStatus.INVESTIGATING))
        clock.at += timedelta(minutes=minutes // 2)
        hit(
            inc,
            component,
            "degraded_performance",
            say(inc, "A fix is rolling out.", IncidentStatus.IDENTIFIED),
        )
        clock.at += timedelta(minutes=10)
        say(inc, "The fix is out; we are watching it.", IncidentStatus.MONITORING)
        clock.at += timedelta(minutes=max(30, minutes // 2))
        hit(
            inc,
            component,
            "operational",
            say(inc, f"{component} works normally again. Sorry.", IncidentStatus.RESOLVED),
        )
        return inc

    outage(
        21,
        "Slow dashboard",
        "Dashboard",
        Severity.MINOR,
        "Dashboard pages load slowly.",
        "degraded_performance",
        90,
    )
    outage(
        12, "API errors", "API", Severity.MAJOR, "About one API call in five fails.", "partial_outage", 120
    )
    checkout = outage(
        3, "Checkout failing", "Checkout", Severity.MAJOR, "Nobody can pay at checkout.", "major_outage", 120
    )
    bad_day = now - timedelta(days=3, hours=2)
    clock.at = now
    schedule_maintenance(
        rt,
        runner.queue,
        MaintenanceDraft(
            title="Database upgrade",
            starts_at=now + timedelta(days=2),
            ends_at=now + timedelta(days=2, hours=1),
            components=["Refunds"],
        ),
    )
    runner.run_until_idle()
    return checkout, bad_day


@contextlib.contextmanager
def staged_status(folder: Path) -> Iterator[StatusStage]:
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    with (
        SendGridEmulator(api_key=SENDGRID_KEY) as sendgrid,
        TwilioEmulator(account_sid=TWILIO_SID, auth_token=TWILIO_TOKEN) as twilio,
        WebhookReceiver(verify=False, answer_challenges=True) as hooks,
    ):
        settings = _settings(folder, f"http://127.0.0.1:{port}", sendgrid, twilio)
        migrate(settings.database_url)
        rt = build_runtime(settings)
        try:
            real_now = rt.clock.now().replace(microsecond=0)
            clock = ManualClock(real_now)
            rt.clock = clock
            checkout, bad_day = _history(rt, clock, real_now)
            with _static(folder / "www" / "status") as site, _serving(rt, port) as api:
                yield StatusStage(site, api, rt, sendgrid, twilio, hooks, checkout, bad_day)
        finally:
            rt.close()
