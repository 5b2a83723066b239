"""The web console as a browser drives it (without JavaScript): log in with an API token, open an incident,
preview and send an update, watch it delivered, import subscribers. Real app, real database."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy import select, update

from channels.base import ChannelKind
from dispatcher.access.tokens import Scope, create_token, list_tokens, revoke_token
from dispatcher.audience.subscribers import count_subscribers
from dispatcher.config.settings import ChannelSettings
from dispatcher.domain.models import Severity
from dispatcher.engine.runtime import Runtime
from dispatcher.store.schema import incidents, updates
from dispatcher.web.app import create_app
from dispatcher.web.console.access import ConsoleState
from tests.helpers import incident, states, subscribe

CSRF_FIELD = re.compile(r'name="csrf" value="([^"]+)"')


@dataclass
class Browser:
    """One person's browser: its own cookies, and the CSRF token of the last page it loaded."""

    http: TestClient
    rt: Runtime
    csrf: str = ""

    def get(self, path: str, **kwargs: Any) -> Response:
        response: Response = self.http.get(path, follow_redirects=False, **kwargs)
        found = CSRF_FIELD.search(response.text)
        if found:
            self.csrf = found.group(1)
        return response

    def post(
        self, path: str, data: Mapping[str, object] | None = None, csrf: bool = True, **kwargs: Any
    ) -> Response:
        form = dict(data or {})
        if csrf:
            form.setdefault("csrf", self.csrf)
        response: Response = self.http.post(path, data=form, follow_redirects=False, **kwargs)
        found = CSRF_FIELD.search(response.text)
        if found:
            self.csrf = found.group(1)
        return response

    def log_in(self, *scopes: Scope, name: str = "alice") -> str:
        _, secret = create_token(self.rt, name, scopes or (Scope.ADMIN,))
        self.get("/console/login")
        response = self.post("/console/login", {"token": secret})
        assert response.status_code == 303, response.text
        assert response.headers["location"] == "/console/incidents"
        self.get("/console/incidents")
        return secret

    def deliveries_finished(self) -> None:
        state: ConsoleState = self.http.app.state.console  # type: ignore[attr-defined]
        state.background.join(timeout=30)


@pytest.fixture
def browser(rt: Runtime) -> Iterator[Browser]:
    with TestClient(create_app(lambda: rt)) as http:
        yield Browser(http, rt)


@pytest.fixture
def second_browser(browser: Browser) -> Iterator[Browser]:
    with TestClient(browser.http.app) as http:
        yield Browser(http, browser.rt)


def test_every_page_needs_a_login(browser: Browser) -> None:
    for path in ("/console/incidents", "/console/subscribers", "/console/incidents/1", "/console/updates/1"):
        response = browser.get(path)
        assert response.status_code == 303, path
        assert response.headers["location"] == "/console/login"
    polled = browser.get("/console/updates/1/progress", headers={"HX-Request": "true"})
    assert polled.status_code == 401
    assert polled.headers["HX-Redirect"] == "/console/login"


def test_log_in_with_an_api_token_then_log_out(browser: Browser) -> None:
    login = browser.get("/console/login")
    assert login.status_code == 200
    _, secret = create_token(browser.rt, "alice", [Scope.PUBLISH])
    response = browser.post("/console/login", {"token": secret})
    assert response.status_code == 303
    cookie = next(h for h in response.headers.get_list("set-cookie") if h.startswith("tocsin_console="))
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie or "samesite=strict" in cookie.lower()
    assert secret not in cookie  # the cookie never carries the token itself

    page = browser.get("/console/incidents")
    assert page.status_code == 200
    assert "alice" in page.text

    out = browser.post("/console/logout")
    assert out.status_code == 303
    assert out.headers["location"] == "/console/login"
    assert browser.get("/console/incidents").status_code == 303


def test_wrong_or_revoked_tokens_do_not_log_in(browser: Browser) -> None:
    browser.get("/console/login")
    refused = browser.post("/console/login", {"token": "tcn_not-a-token"})
    assert refused.status_code == 401
    assert "unknown or revoked token" in refused.text

    token, secret = create_token(browser.rt, "old", [Scope.ADMIN])
    revoke_token(browser.rt, token.id)
    refused = browser.post("/console/login", {"token": secret})
    assert refused.status_code == 401
    assert browser.get("/console/incidents").status_code == 303


def test_revoking_the_token_ends_the_session(browser: Browser) -> None:
    browser.log_in(name="bob")
    (token,) = [t for t in list_tokens(browser.rt) if t.name == "bob"]
    assert browser.get("/console/incidents").status_code == 200
    revoke_token(browser.rt, token.id)
    assert browser.get("/console/incidents").status_code == 303


