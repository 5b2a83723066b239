"""Self-service subscription pages and endpoints, unauthenticated, linked from the status page.

* ``GET /subscribe``: the form (email, text or webhook; components, minimum severity, language, time
  zone). ``POST /subscribe``: form fields or JSON (``{"channel", "address", …}``; ``{"email": …}``
  still works): email gets a confirmation link, a phone number a code (then the code page), a webhook
  a verification ping it must answer.
* ``POST /subscribe/verify?token=…``: the SMS code (form ``code`` or JSON ``{"code"}``).
* ``GET /manage?token=…``: the signed page of the link in every message; ``POST`` saves channels,
  components, severity, language, time zone and quiet hours (``action=save``) or stops everything
  (``action=stop``).

Answers never tell whether an address was subscribed already; every endpoint is rate limited
(``rate_limits``). JSON requests get JSON and ``application/problem+json``; browsers get small pages
that need no JavaScript and fit a phone.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from channels.base import ChannelKind
from dispatcher.audience import self_service
from dispatcher.audience.self_service import Preferences, SignupRequest
from dispatcher.domain.errors import InvalidInput, TocsinError
from dispatcher.engine.runtime import Runtime
from dispatcher.web.self_service.rate_limits import Limited, RateLimits

router = APIRouter(tags=["self-service"])

CHANNEL_TEXT = {"email": "By email", "sms": "By text message", "webhook": "By webhook (for your systems)"}
FIELD_OF = {"email": "email", "sms": "phone", "webhook": "url"}

ENV = Environment(
    loader=PackageLoader("dispatcher.web.self_service", "templates"),
    autoescape=select_autoescape(["html"], default=True),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def _runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime()
    return runtime


def _limits(request: Request) -> RateLimits:
    found = getattr(request.app.state, "self_service_limits", None)
    if found is None:
        # One counter per app (and so per ``tocsin api`` process), shared through Redis when configured.
        found = RateLimits.build(_runtime(request).settings.redis_url)
        request.app.state.self_service_limits = found
    assert isinstance(found, RateLimits)
    return found


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _wants_json(request: Request) -> bool:
    return "json" in request.headers.get("content-type", "").lower()


def _page(rt: Runtime, name: str, status: int = 200, **context: Any) -> HTMLResponse:
    context.setdefault("error", None)
    context.setdefault("lang", "en")
    html = ENV.get_template(name).render(
        organisation=rt.settings.organisation, status_page_url=rt.settings.status_page_url, **context
    )
    return HTMLResponse(html, status_code=status)


def _problem(
    status: int, detail: str, field: str | None = None, retry_after: int | None = None
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": "urn:tocsin:problem:" + ("invalid-input" if status == 422 else f"status-{status}"),
        "title": {422: "Invalid input", 429: "Too many requests"}.get(status, "Cannot do that"),
        "status": status,
        "detail": detail,
    }
    if field:
        body["errors"] = [{"field": field, "message": detail.partition(": ")[2] or detail}]
    headers = {"Retry-After": str(retry_after)} if retry_after else None
    return JSONResponse(body, status_code=status, media_type="application/problem+json", headers=headers)


def _status_of(exc: TocsinError) -> int:
    status = getattr(exc, "http_status", None)
    if isinstance(status, int):
        return status
    return 422 if isinstance(exc, InvalidInput) else 503


def _offered(rt: Runtime) -> list[str]:
    return [c.value for c in self_service.SELF_SERVICE_CHANNELS if rt.settings.channels[c].enabled]


def _form_page(rt: Runtime, status: int = 200, error: str | None = None, **form: Any) -> HTMLResponse:
    offered = _offered(rt)
    values = {"channel": offered[0] if offered else "email", "email": "", "phone": "", "url": ""}
    values.update({k: v for k, v in form.items() if k in values and isinstance(v, str)})
    prefs = form.get("prefs") or Preferences()
    return _page(
        rt,
        "subscribe.html",
        status,
        title=f"Get {rt.settings.organisation}'s status updates",
        channels=[(c, CHANNEL_TEXT[c]) for c in offered],
        offered=offered,
        form=values,
        prefs=prefs,
        choosable=self_service.choosable_components(rt),
        quiet=False,
        error=error,
    )


async def _fields(request: Request) -> dict[str, Any]:
    """The request's fields from a JSON object or a form (lists for repeated fields)."""
    if _wants_json(request):
        try:
            data = json.loads(await request.body() or b"null")
        except ValueError:
            raise InvalidInput("body: not valid JSON") from None
        if not isinstance(data, dict):
            raise InvalidInput("body: expected a JSON object")
        return data
    form = await request.form()
    data = {k: v for k, v in form.items() if isinstance(v, str) and v.strip()}
    data["components"] = [
        c.strip()
        for raw in form.getlist("components")
        if isinstance(raw, str)
        for c in raw.split(",")
        if c.strip()
    ]
    data["receiving"] = [int(r) for r in form.getlist("receiving") if isinstance(r, str) and r.isdigit()]
    return data


