"""Who may use the console: the session cookie, the live API token behind it, CSRF checks on POSTs, and
how the console's routes answer errors (pages and redirects, never the API's JSON)."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request
from fastapi.routing import APIRoute
from pydantic import ValidationError
from starlette.responses import Response

from dispatcher.access.console_sessions import session_alive
from dispatcher.domain.errors import ConfigurationError, InvalidInput, NotFound, NotInitialised, TocsinError
from dispatcher.domain.identity import Identity
from dispatcher.engine.runtime import Runtime
from dispatcher.web.console.identity import ApiToken, Scope, live_token
from dispatcher.web.console.queries import Attention
from dispatcher.web.console.sending import BackgroundDelivery
from dispatcher.web.console.session import SESSION_COOKIE, CookieSigner, Session, csrf_matches
from dispatcher.web.console.views import page

PREFIX = "/console"
CSRF_HEADER = "X-CSRF-Token"


class ConsoleState:
    """Per application: the cookie signer (its key from the settings) and the background deliveries."""

    def __init__(self) -> None:
        self._signer: CookieSigner | None = None
        self._lock = threading.Lock()
        self.background = BackgroundDelivery()

    def signer(self, rt: Runtime) -> CookieSigner:
        with self._lock:  # one key per app: two first requests must not sign with different keys
            if self._signer is None:
                secret = rt.settings.console_secret
                key = secret.get_secret_value().encode() if secret else secrets.token_bytes(32)
                self._signer = CookieSigner(key)
            return self._signer


_STATE_LOCK = threading.Lock()


def console_state(request: Request) -> ConsoleState:
    with _STATE_LOCK:
        state = getattr(request.app.state, "console", None)
        if state is None:
            state = request.app.state.console = ConsoleState()
        return state


def runtime_of(request: Request) -> Runtime:
    rt: Runtime = request.app.state.runtime()
    return rt


@dataclass(frozen=True)
class Viewer:
    """The person behind this request: their session, their (live) token and the runtime."""

    rt: Runtime
    session: Session
    token: ApiToken
    state: ConsoleState

    def may(self, scope: Scope) -> bool:
        return self.token.allows(scope)

    @property
    def identity(self) -> Identity:
        """Who this is, proven by the token behind the session (authors and approvers are compared by it)."""
        return Identity(self.session.actor, self.token.id, self.token.name)

    def require(self, scope: Scope) -> None:
        if not self.may(scope):
            raise HTTPException(403, f"your token lacks the {scope.value!r} scope")


def _to_login(request: Request) -> HTTPException:
    if request.headers.get("HX-Request"):
        return HTTPException(401, "log in again", headers={"HX-Redirect": f"{PREFIX}/login"})
    return HTTPException(303, "log in first", headers={"Location": f"{PREFIX}/login"})


def viewer(request: Request) -> Viewer:
    rt = runtime_of(request)
    state = console_state(request)
    session = state.signer(rt).read_session(request.cookies.get(SESSION_COOKIE))
    token = live_token(rt, session.token_id) if session else None
    if session is None or token is None or not session_alive(rt, session.sid, session.token_id):
        raise _to_login(request)
    return Viewer(rt, session, token, state)


async def csrf_checked(request: Request, who: Annotated[Viewer, Depends(viewer)]) -> Viewer:
    """POSTs carry the session's CSRF token: a form field ``csrf`` or the ``X-CSRF-Token`` header."""
    given = request.headers.get(CSRF_HEADER)
    if not given:
        form = await request.form()
        field = form.get("csrf")
        given = field if isinstance(field, str) else None
    if not csrf_matches(who.session, given):
        raise HTTPException(403, "the form is stale or forged (CSRF token missing or wrong): reload the page")
    return who


Reader = Annotated[Viewer, Depends(viewer)]
Writer = Annotated[Viewer, Depends(csrf_checked)]


SECURITY_HEADERS = {
    # Scripts only from the console itself (the vendored htmx); never framed (no clickjacking).
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
        "frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}
_HEADINGS = {400: "Cannot do that", 403: "Not allowed", 404: "Not found", 409: "Cannot do that now"}


class ConsoleRoute(APIRoute):
    """Errors on console paths are pages (or redirects to the login), not the API's JSON errors."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                response = await handler(request)
            except HTTPException as exc:
                if exc.status_code in (303, 401) and exc.headers:
                    response = Response(status_code=exc.status_code, headers=exc.headers)
                else:
                    response = error_page(exc.status_code, str(exc.detail))
            except NotFound as exc:
                response = error_page(404, str(exc))
            except TocsinError as exc:  # a page, never the API's JSON, for what a person can fix
                response = error_page(_status_of(exc), str(exc))
            except ValidationError as exc:
                response = error_page(400, "; ".join(_field_message(e) for e in exc.errors()[:5]))
            response.headers.update(SECURITY_HEADERS)
            if "cache-control" not in response.headers:
                response.headers["Cache-Control"] = "no-store"
            return response

        return handle


def _status_of(exc: TocsinError) -> int:
    if isinstance(exc, ConfigurationError | NotInitialised):
        return 503
    return 400 if isinstance(exc, InvalidInput) else 409


def _field_message(error: Any) -> str:
    field = ".".join(str(part) for part in error.get("loc", ())) or "input"
    return f"{field}: {str(error.get('msg', 'invalid')).removeprefix('Value error, ')}"


def error_page(status_code: int, detail: str) -> Response:
    return page(
        "error.html",
        status_code=status_code,
        status=status_code,
        heading=_HEADINGS.get(status_code, "Error"),
        detail=detail,
        csrf="",
        actor="",
        attention=Attention([], []),
        now=None,
        error=None,
    )
