"""Self-service pages and endpoints, unauthenticated: sign up (double opt-in) and unsubscribe.

* ``GET /subscribe`` — a small form; ``POST /subscribe`` — form fields or JSON ``{email, locale,
  components}``: stores an unconfirmed subscriber and emails a confirmation link. Answers 202 whether or
  not the address was already subscribed (the answer does not tell who subscribes).
* ``GET /subscribe/confirm?token=…`` — the link in that email: confirms the address.
* ``GET /unsubscribe?token=…`` — a page with one button; ``POST /unsubscribe?token=…`` — RFC 8058
  one-click unsubscribe (mail clients POST ``List-Unsubscribe=One-Click``): opts the address out.

JSON requests get JSON answers and ``application/problem+json`` errors; browsers get small HTML pages.
No JavaScript anywhere.
"""

from __future__ import annotations

import json
from html import escape
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool

from dispatcher.audience import consent
from dispatcher.domain.errors import InvalidInput, TocsinError
from dispatcher.engine.runtime import Runtime

router = APIRouter(tags=["self-service"])


class SignupRequest(BaseModel):
    """What ``POST /subscribe`` takes (JSON or form fields)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    email: str = Field(min_length=3, max_length=320)
    locale: str = Field(default="en", max_length=20)
    components: list[str] = Field(default_factory=list, max_length=consent.MAX_COMPONENTS)


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


async def _signup_request(request: Request) -> SignupRequest:
    """The signup fields from a JSON body or a form; ``InvalidInput`` naming the first bad field."""
    data: Any
    if _wants_json(request):
        try:
            data = json.loads(await request.body() or b"null")
        except ValueError:
            raise InvalidInput("body: not valid JSON") from None
        if not isinstance(data, dict):
            raise InvalidInput("body: expected a JSON object with email, locale and components")
    else:
        form = await request.form()
        components = [c for raw in form.getlist("components") if isinstance(raw, str) for c in raw.split(",")]
        data = {
            k: v for k, v in form.items() if k in ("email", "locale") and isinstance(v, str) and v.strip()
        }
        data["components"] = [c for c in components if c.strip()]
    try:
        return SignupRequest.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or "body"
        raise InvalidInput(f"{field}: {err['msg']}") from None


SIGNUP_FORM = (
    '<form method="post" action="/subscribe">'
    '<p><label>Email<br><input type="email" name="email" required size="40"></label></p>'
    '<p><label>Language<br><select name="locale"><option value="en">English</option>'
    '<option value="fr">Français</option></select></label></p>'
    "<p><label>Components to follow (comma separated; empty for all)<br>"
    '<input type="text" name="components" size="40"></label></p>'
    '<p><button type="submit">Subscribe</button></p></form>'
)


@router.get("/subscribe", response_class=HTMLResponse)
async def signup_form(request: Request) -> HTMLResponse:
    org = _runtime(request).settings.organisation
    return _page(f"{org} status updates", f"<p>Get an email when something breaks.</p>{SIGNUP_FORM}")


@router.post("/subscribe", status_code=202)
async def signup(request: Request) -> Response:
    rt = _runtime(request)
    as_json = _wants_json(request)
    try:
        fields = await _signup_request(request)
        result = await run_in_threadpool(
            consent.request_signup,
            rt,
            fields.email,
            fields.locale,
            fields.components,
            str(request.base_url),
        )
    except TocsinError as exc:
        status = _status_of(exc)
        if as_json:
            field = str(exc).partition(": ")[0] if isinstance(exc, InvalidInput) else None
            return _problem(status, str(exc), field if field and " " not in field else None)
        return _page("Not subscribed", f"<p>{escape(str(exc))}</p>{SIGNUP_FORM}", status)
    if as_json:
        # The same answer for an address already confirmed: the API does not tell who subscribes.
        return JSONResponse({"status": "pending_confirmation", "email": result.address}, status_code=202)
    return _page(
        "Check your inbox",
        f"<p>If {escape(result.address)} is not subscribed yet, we sent it an email with a link: "
        "follow it to confirm your subscription.</p>",
        202,
    )


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
