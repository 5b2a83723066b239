"""The web console on a phone (Chromium at 390 px wide): the compose preview sits under the form, on
the screen, and the status page's components and maintenance can be managed there. Skipped without
Chromium and playwright, failing in CI, as tests/test_console_playwright.py is."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from tests.console_stage import staged_console
from tests.test_console_playwright import _browser_kit

PHONE = {
    "viewport": {"width": 390, "height": 844},
    "is_mobile": True,
    "has_touch": True,
    "device_scale_factor": 2,
}


def on_screen(page: Any, selector: str) -> None:
    box = page.locator(selector).bounding_box()
    assert box is not None, f"{selector} is not shown"
    width = page.viewport_size["width"]
    assert box["x"] >= 0 and box["x"] + box["width"] <= width + 1, (
        f"{selector} at {box} is off a {width}px screen"
    )


def test_on_a_phone_the_preview_is_on_screen_and_components_can_be_set(tmp_path: Path) -> None:
    sync_playwright, expect, chromium = _browser_kit()
    with staged_console(tmp_path, subscribers=2) as stage, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, headless=True, args=["--no-sandbox"])
        try:
            page = browser.new_context(**PHONE).new_page()
            page.set_default_timeout(15_000)
            page.goto(stage.url + "/login")
            page.fill("#token", stage.token)
            page.click("button[type=submit]")
            page.fill("#title", "Checkout failing")
            page.click("#open-incident button[type=submit]")
            expect(page.locator("#incident-title")).to_contain_text("Checkout failing")
            page.locator("#message").press_sequentially("Checkout is failing. We are sorry.", delay=5)
            expect(page.locator('#preview [data-channel="email"] pre')).to_contain_text(
                "Checkout is failing."
            )
            on_screen(page, "#message")
            on_screen(page, "#preview")
            assert page.evaluate("document.documentElement.scrollWidth - window.innerWidth") <= 1

            page.get_by_role("link", name="Status page").click()
            page.get_by_label("Name").fill("Checkout")
            page.get_by_label("Group (optional)").fill("Payments")
            page.get_by_role("button", name="Add").click()
            row = page.locator('tr[data-component="checkout"]')
            expect(row).to_contain_text("Payments")
            row.get_by_label("Status of Checkout").select_option("degraded_performance")
            row.get_by_role("button", name="Set").click()
            expect(page.locator('tr[data-component="checkout"]')).to_contain_text(re.compile("by alice"))
            expect(page.get_by_label("Status of Checkout")).to_have_value("degraded_performance")
            on_screen(page, "#add-component")
            on_screen(page, "#schedule-maintenance")
        finally:
            browser.close()