def test_a_forged_session_cookie_is_ignored(browser: Browser) -> None:
    browser.log_in()
    real = browser.http.cookies.get("tocsin_console")
    assert real
    body, mac = real.split(".")
    browser.http.cookies.clear()
    browser.http.cookies.set("tocsin_console", body + "x." + mac, path="/console")
    assert browser.get("/console/incidents").status_code == 303


def test_login_form_needs_its_own_csrf_token(browser: Browser) -> None:
    _, secret = create_token(browser.rt, "alice", [Scope.ADMIN])
    # A cross-site form has neither this console's login cookie nor its token.
    refused = browser.post("/console/login", {"token": secret, "csrf": "guess"})
    assert refused.status_code == 401
    assert "tocsin_console=" not in " ".join(refused.headers.get_list("set-cookie"))


def test_posts_without_the_csrf_token_are_refused_and_change_nothing(browser: Browser) -> None:
    browser.log_in()
    for csrf in (None, "forged"):
        data = {"title": "Checkout failing", "severity": "major"}
        if csrf:
            data["csrf"] = csrf
        response = browser.post("/console/incidents", data, csrf=False)
        assert response.status_code == 403
        assert "CSRF" in response.text
    with browser.rt.engine.connect() as conn:
        assert conn.execute(select(incidents.c.id)).first() is None
    # the token may also come as a header (htmx sends it so)
    ok = browser.post(
        "/console/incidents",
        {"title": "Checkout failing"},
        csrf=False,
        headers={"X-CSRF-Token": browser.csrf},
    )
    assert ok.status_code == 303


def test_a_read_only_token_can_look_but_not_act(browser: Browser) -> None:
    inc = incident(browser.rt)
    browser.log_in(Scope.READ)
    page = browser.get(f"/console/incidents/{inc.id}")
    assert page.status_code == 200
    assert 'id="compose"' not in page.text
    refused = browser.post("/console/incidents", {"title": "Something else"})
    assert refused.status_code == 403
    assert "publish" in refused.text


def test_incident_titles_and_messages_are_shown_as_text(browser: Browser) -> None:
    browser.log_in()
    opened = browser.post(
        "/console/incidents", {"title": "<script>alert('x')</script> checkout", "components": "api"}
    )
    assert opened.status_code == 303
    page = browser.get(opened.headers["location"])
    listing = browser.get("/console/incidents")
    for html in (page.text, listing.text):
        assert "<script>alert" not in html
        assert "&lt;script&gt;alert(" in html
    preview = browser.post(
        opened.headers["location"] + "/preview",
        {"message": "<img src=x onerror=alert(1)> we are on it", "status": "investigating"},
    )
    assert preview.status_code == 200
    assert "<img src=x" not in preview.text
    assert "&lt;img src=x onerror=alert(1)&gt;" in preview.text


def test_open_an_incident_and_change_its_status(browser: Browser) -> None:
    browser.log_in(name="carol")
    opened = browser.post(
        "/console/incidents", {"title": "API slow", "severity": "minor", "components": "api"}
    )
    path = opened.headers["location"]
    changed = browser.post(path + "/status", {"status": "identified", "reason": "bad deploy found"})
    assert changed.status_code == 303
    page = browser.get(path)
    assert 'id="incident-status">identified<' in page.text
    timeline = page.text.split('id="timeline"')[1]
    assert "investigating → identified" in timeline
    assert "carol" in timeline and "bad deploy found" in timeline
    same = browser.post(path + "/status", {"status": "identified"})
    assert same.status_code == 400
    assert "already identified" in same.text


def test_a_bad_incident_is_refused_with_the_field_named(browser: Browser) -> None:
    browser.log_in()
    refused = browser.post("/console/incidents", {"title": "x", "severity": "apocalyptic"})
    assert refused.status_code == 400
    assert "title" in refused.text and "severity" in refused.text
    assert browser.get("/console/incidents/999").status_code == 404


