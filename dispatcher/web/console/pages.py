"""What every console page shares: the context of the page frame, error messages, redirects."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from starlette.responses import RedirectResponse

from dispatcher.engine.readiness.state import snapshot
from dispatcher.web.console import queries
from dispatcher.web.console.access import PREFIX, Viewer
from dispatcher.web.console.identity import Scope


def common_context(who: Viewer, **context: Any) -> dict[str, Any]:
    """What every full page shows: who is logged in, the attention bar, the CSRF token."""
    return {
        "actor": who.session.actor,
        "csrf": who.session.csrf,
        "attention": queries.attention(who.rt),
        "now": who.rt.clock.now(),
        "may_publish": who.may(Scope.PUBLISH),
        "may_import": who.may(Scope.SUBSCRIBERS),
        "standing": snapshot(who.rt),  # channel readiness, shown where updates are composed
        "delivery_problems": who.state.background.problems,
        "error": None,
        **context,
    }


def problem(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'input'}: {e['msg']}" for e in exc.errors())
    return str(exc)


def see(path: str) -> RedirectResponse:
    return RedirectResponse(f"{PREFIX}{path}", status_code=303)
