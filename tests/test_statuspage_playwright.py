"""The status page and self-service subscriptions in a real browser (Debian's Chromium through
Playwright), each at desktop and at phone width: the public page with its uptime bars, a component's
history down to one day's incidents, subscribing by email, text and webhook against the provider
emulators, and the manage-subscription page.

Needs Debian's Chromium (``apt-get install chromium``) and the ``playwright`` package (dev extra);
without them the tests are skipped on a laptop and fail in CI (``CI`` set)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select

from dispatcher.store.schema import contact_points, subscribers
from tests.status_stage import StatusStage, staged_status
from tests.test_console_playwright import _browser_kit

VIEWPORTS = {
    "desktop": {"viewport": {"width": 1280, "height": 860}},
    "phone": {
        "viewport": {"width": 390, "height": 844},
        "is_mobile": True,
        "has_touch": True,
        "device_scale_factor": 2,
    },
}
CODE = re.compile(r"your code is (\d{6})")
CONFIRM = re.compile(r"(http://127\.0\.0\.1:\d+/subscribe/confirm\?token=[A-Za-z0-9._%-]+)")


@pytest.fixture(scope="module")
def stage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StatusStage]:
    _browser_kit()
    with staged_status(tmp_path_factory.mktemp("status-stage")) as staged:
        yield staged


@pytest.fixture(scope="module")
def browser(stage: StatusStage) -> Iterator[Any]:
    sync_playwright, _, chromium = _browser_kit()
    with sync_playwright() as pw:
        launched = pw.chromium.launch(executable_path=chromium, headless=True, args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture(params=list(VIEWPORTS))
def page(request: pytest.FixtureRequest, browser: Any) -> Iterator[Any]:
    context = browser.new_context(**VIEWPORTS[request.param])
    opened = context.new_page()
    opened.set_default_timeout(15_000)
    yield opened
    context.close()


def expect() -> Any:
    return _browser_kit()[1]


def fits_the_screen(page: Any) -> None:
    """Nothing sticks out sideways: no horizontal scrolling on a phone."""
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 1, f"the page is {overflow}px wider than the screen"


def test_the_public_page_shows_every_component_with_its_uptime_bar(stage: StatusStage, page: Any) -> None:
    page.goto(stage.site + "index.html")
    see = expect()
    see(page.get_by_role("status")).to_contain_text("All systems operational")
    checkout = page.locator('section[data-component="checkout"]')
    see(checkout.get_by_role("heading", name="Checkout")).to_be_visible()
    see(checkout.locator("ol.bar")).to_have_attribute(
        "aria-label", re.compile(r"^Checkout: 99\.\d\d% uptime over the last 90 days$")
    )
    see(checkout.locator("ol.bar > li")).to_have_count(90)
    bar_box = checkout.locator("ol.bar").bounding_box()
    assert bar_box is not None and bar_box["width"] <= page.viewport_size["width"]
    see(page.get_by_role("heading", name="Payments")).to_be_visible()
    see(page.get_by_role("link", name="Get updates by email, text or webhook")).to_have_attribute(
        "href", stage.api + "/subscribe"
    )
    see(page.locator("#maintenance")).to_be_visible()
    see(page.get_by_role("link", name="Database upgrade")).to_be_visible()
    fits_the_screen(page)


def test_a_components_history_leads_to_one_days_incidents(stage: StatusStage, page: Any) -> None:
    page.goto(stage.site + "index.html")
    see = expect()
    day = f"{stage.bad_day:%d %b %Y}"
    troubled = page.locator('section[data-component="checkout"] ol.bar a', has_text=day)
    see(troubled).to_have_count(1)
    see(troubled).to_contain_text("major outage")
    troubled.click()
    see(page).to_have_url(re.compile(rf"components/checkout\.html#d-{stage.bad_day:%Y-%m-%d}$"))
    see(page.get_by_role("heading", level=1)).to_have_text("Checkout")
    see(page.locator("#uptime")).to_contain_text(re.compile(r"99\.\d\d% uptime"))
    detail = page.locator(f"#d-{stage.bad_day:%Y-%m-%d}")
    see(detail).to_be_in_viewport()
    see(detail.get_by_role("heading")).to_have_text(day)
    see(detail).to_contain_text("Major outage")
    detail.get_by_role("link", name="Checkout failing").click()
    see(page).to_have_url(re.compile(rf"incidents/{stage.checkout_outage.id}\.html$"))
    see(page.locator("main")).to_contain_text("Nobody can pay at checkout.")
    fits_the_screen(page)


def test_subscribing_by_email_with_double_opt_in(
    stage: StatusStage, page: Any, request: pytest.FixtureRequest
) -> None:
    address = f"reader-{request.node.callspec.id}@example.com"
    page.goto(stage.site + "index.html")
    page.get_by_role("link", name="Get updates by email, text or webhook").click()
    see = expect()
    see(page.get_by_role("heading", level=1)).to_have_text("Get Example Corp's status updates")
    fits_the_screen(page)
    page.get_by_label("By email").check()
    page.get_by_label("Email address").fill(address)
    page.get_by_label("Checkout").check()
    page.get_by_label("Minimum severity").select_option("major")
    page.get_by_label("Time zone").fill("Europe/Paris")
    page.get_by_role("button", name="Subscribe").click()
    see(page.get_by_role("heading", level=1)).to_have_text("Check your inbox")

    [mail] = [m for m in stage.sendgrid.received if m["email"] == address]
    link = CONFIRM.search(mail["text"] or "")
    assert link is not None
    page.goto(link.group(1))
    see(page.get_by_role("heading", level=1)).to_have_text("Subscription confirmed")
    row = _subscriber_of(stage, address)
    assert (row.components, row.timezone) == (["Checkout"], "Europe/Paris")


def test_subscribing_by_text_with_the_code_we_send(
    stage: StatusStage, page: Any, request: pytest.FixtureRequest
) -> None:
    number = "+1202555017" + ("1" if request.node.callspec.id == "desktop" else "2")
    page.goto(stage.api + "/subscribe")
    page.get_by_label("By text message").check()
    page.get_by_label("Mobile number (for text messages)").fill(number)
    page.get_by_label("Refunds").check()
    page.get_by_role("button", name="Subscribe").click()
    see = expect()
    see(page.get_by_role("heading", level=1)).to_have_text("Enter the code we texted you")
    fits_the_screen(page)

    [text] = [m["body"] for m in stage.twilio.received if m["to"] == number]
    code = CODE.search(text)
    assert code is not None, text
    page.get_by_label("Code").fill("000000" if code.group(1) != "000000" else "999999")
    page.get_by_role("button", name="Confirm").click()
    see(page.get_by_role("alert")).to_contain_text("not the code we sent")
    page.get_by_label("Code").fill(code.group(1))
    page.get_by_role("button", name="Confirm").click()
    see(page.get_by_role("heading", level=1)).to_have_text("Subscription confirmed")
    see(page.get_by_role("link", name="Manage your subscription")).to_be_visible()
    assert _point(stage, number).confirmed


def test_subscribing_a_webhook_that_answers_the_ping(
    stage: StatusStage, page: Any, request: pytest.FixtureRequest
) -> None:
    url = f"{stage.hooks.base_url}/hooks/{request.node.callspec.id}"
    page.goto(stage.api + "/subscribe")
    page.get_by_label("By webhook (for your systems)").check()
    page.get_by_label("Webhook URL").fill(url)
    page.get_by_role("button", name="Subscribe").click()
    see = expect()
    see(page.get_by_role("heading", level=1)).to_have_text("Webhook subscribed")
    see(page.locator("#secret")).to_have_text(re.compile(r"^whsec_"))
    fits_the_screen(page)
    [ping] = stage.hooks.by_path(f"/hooks/{request.node.callspec.id}")
    assert ping["body"]["type"] == "subscription.verify"
    assert _point(stage, url).confirmed


def test_the_manage_page_changes_what_a_subscriber_gets_and_stops_it(
    stage: StatusStage, page: Any, request: pytest.FixtureRequest
) -> None:
    number = "+1202555018" + ("1" if request.node.callspec.id == "desktop" else "2")
    page.goto(stage.api + "/subscribe")
    page.get_by_label("By text message").check()
    page.get_by_label("Mobile number (for text messages)").fill(number)
    page.get_by_role("button", name="Subscribe").click()
    [text] = [m["body"] for m in stage.twilio.received if m["to"] == number]
    page.get_by_label("Code").fill(CODE.search(text).group(1))  # type: ignore[union-attr]
    page.get_by_role("button", name="Confirm").click()
    page.get_by_role("link", name="Manage your subscription").click()

    see = expect()
    see(page.get_by_role("heading", level=1)).to_have_text("Manage your subscription")
    fits_the_screen(page)
    see(page.get_by_label(f"SMS: {number}")).to_be_checked()
    page.get_by_label("API").check()
    page.get_by_label("Minimum severity").select_option("critical")
    page.get_by_label("Time zone").fill("America/New_York")
    page.get_by_label("Quiet from").fill("22:00")
    page.get_by_label("Quiet until").fill("07:00")
    page.get_by_role("button", name="Save").click()
    see(page.locator("#saved")).to_have_text("Saved.")
    row = _subscriber_of(stage, number)
    assert (row.components, row.timezone, row.quiet_start, row.quiet_end) == (
        ["API"],
        "America/New_York",
        "22:00",
        "07:00",
    )

    page.get_by_label("Time zone").fill("Nowhere/Land")
    page.get_by_role("button", name="Save").click()
    see(page.get_by_role("alert")).to_contain_text("Nowhere/Land")

    page.get_by_role("button", name="Stop all updates").click()
    see(page.locator("#saved")).to_contain_text("you will get no more updates")
    see(page.get_by_label(f"SMS: {number}")).not_to_be_checked()
    assert _point(stage, number).opted_out


def _point(stage: StatusStage, address: str) -> Any:
    with stage.rt.engine.connect() as conn:
        return conn.execute(select(contact_points).where(contact_points.c.address == address)).one()


def _subscriber_of(stage: StatusStage, address: str) -> Any:
    with stage.rt.engine.connect() as conn:
        return conn.execute(
            select(subscribers).where(subscribers.c.id == _point(stage, address).subscriber_id)
        ).one()