def test_the_preview_shows_each_channel_its_length_and_audience(browser: Browser) -> None:
    subscribe(browser.rt, 3, sms=True)
    inc = incident(browser.rt, components=["checkout"])
    browser.log_in()
    short = browser.post(
        f"/console/incidents/{inc.id}/preview", {"message": "Checkout is failing.", "status": "investigating"}
    )
    assert short.status_code == 200
    assert 'data-channel="email"' in short.text and 'data-channel="sms"' in short.text
    assert 'data-testid="audience-email">3 recipient(s)' in short.text
    assert 'data-testid="segments">1 segment<' in short.text
    long = browser.post(
        f"/console/incidents/{inc.id}/preview",
        {"message": "Checkout is failing. " * 12, "status": "investigating"},
    )
    assert re.search(r'data-testid="segments">[2-9] segments<', long.text)
    internal = browser.post(
        f"/console/incidents/{inc.id}/preview",
        {"message": "Staff only", "status": "investigating", "audience": "internal"},
    )
    assert 'data-channel="social"' not in internal.text
    assert 'data-testid="audience-email">0 recipient(s)' in internal.text


def test_send_from_the_console_delivers_without_redis(browser: Browser) -> None:
    subscribe(browser.rt, 4, sms=True)
    inc = incident(browser.rt)
    browser.log_in(name="dave")
    sent = browser.post(
        f"/console/incidents/{inc.id}/updates",
        {
            "message": "We are investigating failed checkouts.",
            "status": "investigating",
            "next_update_in": "30m",
            "channel": ["email", "sms"],
        },
    )
    assert sent.status_code == 303, sent.text
    update_path = sent.headers["location"]
    update_id = int(update_path.rsplit("/", 1)[1])
    browser.deliveries_finished()
    assert states(browser.rt, update_id, ChannelKind.EMAIL) == {"sent": 4}
    assert states(browser.rt, update_id, ChannelKind.SMS) == {"sent": 4}
    assert states(browser.rt, update_id, ChannelKind.SOCIAL) == {}
    assert len(list(Path("outbox").rglob("*.eml"))) == 4
    fragment = browser.get(update_path + "/progress")
    assert 'data-done="yes"' in fragment.text
    assert 'hx-trigger="every 1s"' not in fragment.text
    assert re.search(r'data-channel="email".*?data-state="sent">4<', fragment.text, re.S)
    with browser.rt.engine.connect() as conn:
        author = conn.execute(select(updates.c.author).where(updates.c.id == update_id)).scalar_one()
    assert author == "dave"


def test_the_progress_page_shows_failures_with_their_reason(make_runtime: Callable[..., Runtime]) -> None:
    rt = make_runtime(channels={ChannelKind.WEBHOOK: ChannelSettings(providers=["webhook"])})
    subscribe(rt, 1, email=False, webhook="http://127.0.0.1:9")
    inc = incident(rt)
    with TestClient(create_app(lambda: rt)) as http:
        browser = Browser(http, rt)
        browser.log_in()
        _send_and_show_failure(browser, rt, inc.id)


def _send_and_show_failure(browser: Browser, rt: Runtime, incident_id: int) -> None:
    sent = browser.post(
        f"/console/incidents/{incident_id}/updates",
        {
            "message": "Webhooks down.",
            "status": "investigating",
            "next_update_in": "1h",
            "channel": ["webhook"],
        },
    )
    assert sent.status_code == 303, sent.text
    browser.deliveries_finished()
    update_id = int(sent.headers["location"].rsplit("/", 1)[1])
    page = browser.get(sent.headers["location"])
    assert states(rt, update_id) == {"failed": 1}
    failures = page.text.split('id="failures"')[1]
    assert "http://127.0.0.1:9/0" in failures
    assert "blocked: 127.0.0.1 is a loopback address" in failures


def test_an_update_that_needs_approval_waits_for_a_second_person(
    browser: Browser, second_browser: Browser
) -> None:
    subscribe(browser.rt, 2)
    inc = incident(browser.rt, severity=Severity.CRITICAL)  # the default policy asks for approval
    browser.log_in(name="erin")
    sent = browser.post(
        f"/console/incidents/{inc.id}/updates",
        {
            "message": "Payments are down everywhere. Sorry.",
            "status": "investigating",
            "next_update_in": "30m",
            "channel": ["email"],
        },
    )
    assert sent.status_code == 303, sent.text
    path = sent.headers["location"]
    update_id = int(path.rsplit("/", 1)[1])
    page = browser.get(path)
    assert 'id="update-state">pending approval<' in page.text
    assert 'id="approvals"' in browser.get("/console/incidents").text
    own = browser.post(path + "/approve")
    assert own.status_code == 400
    assert "someone else must approve" in own.text

    second_browser.log_in(name="frank")
    approved = second_browser.post(path + "/approve")
    assert approved.status_code == 303, approved.text
    second_browser.deliveries_finished()
    assert states(browser.rt, update_id, ChannelKind.EMAIL) == {"sent": 2}
    assert 'id="approvals"' not in browser.get("/console/incidents").text


