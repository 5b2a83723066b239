"""Self-service pages and endpoints, unauthenticated: confirm an email signup and unsubscribe.

* ``GET /subscribe`` and ``POST /subscribe`` (email, text or webhook) are in ``dispatcher.web.self_service``.
* ``GET /subscribe/confirm?token=…`` — the link in that email: confirms the address.
* ``GET /unsubscribe?token=…`` — a page with one button; ``POST /unsubscribe?token=…`` — RFC 8058
  one-click unsubscribe (mail clients POST ``List-Unsubscribe=One-Click``): opts the address out.

JSON requests get JSON answers and ``application/problem+json`` errors; browsers get small HTML pages.
No JavaScript anywhere.
"""

from __future__ import annotations

from html import escape
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.concurrency import run_in_threadpool

from dispatcher.audience import consent
from dispatcher.domain.errors import InvalidInput, TocsinError
from dispatcher.engine.runtime import Runtime

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


def _wants_json(request: Request) -> bool:
    return "json" in request.headers.get("content-type", "").lower()


def _status_of(exc: TocsinError) -> int:
    status = getattr(exc, "http_status", None)
    if isinstance(status, int):
        return status
    return 422 if isinstance(exc, InvalidInput) else 503


def _problem(status: int, detail: str, field: str | None = None) -> JSONResponse:
    body: dict[str, Any] = {
        "type": "urn:tocsin:problem:" + ("invalid-input" if status == 422 else f"status-{status}"),
        "title": "Invalid input" if status == 422 else "Cannot do that",
        "status": status,
        "detail": detail,
    }
    if field:
        body["errors"] = [{"field": field, "message": detail.partition(": ")[2] or detail}]
    return JSONResponse(body, status_code=status, media_type="application/problem+json")


@router.get("/subscribe/confirm", response_class=HTMLResponse)
async def confirm_signup(request: Request, token: str = "") -> HTMLResponse:
    rt = _runtime(request)
    try:
        done = await run_in_threadpool(consent.confirm, rt, token)
    except TocsinError as exc:
        return _page("Link not valid", f"<p>{escape(str(exc))}</p>", _status_of(exc))
    return _page(
        "Subscription confirmed",
        f"<p>{escape(done.address)} will get {escape(rt.settings.organisation)}'s status updates.</p>",
    )


@router.get("/unsubscribe", response_class=HTMLResponse)
async def unsubscribe_page(request: Request, token: str = "") -> HTMLResponse:
    rt = _runtime(request)
    try:
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


@router.post("/unsubscribe", response_class=HTMLResponse)
async def unsubscribe(request: Request, token: str = "") -> HTMLResponse:
    """RFC 8058 one-click: the token in the query is all that counts (the body is
    ``List-Unsubscribe=One-Click`` from mail clients, or the page's button)."""
    rt = _runtime(request)
    try:
        address = await run_in_threadpool(consent.unsubscribe, rt, token)
    except TocsinError as exc:
        return _page("Link not valid", f"<p>{escape(str(exc))}</p>", _status_of(exc))
    return _page("Unsubscribed", f"<p>{escape(address)} will get no more status updates.</p>")
