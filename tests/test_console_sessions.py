"""Console sessions end on the server: after logout a copied cookie opens nothing (the issue: it worked for
its whole 12 hours). And a promise too far ahead is a message on the page, not a raw JSON 500."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from dispatcher.engine.runtime import Runtime
from dispatcher.web.app import create_app
from dispatcher.web.console.session import SESSION_COOKIE
from tests.helpers import incident
from tests.test_console import Browser


@pytest.fixture
def app(rt: Runtime) -> FastAPI:
    return create_app(lambda: rt)


@pytest.fixture
def browser(app: FastAPI, rt: Runtime) -> Iterator[Browser]:
    with TestClient(app) as http:
        yield Browser(http, rt)


def with_cookie(app: FastAPI, cookie: str) -> TestClient:
    """Someone else's browser holding a copy of the session cookie."""
    thief = TestClient(app)
    thief.cookies.set(SESSION_COOKIE, cookie, path="/console")
    return thief


def test_logout_ends_the_session_for_every_copy_of_the_cookie(browser: Browser, app: FastAPI) -> None:
    browser.log_in()
    copied = browser.http.cookies.get(SESSION_COOKIE)
    assert copied
    with with_cookie(app, copied) as thief:
        assert thief.get("/console/incidents", follow_redirects=False).status_code == 200

        assert browser.post("/console/logout").status_code == 303

        after = thief.get("/console/incidents", follow_redirects=False)
        assert after.status_code == 303
        assert after.headers["location"] == "/console/login"
    assert browser.get("/console/incidents").status_code == 303


def test_a_session_of_another_server_or_a_forged_id_is_not_honoured(browser: Browser, app: FastAPI) -> None:
    """A cookie signed with the right key but naming no session begun here (e.g. made before sessions
    were kept on the server) sends the person to the login page."""
    browser.log_in()
    signer = app.state.console.signer(browser.rt)
    session = signer.read_session(browser.http.cookies.get(SESSION_COOKIE))
    assert session is not None
    forged = signer.dumps({**vars(session), "sid": "made-up"})
    with with_cookie(app, forged) as other:
        assert other.get("/console/incidents", follow_redirects=False).status_code == 303


def test_an_overflowing_promise_in_the_compose_form_is_shown_on_the_page(browser: Browser) -> None:
    """The issue: `next_update_in: "99999999h"` gave a raw JSON 500 page in the console."""
    browser.log_in()
    inc = incident(browser.rt)
    browser.get(f"/console/incidents/{inc.id}")
    form = {
        "message": "Checkout fails for some. Sorry.",
        "status": "investigating",
        "next_update_in": "99999999h",
    }
    for path in (f"/console/incidents/{inc.id}/preview", f"/console/incidents/{inc.id}/updates"):
        response = browser.post(path, form)
        assert response.status_code in (200, 400), response.text[:300]
        assert response.headers["content-type"].startswith("text/html")
        assert "longer than 366 days" in response.text