def test_a_rejected_update_is_never_sent_and_the_reason_is_kept(
    browser: Browser, second_browser: Browser
) -> None:
    subscribe(browser.rt, 2)
    inc = incident(browser.rt, severity=Severity.CRITICAL)
    browser.log_in(name="erin")
    sent = browser.post(
        f"/console/incidents/{inc.id}/updates",
        {"message": "Payments are down. Sorry.", "status": "investigating", "next_update_in": "30m"},
    )
    path = sent.headers["location"]
    second_browser.log_in(name="frank")
    assert second_browser.post(path + "/reject", {"reason": ""}).status_code == 400
    rejected = second_browser.post(path + "/reject", {"reason": "wrong region named"})
    assert rejected.status_code == 303
    page = second_browser.get(path)
    assert "Rejected by frank: wrong region named" in page.text
    assert 'data-done="yes"' in page.text
    browser.deliveries_finished()
    assert states(browser.rt, int(path.rsplit("/", 1)[1])) == {}
    timeline = browser.get(f"/console/incidents/{inc.id}").text.split('id="timeline"')[1]
    assert "rejected" in timeline and "frank" in timeline


def test_overdue_promises_are_shown_on_every_page(browser: Browser) -> None:
    inc = incident(browser.rt)
    with browser.rt.engine.begin() as conn:
        conn.execute(
            update(incidents)
            .where(incidents.c.id == inc.id)
            .values(next_update_at=browser.rt.clock.now() - timedelta(minutes=12))
        )
    browser.log_in()
    for path in ("/console/incidents", "/console/subscribers", f"/console/incidents/{inc.id}"):
        overdue = browser.get(path).text.split('id="overdue"')
        assert len(overdue) == 2, path
        assert "Checkout failing" in overdue[1] and "12 min ago" in overdue[1]


CSV_WITH_ERRORS = (
    "name,email,phone\nAnn,ann@example.com,+14155550100\nBob,not-an-email,\nCat,cat@example.com,12\n"
)


def test_importing_a_csv_shows_each_bad_row_and_imports_nothing(browser: Browser) -> None:
    browser.log_in(Scope.SUBSCRIBERS, Scope.READ)
    response = browser.post(
        "/console/subscribers/import", files={"file": ("people.csv", CSV_WITH_ERRORS.encode(), "text/csv")}
    )
    assert response.status_code == 400
    problems = response.text.split('id="import-problems"')[1]
    rows = re.findall(r"<tr><td>(\d+)</td><td>([^<]*)</td><td>([^<]*)</td></tr>", problems)
    assert [(line, column) for line, column, _ in rows] == [("3", "email"), ("4", "phone")]
    assert "nothing imported" in response.text
    assert count_subscribers(browser.rt) == 0

    skipped = browser.post(
        "/console/subscribers/import",
        {"skip_invalid": "true"},
        files={"file": ("people.csv", CSV_WITH_ERRORS.encode(), "text/csv")},
    )
    assert skipped.status_code == 200
    assert "imported 1, skipped 2" in skipped.text
    assert count_subscribers(browser.rt) == 1


def test_search_subscribers_by_name_or_address(browser: Browser) -> None:
    subscribe(browser.rt, 12, sms=True)
    browser.log_in()
    everyone = browser.get("/console/subscribers")
    assert "12 subscriber(s)" in everyone.text
    found = browser.get("/console/subscribers", params={"q": "PERSON3@example"})
    assert "1 subscriber(s) matching" in found.text
    assert "person3@example.com" in found.text and "person4@example.com" not in found.text
    by_phone = browser.get("/console/subscribers", params={"q": "2025550011"})
    assert "Person 11" in by_phone.text
    assert "0 subscriber(s)" in browser.get("/console/subscribers", params={"q": "%"}).text


def test_pages_run_only_the_consoles_own_scripts_and_are_never_framed(browser: Browser) -> None:
    browser.log_in()
    for response in (browser.get("/console/login"), browser.get("/console/incidents")):
        policy = response.headers["Content-Security-Policy"]
        assert "script-src 'self';" in policy and "frame-ancestors 'none'" in policy
        assert response.headers["X-Frame-Options"] == "DENY"
        assert response.headers["Cache-Control"] == "no-store"


def test_htmx_is_served_by_the_console_itself(browser: Browser) -> None:
    script = browser.get("/console/static/htmx.min.js")
    assert script.status_code == 200
    assert script.headers["content-type"].startswith("text/javascript")
    assert "htmx" in script.text[:200]
    browser.log_in()
    assert '<script src="/console/static/htmx.min.js">' in browser.get("/console/incidents").text
