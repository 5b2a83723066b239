"""Self-service pages and endpoints, unauthenticated: confirm an email signup and unsubscribe.

* ``GET /subscribe`` and ``POST /subscribe`` (email, text or webhook) are in ``dispatcher.web.self_service``.
* ``GET /subscribe/confirm?token=…`` — the link in that email: confirms the address.
* ``GET /unsubscribe?token=…`` — a page with one button; ``POST /unsubscribe?token=…`` — RFC 8058
  one-click unsubscribe (mail clients POST ``List-Unsubscribe=One-Click``): opts the address out.

Every answer is a small HTML page (no JavaScript), its status saying what happened: 200, or for the
link in ``token`` 422 (not a link's shape), 404 (no address matches it) or 410 (expired); they are
declared in ``/openapi.json`` with the token's pattern (``dispatcher.web.self_service.answers``).
"""

from __future__ import annotations

import re
from html import escape
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool

from dispatcher.audience import consent
from dispatcher.audience.consent import BadLink
from dispatcher.config.keys import Purpose
from dispatcher.domain.errors import TocsinError
from dispatcher.engine.runtime import Runtime
from dispatcher.web.self_service.answers import HTML, answer, link_answers, token_parameter
from dispatcher.web.self_service.bodies import FORM, token_pattern

router = APIRouter(tags=["self-service"])


def _runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime()
    return runtime


def _page(title: str, body: str, status: int = 200, lang: str = "en") -> HTMLResponse:
    html = (
        f'<!DOCTYPE html><html lang="{escape(lang)}"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title></head>"
        '<body style="font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:36em;'
        'margin:3em auto;padding:0 1em;color:#212529;line-height:1.5">'
        f"<h1>{escape(title)}</h1>{body}</body></html>"
    )
    return HTMLResponse(html, status_code=status)


def _status_of(exc: TocsinError) -> int:
    """A link's own status (422 malformed, 404 no match, 410 expired); a misconfiguration is a 503."""
    status = getattr(exc, "http_status", None)
    return status if isinstance(status, int) else 503


def _checked(request: Request, purpose: Purpose) -> str:
    """The link's token, if it has a link's shape (``BadLink``, 422, otherwise)."""
    token = request.query_params.get("token", "")
    if not re.fullmatch(token_pattern(purpose), token):
        raise BadLink(f"{purpose} link: the token is missing or malformed", 422)
    return token


def _answers(ok: str) -> dict[int | str, dict[str, Any]]:
    return {
        200: answer(ok, HTML),
        **link_answers(HTML),
        503: answer("The server is misconfigured (no signing key).", HTML),
    }


UNSUBSCRIBE_TOKEN = token_parameter("unsubscribe", "The token of the unsubscribe link in every email.")
ONE_CLICK_BODY: dict[str, Any] = {
    "required": False,
    "description": "Not read: mail clients send `List-Unsubscribe=One-Click` (RFC 8058), as the button does.",
    "content": {
        FORM: {
            "schema": {
                "type": "object",
                "properties": {"List-Unsubscribe": {"type": "string"}},
                "additionalProperties": {"type": "string"},
            }
        }
    },
}


@router.get(
    "/subscribe/confirm",
    response_class=HTMLResponse,
    openapi_extra={"parameters": [token_parameter("confirm", "The token of the confirmation email's link.")]},
    responses=_answers("The address is confirmed."),
)
async def confirm_signup(request: Request) -> HTMLResponse:
    rt = _runtime(request)
    try:
        done = await run_in_threadpool(consent.confirm, rt, _checked(request, "confirm"))
    except TocsinError as exc:
        return _page("Link not valid", f"<p>{escape(str(exc))}</p>", _status_of(exc))
    return _page(
        "Subscription confirmed",
        f"<p>{escape(done.address)} will get {escape(rt.settings.organisation)}'s status updates.</p>",
    )


@router.get(
    "/unsubscribe",
    response_class=HTMLResponse,
    openapi_extra={"parameters": [UNSUBSCRIBE_TOKEN]},
    responses=_answers("A page with one button, to unsubscribe."),
)
async def unsubscribe_page(request: Request) -> HTMLResponse:
    rt = _runtime(request)
    try:
        token = _checked(request, "unsubscribe")
        address = await run_in_threadpool(consent.check_unsubscribe_link, rt, token)
    except TocsinError as exc:
        return _page("Link not valid", f"<p>{escape(str(exc))}</p>", _status_of(exc))
    action = "/unsubscribe?token=" + escape(token, quote=True)
    return _page(
        "Unsubscribe",
        f"<p>Stop sending {escape(rt.settings.organisation)} status updates to "
        f"<strong>{escape(address)}</strong>?</p>"
        f'<form method="post" action="{action}">'
        '<input type="hidden" name="List-Unsubscribe" value="One-Click">'
        '<button type="submit">Unsubscribe</button></form>',
    )


@router.post(
    "/unsubscribe",
    response_class=HTMLResponse,
    openapi_extra={"parameters": [UNSUBSCRIBE_TOKEN], "requestBody": ONE_CLICK_BODY},
    responses={
        **_answers("The address is unsubscribed (again, if it was already)."),
        413: answer("The body is larger than limits.max_body_bytes.", HTML),
    },
)
async def unsubscribe(request: Request) -> HTMLResponse:
    """RFC 8058 one-click: the token in the query is all that counts (the body is
    ``List-Unsubscribe=One-Click`` from mail clients, or the page's button)."""
    rt = _runtime(request)
    try:
        address = await run_in_threadpool(consent.unsubscribe, rt, _checked(request, "unsubscribe"))
    except TocsinError as exc:
        return _page("Link not valid", f"<p>{escape(str(exc))}</p>", _status_of(exc))
    return _page("Unsubscribed", f"<p>{escape(address)} will get no more status updates.</p>")