def _signup_request(data: dict[str, Any]) -> SignupRequest:
    """The signup in ``data``: ``channel`` + ``address``, or the channel's own field (email, phone, url)."""
    fields = dict(data)
    fields.pop("receiving", None)
    channel = str(
        fields.get("channel") or ("sms" if "phone" in fields else "webhook" if "url" in fields else "email")
    )
    own = FIELD_OF.get(channel, "address")
    for name in FIELD_OF.values():
        value = fields.pop(name, None)
        if name == own and value and not fields.get("address"):
            fields["address"] = value
    fields["channel"] = channel
    try:
        return SignupRequest.model_validate(fields)
    except ValidationError as exc:
        err = exc.errors()[0]
        name = ".".join(str(p) for p in err["loc"]) or "body"
        if name == "address":
            name = own
        raise InvalidInput(f"{name}: {err['msg']}") from None


def _preferences(data: dict[str, Any]) -> Preferences:
    fields = {k: v for k, v in data.items() if k in Preferences.model_fields}
    try:
        return Preferences.model_validate(fields)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise InvalidInput(f"{'.'.join(str(p) for p in err['loc']) or 'body'}: {err['msg']}") from None


@router.get("/subscribe", response_class=HTMLResponse)
async def signup_form(request: Request) -> Response:
    rt = _runtime(request)
    try:
        _limits(request).hit("page", _client(request))
    except Limited as exc:
        return _page(
            rt, "message.html", 429, title="Too many requests", lines=[str(exc)], manage_url=None, secret=None
        )
    return _form_page(rt)


@router.post("/subscribe", status_code=202)
async def signup(request: Request) -> Response:
    rt = _runtime(request)
    as_json = _wants_json(request)
    data: dict[str, Any] = {}
    try:
        limits = _limits(request)
        limits.hit("signup", _client(request))
        data = await _fields(request)
        req = _signup_request(data)
        limits.hit("destination", f"{req.channel.value}:{req.address.strip()}")
        result = await run_in_threadpool(self_service.request, rt, req, str(request.base_url))
    except Limited as exc:
        if as_json:
            return _problem(429, str(exc), retry_after=exc.retry_after)
        page = _form_page(rt, 429, error=str(exc))
        page.headers["Retry-After"] = str(exc.retry_after)
        return page
    except TocsinError as exc:
        status = _status_of(exc)
        if as_json:
            field = str(exc).partition(": ")[0] if isinstance(exc, InvalidInput) else None
            return _problem(status, str(exc), field if field and " " not in field else None)
        prefs = None
        with contextlib.suppress(InvalidInput):
            prefs = _preferences(data)
        return _form_page(
            rt, status, error=str(exc), prefs=prefs, **{k: v for k, v in data.items() if isinstance(v, str)}
        )
    return _signup_answer(rt, result, as_json)


def _signup_answer(rt: Runtime, result: self_service.SignupResult, as_json: bool) -> Response:
    if result.channel is ChannelKind.EMAIL:
        if as_json:
            return JSONResponse({"status": "pending_confirmation", "email": result.address}, status_code=202)
        lines = [
            f"If {result.address} is not subscribed yet, we sent it an email with a link: "
            "follow it to confirm."
        ]
        return _page(
            rt, "message.html", 202, title="Check your inbox", lines=lines, manage_url=None, secret=None
        )
    if result.channel is ChannelKind.SMS:
        if as_json:
            body = {"status": "code_sent", "phone": result.address, "verify_token": result.verify_token}
            return JSONResponse(body, status_code=202)
        return _page(
            rt,
            "verify.html",
            202,
            title="Enter the code we texted you",
            address=result.address,
            token=result.verify_token,
        )
    if as_json:
        body = {
            "status": "verified",
            "url": result.address,
            "secret": result.secret,
            "manage_url": result.manage_url,
        }
        return JSONResponse(body, status_code=201)
    return _page(
        rt,
        "message.html",
        201,
        title="Webhook subscribed",
        lines=[f"{result.address} answered the verification ping: it will get every update you chose."],
        manage_url=result.manage_url,
        secret=result.secret,
    )


