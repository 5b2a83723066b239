"""The web console's routes, under ``/console``: server-rendered pages, htmx fragments, form POSTs.

Every page needs a session (see ``session.py``); every POST also needs the session's CSRF token. What a
person may do follows their API token's scopes: ``read`` to look, ``publish`` to open incidents, change
status, send and approve, ``subscribers`` to import.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Form, Request
from starlette.responses import RedirectResponse, Response

from dispatcher.access.console_sessions import begin_session, end_session
from dispatcher.web.console import (
    component_routes,
    crisis_routes,
    incident_routes,
    maintenance_routes,
    subscriber_routes,
    update_routes,
)
from dispatcher.web.console.access import (
    PREFIX,
    ConsoleRoute,
    Writer,
    console_state,
    runtime_of,
)
from dispatcher.web.console.identity import verify_token
from dispatcher.web.console.pages import see
from dispatcher.web.console.session import LOGIN_COOKIE, SESSION_COOKIE, SESSION_SECONDS
from dispatcher.web.console.views import STATIC, page

router = APIRouter(prefix=PREFIX, include_in_schema=False, route_class=ConsoleRoute)


@router.get("/static/htmx.min.js")
def htmx() -> Response:
    return Response(
        (STATIC / "htmx.min.js").read_bytes(),
        media_type="text/javascript",
        headers={"Cache-Control": "max-age=3600"},
    )


@router.get("")
@router.get("/")
def home() -> RedirectResponse:
    return see("/incidents")


@router.get("/login")
def login_form(request: Request) -> Response:
    return _login_page(request)


def _login_page(request: Request, error: str | None = None) -> Response:
    nonce, cookie = console_state(request).signer(runtime_of(request)).login_nonce()
    response = page("login.html", status_code=401 if error else 200, csrf=nonce, error=error)
    _set_cookie(request, response, LOGIN_COOKIE, cookie, 3600)
    return response


@router.post("/login")
def login(
    request: Request, token: Annotated[str, Form()] = "", csrf: Annotated[str, Form()] = ""
) -> Response:
    rt = runtime_of(request)
    signer = console_state(request).signer(rt)
    if not signer.check_login_nonce(request.cookies.get(LOGIN_COOKIE), csrf):
        return _login_page(request, "the login form expired or did not come from this console: try again")
    found = verify_token(rt, token)
    if found is None:
        return _login_page(request, "unknown or revoked token")
    session, cookie = signer.new_session(found.id, found.name)
    begin_session(rt, session.sid, found.id, rt.clock.now() + timedelta(seconds=SESSION_SECONDS))
    response = see("/incidents")
    _set_cookie(request, response, SESSION_COOKIE, cookie, SESSION_SECONDS)
    response.delete_cookie(LOGIN_COOKIE, path=PREFIX)
    return response


@router.post("/logout")
def logout(who: Writer) -> Response:
    """Ends the session on the server too: a copy of the cookie no longer opens the console."""
    end_session(who.rt, who.session.sid)
    response = see("/login")
    response.delete_cookie(SESSION_COOKIE, path=PREFIX)
    return response


def _set_cookie(request: Request, response: Response, name: str, value: str, max_age: int) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=PREFIX,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


router.include_router(incident_routes.router)
router.include_router(update_routes.router)
router.include_router(subscriber_routes.router)
router.include_router(component_routes.router)
router.include_router(maintenance_routes.router)
router.include_router(crisis_routes.router)
