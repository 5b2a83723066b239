"""Regenerate docs/pages/screenshots/*.png: the web console's main pages and the status page with its uptime
bars (desktop and phone), driven in Debian's Chromium.

    .venv/bin/python docs/make_screenshots.py            # writes docs/pages/screenshots/
    .venv/bin/python docs/make_screenshots.py OUT_DIR

Needs ``apt-get install chromium`` and the dev extra (playwright). Everything runs locally: the console
on 127.0.0.1, email through the SendGrid emulator, webhooks to a local receiver (tests/console_stage.py);
the status site published to a local folder with a few weeks of history (tests/status_stage.py).
"""

from __future__ import annotations

import sys
import tempfile
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from playwright.sync_api import Page, expect, sync_playwright  # noqa: E402
from sqlalchemy import update  # noqa: E402

from channels.base import ChannelKind  # noqa: E402
from dispatcher.audience.subscribers import add_subscribers  # noqa: E402
from dispatcher.comms.incidents import open_incident  # noqa: E402
from dispatcher.domain.models import ContactPoint, IncidentDraft, Severity, Subscriber  # noqa: E402
from dispatcher.store.schema import incidents  # noqa: E402
from tests.console_stage import GONE_WEBHOOK_PATH, Stage, chromium_path, staged_console  # noqa: E402
from tests.status_stage import staged_status  # noqa: E402

VAGUE = "Some customers cannot pay at checkout. We expect a fix soon."
CLEAR = (
    "Some customers cannot pay at checkout. We have found the cause and are rolling back this "
    "morning's release. No card is charged twice. We are sorry for the disruption."
)
BAD_CSV = (
    "name,email,phone,locale\n"
    "Dana Kim,dana@example.com,+14155550100,en\n"
    "Eli Moss,eli@example,+14155550101,en\n"
    "Fay Ng,fay@example.com,555,fr\n"
    "Gus Roy,gus@example.com,+14155550103,klingon!\n"
)


def _background(stage: Stage) -> None:
    """Other incidents, one of them with a broken promise, and a subscriber whose endpoint is gone."""
    rt = stage.rt
    now = rt.clock.now()
    late = open_incident(rt, IncidentDraft(title="Search results delayed", severity=Severity.MINOR))
    open_incident(rt, IncidentDraft(title="Login emails slow to arrive", severity=Severity.MINOR))
    with rt.engine.begin() as conn:
        conn.execute(
            update(incidents)
            .where(incidents.c.id == late.id)
            .values(status="identified", next_update_at=now - timedelta(minutes=14))
        )
    gone = ContactPoint(channel=ChannelKind.WEBHOOK, address=stage.hooks.base_url + GONE_WEBHOOK_PATH)
    add_subscribers(rt, [Subscriber(name="Legacy integration", contact_points=[gone])])


def _shoot(page: Page, out: Path, name: str, full_page: bool = True) -> None:
    page.screenshot(path=str(out / name), full_page=full_page)
    print(f"wrote {out / name}")


def main(out: Path) -> None:
    chromium = chromium_path()
    if chromium is None:
        raise SystemExit("Chromium is not installed: apt-get install chromium")
    out.mkdir(parents=True, exist_ok=True)
    with (
        tempfile.TemporaryDirectory(prefix="tocsin-shots-") as folder,
        staged_console(Path(folder), subscribers=24) as stage,
        sync_playwright() as pw,
    ):
        _background(stage)
        browser = pw.chromium.launch(executable_path=chromium, headless=True, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 860})
        page.set_default_timeout(20_000)
        page.goto(stage.url + "/login")
        page.fill("#token", stage.token)
        page.click("button[type=submit]")
        page.fill("#title", "Checkout failing for some customers")
        page.select_option("#severity", "major")
        page.fill("#components", "checkout, payments")
        page.click("#open-incident button[type=submit]")
        incident_url = page.url
        page.goto(stage.url + "/incidents")
        _shoot(page, out, "incidents.png")

        page.goto(incident_url)
        page.locator("#message").press_sequentially(VAGUE, delay=2)
        expect(page.locator("#findings mark")).to_have_text("soon")
        _shoot(page, out, "compose-preview.png")

        page.fill("#message", "")
        page.locator("#message").press_sequentially(CLEAR, delay=1)
        expect(page.locator("#findings")).to_have_count(0)
        page.click("#send")
        expect(page.locator("#progress")).to_have_attribute("data-done", "yes", timeout=60_000)
        _shoot(page, out, "delivery-progress.png")

        page.goto(stage.url + "/subscribers")
        csv = Path(folder) / "customers.csv"
        csv.write_text(BAD_CSV, encoding="utf-8")
        page.set_input_files("#file", str(csv))
        page.click("#import button[type=submit]")
        expect(page.locator("#import-problems")).to_be_visible()
        _shoot(page, out, "subscribers.png", full_page=False)
        browser.close()
    _status_page(chromium, out)


def _status_page(chromium: str, out: Path) -> None:
    """The public status page: components with their 90-day uptime bars, at desktop and phone width."""
    with (
        tempfile.TemporaryDirectory(prefix="tocsin-status-shots-") as folder,
        staged_status(Path(folder)) as stage,
        sync_playwright() as pw,
    ):
        browser = pw.chromium.launch(executable_path=chromium, headless=True, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1100, "height": 900})
        page.goto(stage.site + "index.html")
        expect(page.locator("ol.bar").first).to_be_visible()
        _shoot(page, out, "status-page.png")
        phone = browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=2).new_page()
        phone.goto(stage.site + "components/checkout.html")
        _shoot(phone, out, "status-component-phone.png", full_page=False)
        browser.close()


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "pages" / "screenshots")