@router.post("/subscribe/verify")
async def verify(request: Request, token: str = "") -> Response:
    rt = _runtime(request)
    as_json = _wants_json(request)
    data: dict[str, Any] = {}
    try:
        _limits(request).hit("code", _client(request))
        data = await _fields(request)
        result = await run_in_threadpool(self_service.verify_code, rt, token, str(data.get("code", "")))
    except Limited as exc:
        if as_json:
            return _problem(429, str(exc), retry_after=exc.retry_after)
        return _page(
            rt, "message.html", 429, title="Too many tries", lines=[str(exc)], manage_url=None, secret=None
        )
    except TocsinError as exc:
        status = _status_of(exc)
        if as_json:
            return _problem(status, str(exc), "code" if str(exc).startswith("code:") else None)
        if str(exc).startswith("code:"):
            return _page(
                rt,
                "verify.html",
                status,
                title="Enter the code we texted you",
                address="your number",
                token=token,
                error=str(exc),
            )
        return _page(
            rt, "message.html", status, title="Link not valid", lines=[str(exc)], manage_url=None, secret=None
        )
    if as_json:
        return JSONResponse({"status": "verified", "phone": result.address, "manage_url": result.manage_url})
    lines = [f"{result.address} will get {rt.settings.organisation}'s status updates by text."]
    return _page(
        rt,
        "message.html",
        title="Subscription confirmed",
        lines=lines,
        manage_url=result.manage_url,
        secret=None,
    )


def _manage_page(
    rt: Runtime, token: str, view: self_service.ManageView, status: int = 200, **more: Any
) -> HTMLResponse:
    more.setdefault("saved", None)
    return _page(
        rt,
        "manage.html",
        status,
        title="Manage your subscription",
        token=token,
        view=view,
        prefs=view.preferences,
        choosable=view.choosable,
        quiet=True,
        **more,
    )


@router.get("/manage", response_class=HTMLResponse)
async def manage_page(request: Request, token: str = "") -> Response:
    rt = _runtime(request)
    try:
        _limits(request).hit("page", _client(request))
        view = await run_in_threadpool(self_service.manage_view, rt, token)
    except Limited as exc:
        return _page(
            rt, "message.html", 429, title="Too many requests", lines=[str(exc)], manage_url=None, secret=None
        )
    except TocsinError as exc:
        return _page(
            rt,
            "message.html",
            _status_of(exc),
            title="Link not valid",
            lines=[str(exc)],
            manage_url=None,
            secret=None,
        )
    return _manage_page(rt, token, view)


@router.post("/manage")
async def manage(request: Request, token: str = "") -> Response:
    rt = _runtime(request)
    as_json = _wants_json(request)
    try:
        _limits(request).hit("manage", _client(request))
        data = await _fields(request)
        if data.get("action") == "stop":
            view = await run_in_threadpool(self_service.stop_everything, rt, token)
            saved = "Done: you will get no more updates. Tick a contact and save to start again."
        else:
            prefs = _preferences(data)
            receiving = [int(r) for r in data.get("receiving", []) if str(r).isdigit()]
            view = await run_in_threadpool(self_service.update_preferences, rt, token, prefs, receiving)
            saved = "Saved."
    except Limited as exc:
        if as_json:
            return _problem(429, str(exc), retry_after=exc.retry_after)
        return _page(
            rt, "message.html", 429, title="Too many requests", lines=[str(exc)], manage_url=None, secret=None
        )
    except TocsinError as exc:
        status = _status_of(exc)
        if as_json:
            field = str(exc).partition(": ")[0] if isinstance(exc, InvalidInput) else None
            return _problem(status, str(exc), field if field and " " not in field else None)
        try:
            current = await run_in_threadpool(self_service.manage_view, rt, token)
        except TocsinError:
            return _page(
                rt,
                "message.html",
                status,
                title="Link not valid",
                lines=[str(exc)],
                manage_url=None,
                secret=None,
            )
        return _manage_page(rt, token, current, status, error=str(exc))
    if as_json:
        prefs_out = view.preferences.model_dump(mode="json")
        contacts = [
            {"id": c.id, "channel": c.channel, "address": c.address, "receiving": c.receiving}
            for c in view.contacts
        ]
        return JSONResponse({"preferences": prefs_out, "contacts": contacts})
    return _manage_page(rt, token, view, saved=saved)
