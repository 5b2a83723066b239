"""A live console for browser tests and screenshots: ``tocsin api``'s app served by uvicorn on 127.0.0.1,
email through the SendGrid emulator, webhooks to a local receiver, SMS and social to the outbox, and
a few subscribers. Shared by tests/test_console_playwright.py and docs/make_screenshots.py."""

from __future__ import annotations

import contextlib
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import uvicorn

from channels.base import ChannelKind
from dispatcher.access.tokens import Scope, create_token
from dispatcher.audience.subscribers import add_subscribers
from dispatcher.config.settings import ChannelSettings, Settings
from dispatcher.domain.models import ContactPoint, Subscriber
from dispatcher.engine.runtime import Runtime, build_runtime
from dispatcher.store.engine import migrate
from dispatcher.web.app import create_app
from tests.emulators import SendGridEmulator, WebhookReceiver
from tests.services import free_port

CHROMIUM = "/usr/bin/chromium"
SENDGRID_KEY = "SG.console-test"
GONE_WEBHOOK_PATH = "/hooks/gone"
"""The receiver answers 410 Gone here: a permanent failure with a reason, for the progress page."""


def chromium_path() -> str | None:
    """Debian's Chromium (Playwright's own browser download is not used)."""
    found = CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium")
    return found


@dataclass
class Stage:
    url: str
    """The console's address, e.g. ``http://127.0.0.1:51234/console``."""
    rt: Runtime
    token: str
    """An API token (admin) to log in with."""
    sendgrid: SendGridEmulator
    hooks: WebhookReceiver
    subscribers: list[Subscriber]


def _people(count: int, hooks: WebhookReceiver) -> list[Subscriber]:
    return [
        Subscriber(
            name=f"Customer {i}",
            contact_points=[
                ContactPoint(channel=ChannelKind.EMAIL, address=f"customer{i}@example.com"),
                ContactPoint(channel=ChannelKind.SMS, address=f"+1202555{i:04d}"),
                ContactPoint(channel=ChannelKind.WEBHOOK, address=f"{hooks.base_url}/hooks/{i}"),
            ],
        )
        for i in range(count)
    ]


def _settings(folder: Path, sendgrid: SendGridEmulator) -> Settings:
    return Settings(
        database_url=f"sqlite:///{folder / 'tocsin.db'}",
        outbox_dir=folder / "outbox",
        policy_file=folder / "policy.toml",
        organisation="Example Corp",
        status_page_url="https://status.example.com",
        channels={
            ChannelKind.EMAIL: ChannelSettings(providers=["sendgrid"]),
            ChannelKind.WEBHOOK: ChannelSettings(providers=["webhook"]),
            ChannelKind.SMS: ChannelSettings(providers=["outbox"]),
            ChannelKind.SOCIAL: ChannelSettings(providers=["outbox"]),
        },
        providers={
            "sendgrid": {
                "api_key": SENDGRID_KEY,
                "base_url": sendgrid.base_url,
                "from_email": "status@example.com",
            },
            "webhook": {"timeout": 5, "allow_destinations": ["127.0.0.0/8"]},
        },
    )


@contextlib.contextmanager
def _serving(rt: Runtime) -> Iterator[str]:
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(lambda: rt), host="127.0.0.1", port=port, log_level="warning", lifespan="off"
        )
    )
    thread = threading.Thread(target=server.run, name="console-uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the console's server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}/console"
    finally:
        server.should_exit = True
        thread.join(10)


@contextlib.contextmanager
def staged_console(folder: Path, subscribers: int = 3) -> Iterator[Stage]:
    folder.mkdir(parents=True, exist_ok=True)
    with (
        SendGridEmulator(api_key=SENDGRID_KEY) as sendgrid,
        WebhookReceiver(verify=False, responses={GONE_WEBHOOK_PATH: 410}) as hooks,
    ):
        settings = _settings(folder, sendgrid)
        migrate(settings.database_url)
        rt = build_runtime(settings)
        try:
            people = _people(subscribers, hooks)
            add_subscribers(rt, people)
            _, token = create_token(rt, "alice", [Scope.ADMIN])
            with _serving(rt) as url:
                yield Stage(url, rt, token, sendgrid, hooks, people)
        finally:
            rt.close()
