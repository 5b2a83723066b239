"""The web console in a real browser (Chromium through Playwright): a person logs in with a token, opens an
incident, writes an update while the preview follows their typing, sends it and watches it reach the
SendGrid emulator and the webhook receiver.

Needs Debian's Chromium (``apt-get install chromium``) and the ``playwright`` package (dev extra); without
them the test is skipped on a laptop and fails in CI (``CI`` set), as missing Redis does."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from tests.console_stage import chromium_path, staged_console
from tests.services import unavailable

FIRST = "Checkout is failing. We are sorry."
MORE = (
    " Payments made in the last half hour may show as pending; nobody is charged twice."
    " We are rolling back this morning's release."
)


def _browser_kit() -> tuple[Any, Any, str]:
    path = chromium_path()
    if path is None:
        unavailable("Chromium (apt-get install chromium)")
    try:
        from playwright.sync_api import expect, sync_playwright
    except ImportError:
        unavailable("the playwright package (pip install -e '.[dev]')")
    assert path is not None
    return sync_playwright, expect, path


def test_log_in_compose_with_live_preview_send_and_watch_it_delivered(tmp_path: Path) -> None:
    sync_playwright, expect, chromium = _browser_kit()
    with staged_console(tmp_path, subscribers=3) as stage, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, headless=True, args=["--no-sandbox"])
        try:
            page = browser.new_page()
            page.set_default_timeout(15_000)
            page.goto(stage.url + "/incidents")
            expect(page).to_have_url(re.compile(r"/console/login$"))

            page.fill("#token", stage.token)
            page.click("button[type=submit]")
            expect(page).to_have_url(re.compile(r"/console/incidents$"))
            expect(page.get_by_test_id("actor")).to_have_text("alice")

            page.fill("#title", "Checkout failing")
            page.select_option("#severity", "major")
            page.click("#open-incident button[type=submit]")
            expect(page.locator("#incident-title")).to_contain_text("Checkout failing")

            message = page.locator("#message")
            message.press_sequentially(FIRST, delay=5)
            # North American numbers: the SMS ends with the carrier's STOP hint, a second segment
            expect(page.get_by_test_id("segments")).to_have_text("2 segments")
            expect(page.get_by_test_id("measure-sms")).not_to_contain_text("shortened")
            expect(page.get_by_test_id("audience-email")).to_have_text("3 recipient(s)")
            expect(page.locator('#preview > [data-channel="email"] pre')).to_contain_text(FIRST)
            message.press_sequentially(MORE, delay=5)
            expect(page.get_by_test_id("segments")).to_have_text("2 segments")
            sms = page.locator('#preview > [data-channel="sms"] pre')
            expect(sms).to_contain_text("rolling back")
            expect(sms).to_contain_text("Reply STOP to opt out.")

            page.click("#send")
            expect(page).to_have_url(re.compile(r"/console/updates/\d+$"))
            expect(page.locator("#progress")).to_have_attribute("data-done", "yes", timeout=30_000)
            for channel in ("email", "sms", "webhook"):
                sent = page.locator(f'#channels tr[data-channel="{channel}"] td[data-state="sent"]')
                expect(sent).to_have_text("3")
            expect(page.locator("#delivery-summary")).to_contain_text("Finished")
        finally:
            browser.close()

    emails = sorted(r["email"] for r in stage.sendgrid.received)
    assert emails == [f"customer{i}@example.com" for i in range(3)]
    assert all((FIRST + MORE) in (r["text"] or "") for r in stage.sendgrid.received)
    assert sorted(r["path"] for r in stage.hooks.received) == [f"/hooks/{i}" for i in range(3)]
    assert all(r["body"]["update"]["message"] == FIRST + MORE for r in stage.hooks.received)


def test_a_template_fills_the_compose_form_and_the_live_preview(tmp_path: Path) -> None:
    sync_playwright, expect, chromium = _browser_kit()
    with staged_console(tmp_path, subscribers=2) as stage, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, headless=True, args=["--no-sandbox"])
        try:
            page = browser.new_page()
            page.set_default_timeout(15_000)
            page.goto(stage.url + "/login")
            page.fill("#token", stage.token)
            page.click("button[type=submit]")
            page.fill("#title", "Card payments failing")
            page.fill("#components", "Payments")
            page.click("#open-incident button[type=submit]")
            expect(page.locator("#incident-title")).to_contain_text("Card payments failing")

            page.select_option("#template", "identified-workaround")
            page.click("#use-template")
            page.fill("#var-impact", "the failed card payments")
            page.fill("#var-workaround", "paying by bank transfer works as usual.")
            page.click("#fill-template")

            expect(page.locator("#from-template")).to_contain_text("identified-workaround")
            expect(page.locator("#message")).to_have_value(
                "We have found the cause of the failed card payments and are working on a fix. Meanwhile, "
                "paying by bank transfer works as usual. We are sorry for the disruption."
            )
            expect(page.locator("#compose-status")).to_have_value("identified")
            expect(page.locator("#text-fr-message")).to_have_value(re.compile("Nous avons trouvé la cause"))
            sms = page.locator('#preview > [data-channel="sms"] pre')
            expect(sms).to_contain_text("Cause of the failed card payments found")
            expect(page.locator('#preview [data-locale="fr"]').first).to_contain_text("Nous avons trouvé")
        finally:
            browser.close()
