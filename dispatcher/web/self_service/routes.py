"""Self-service subscription pages and endpoints, unauthenticated, linked from the status page.

* ``GET /subscribe``: the form (email, text or webhook; components, minimum severity, language, time
  zone). ``POST /subscribe``: form fields or JSON (``{"channel", "address", …}``; ``{"email": …}``
  still works): email gets a confirmation link, a phone number a code (then the code page), a webhook
  a verification ping it must answer.
* ``POST /subscribe/verify?token=…``: the SMS code (form ``code`` or JSON ``{"code"}``).
* ``GET /manage?token=…``: the signed page of the link in every message; ``POST`` saves channels,
  components, severity, language, time zone and quiet hours (``action=save``) or stops everything
  (``action=stop``).

Bodies are read and described by ``bodies``, answers declared by ``answers``: a body that breaks its
description is a 422, one refused by what no schema states a 409 (see ``bodies``). Answers never tell
whether an address was subscribed already; every endpoint is rate limited (``rate_limits``). JSON
requests get JSON and ``application/problem+json``; browsers get small pages that need no JavaScript
and fit a phone.
"""

from __future__ import annotations

import contextlib
import re
from typing import Any, TypeVar

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from pydantic import BaseModel, ValidationError
from starlette.concurrency import run_in_threadpool

from channels.base import ChannelKind
from dispatcher.audience import self_service
from dispatcher.audience.consent import BadLink
from dispatcher.audience.self_service import Preferences, SignupRequest
from dispatcher.config.keys import Purpose
from dispatcher.domain.errors import InvalidInput, TocsinError
from dispatcher.domain.models import check_quiet_window
from dispatcher.engine.runtime import Runtime
from dispatcher.web.api.problems import PROBLEM_JSON
from dispatcher.web.self_service.answers import (
    BODY_ANSWERS,
    HTML,
    CodeSent,
    EmailPending,
    Managed,
    PhoneVerified,
    WebhookVerified,
    answer,
    limited,
    link_answers,
    token_parameter,
)
from dispatcher.web.self_service.bodies import (
    BodyError,
    ManageBody,
    SignupBody,
    VerifyBody,
    described_body,
    read_form,
    read_json,
    token_pattern,
    validate,
)
from dispatcher.web.self_service.rate_limits import Limited, RateLimits

router = APIRouter(tags=["self-service"])

CHANNEL_TEXT = {"email": "By email", "sms": "By text message", "webhook": "By webhook (for your systems)"}

ENV = Environment(
    loader=PackageLoader("dispatcher.web.self_service", "templates"),
    autoescape=select_autoescape(["html"], default=True),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
Body = TypeVar("Body", bound=BaseModel)


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


def _message(rt: Runtime, status: int, title: str, line: str, **more: Any) -> HTMLResponse:
    more.setdefault("manage_url", None)
    more.setdefault("secret", None)
    return _page(rt, "message.html", status, title=title, lines=[line], **more)


def _problem(
    status: int, detail: str, field: str | None = None, retry_after: int | None = None
) -> JSONResponse:
    titles = {
        400: "Bad request",
        404: "Not found",
        410: "Gone",
        422: "Invalid input",
        429: "Too many requests",
    }
    body: dict[str, Any] = {
        "type": "urn:tocsin:problem:" + ("invalid-input" if status == 422 else f"status-{status}"),
        "title": titles.get(status, "Cannot do that"),
        "status": status,
        "detail": detail,
    }
    if field:
        body["errors"] = [{"field": field, "message": detail.partition(": ")[2] or detail}]
    headers = {"Retry-After": str(retry_after)} if retry_after else None
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def _too_many(response: Response, exc: Limited) -> Response:
    response.headers["Retry-After"] = str(exc.retry_after)
    return response


def _status_of(exc: TocsinError) -> int:
    """A link's own status (422 malformed, 404 no match, 410 expired); any other refusal of a request
    that matched its description is a 409; a message that could not be sent, or a misconfiguration, 503."""
    status = getattr(exc, "http_status", None)
    if isinstance(status, int):
        return status
    return 409 if isinstance(exc, InvalidInput) else 503


def _field_of(exc: Exception) -> str | None:
    if isinstance(exc, BodyError):
        return exc.field
    if isinstance(exc, BadLink):
        return "token"
    head = str(exc).partition(": ")[0] if isinstance(exc, InvalidInput) else ""
    return head if head and " " not in head else None


def _refusal(exc: BodyError | TocsinError) -> tuple[int, str]:
    status = exc.status if isinstance(exc, BodyError) else _status_of(exc)
    return status, str(exc)


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
    """The request's fields from a JSON object or a form (as ``bodies.read_form`` spells them)."""
    if _wants_json(request):
        return read_json(await request.body())
    return read_form(list((await request.form()).multi_items()))


async def _read(request: Request, model: type[Body]) -> tuple[dict[str, Any], Body]:
    data = await _fields(request)
    return data, validate(model, data)


def _token(request: Request, purpose: Purpose) -> str:
    """The link's token, if it has a link's shape (else a 422 naming ``token``)."""
    token = request.query_params.get("token", "")
    if not re.fullmatch(token_pattern(purpose), token):
        raise BodyError("token", f"not a {purpose} link (the token is missing or malformed)")
    return token


def _preferences(data: dict[str, Any]) -> Preferences | None:
    """What the form had chosen, to show it again with an error (None if it cannot be read)."""
    fields = {k: v for k, v in data.items() if k in Preferences.model_fields}
    with contextlib.suppress(ValidationError):
        return Preferences.model_validate(fields)
    return None


def _whole_window(prefs: Preferences) -> None:
    """Two ends that are one time (``7:00`` and ``07:00``) make no window: refused (409), since the
    description cannot say which two strings name one time."""
    try:
        check_quiet_window(prefs.quiet_start, prefs.quiet_end, by_field=True)
    except ValueError as exc:
        raise InvalidInput(f"quiet_end: {exc}") from None


SIGNUP_MEDIA = (HTML, PROBLEM_JSON)


@router.get(
    "/subscribe",
    response_class=HTMLResponse,
    responses={200: answer("The signup form.", HTML), 429: limited(HTML)},
)
async def signup_form(request: Request) -> Response:
    rt = _runtime(request)
    try:
        _limits(request).hit("page", _client(request))
    except Limited as exc:
        return _too_many(_message(rt, 429, "Too many requests", str(exc)), exc)
    return _form_page(rt)


@router.post(
    "/subscribe",
    status_code=202,
    openapi_extra={"requestBody": described_body("SelfServiceSignup")},
    responses={
        201: answer("A webhook answered its verification ping: subscribed.", HTML, model=WebhookVerified),
        202: answer(
            "Email: a confirmation link is on its way; text: a code is (then POST /subscribe/verify).",
            HTML,
            model=EmailPending | CodeSent,
        ),
        **BODY_ANSWERS,
        409: answer(
            "As described, but refused: a channel not offered here, a component this page does not have, "
            "a number no country's plan has, a webhook that is not reachable or does not answer its ping.",
            *SIGNUP_MEDIA,
        ),
        422: answer("The body breaks this description: `errors` names the field.", *SIGNUP_MEDIA),
        429: limited(*SIGNUP_MEDIA),
        503: answer(
            "The code or email could not be sent now (try again), or a misconfiguration.", *SIGNUP_MEDIA
        ),
    },
)
async def signup(request: Request) -> Response:
    rt = _runtime(request)
    as_json = _wants_json(request)
    data: dict[str, Any] = {}
    try:
        limits = _limits(request)
        limits.hit("signup", _client(request))
        data = await _fields(request)
        body = validate(SignupBody, data)
        req = validate(
            SignupRequest, {"channel": body.chosen, "address": body.given_address, **body.preferences()}
        )
        _whole_window(req)
        limits.hit("destination", f"{req.channel.value}:{req.address.strip()}")
        result = await run_in_threadpool(self_service.request, rt, req, str(request.base_url))
    except Limited as exc:
        if as_json:
            return _problem(429, str(exc), retry_after=exc.retry_after)
        return _too_many(_form_page(rt, 429, error=str(exc)), exc)
    except (BodyError, TocsinError) as exc:
        status, detail = _refusal(exc)
        if as_json:
            return _problem(status, detail, _field_of(exc))
        shown = {k: v for k, v in data.items() if isinstance(v, str)}
        return _form_page(rt, status, error=detail, prefs=_preferences(data), **shown)
    return _signup_answer(rt, result, as_json)


def _signup_answer(rt: Runtime, result: self_service.SignupResult, as_json: bool) -> Response:
    if result.channel is ChannelKind.EMAIL:
        if as_json:
            pending = EmailPending(status="pending_confirmation", email=result.address)
            return JSONResponse(pending.model_dump(), status_code=202)
        line = (
            f"If {result.address} is not subscribed yet, we sent it an email with a link: "
            "follow it to confirm."
        )
        return _message(rt, 202, "Check your inbox", line)
    if result.channel is ChannelKind.SMS:
        assert result.verify_token is not None
        if as_json:
            sent = CodeSent(status="code_sent", phone=result.address, verify_token=result.verify_token)
            return JSONResponse(sent.model_dump(), status_code=202)
        return _page(
            rt,
            "verify.html",
            202,
            title="Enter the code we texted you",
            address=result.address,
            token=result.verify_token,
        )
    assert result.secret is not None and result.manage_url is not None
    if as_json:
        verified = WebhookVerified(
            status="verified", url=result.address, secret=result.secret, manage_url=result.manage_url
        )
        return JSONResponse(verified.model_dump(), status_code=201)
    line = f"{result.address} answered the verification ping: it will get every update you chose."
    return _message(rt, 201, "Webhook subscribed", line, manage_url=result.manage_url, secret=result.secret)


def _linked_form_answers(ok: dict[str, Any], conflict: str) -> dict[int | str, dict[str, Any]]:
    """What a form posted to a signed link may be answered: ``ok``, a body or link refused, ``conflict``
    (409), over a rate limit, or a server without its signing key."""
    return {
        200: ok,
        **BODY_ANSWERS,
        **link_answers(*SIGNUP_MEDIA),
        409: answer(conflict, *SIGNUP_MEDIA),
        429: limited(*SIGNUP_MEDIA),
        503: answer("The server is misconfigured (no signing key).", *SIGNUP_MEDIA),
    }


@router.post(
    "/subscribe/verify",
    openapi_extra={
        "parameters": [token_parameter("verify", "The `verify_token` of the signup's answer.")],
        "requestBody": described_body("SelfServiceVerify"),
    },
    responses=_linked_form_answers(
        answer("The number is confirmed.", HTML, model=PhoneVerified),
        "Not the code we sent, or no code is waiting (expired, tried too often).",
    ),
)
async def verify(request: Request) -> Response:
    rt = _runtime(request)
    as_json = _wants_json(request)
    token = request.query_params.get("token", "")
    try:
        _limits(request).hit("code", _client(request))
        token = _token(request, "verify")
        _, body = await _read(request, VerifyBody)
        result = await run_in_threadpool(self_service.verify_code, rt, token, body.code)
    except Limited as exc:
        if as_json:
            return _problem(429, str(exc), retry_after=exc.retry_after)
        return _too_many(_message(rt, 429, "Too many tries", str(exc)), exc)
    except (BodyError, TocsinError) as exc:
        status, detail = _refusal(exc)
        field = _field_of(exc)
        if as_json:
            return _problem(status, detail, field)
        if field == "code":
            return _page(
                rt,
                "verify.html",
                status,
                title="Enter the code we texted you",
                address="your number",
                token=token,
                error=detail,
            )
        return _message(rt, status, "Link not valid", detail)
    if as_json:
        assert result.manage_url is not None
        verified = PhoneVerified(status="verified", phone=result.address, manage_url=result.manage_url)
        return JSONResponse(verified.model_dump())
    line = f"{result.address} will get {rt.settings.organisation}'s status updates by text."
    return _message(rt, 200, "Subscription confirmed", line, manage_url=result.manage_url)


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


MANAGE_TOKEN = token_parameter("manage", "The token of the manage link in every message.")


@router.get(
    "/manage",
    response_class=HTMLResponse,
    openapi_extra={"parameters": [MANAGE_TOKEN]},
    responses={
        200: answer("The subscriber's page.", HTML),
        **link_answers(HTML),
        429: limited(HTML),
        503: answer("The server is misconfigured (no signing key).", HTML),
    },
)
async def manage_page(request: Request) -> Response:
    rt = _runtime(request)
    try:
        _limits(request).hit("page", _client(request))
        token = _token(request, "manage")
        view = await run_in_threadpool(self_service.manage_view, rt, token)
    except Limited as exc:
        return _too_many(_message(rt, 429, "Too many requests", str(exc)), exc)
    except (BodyError, TocsinError) as exc:
        status, detail = _refusal(exc)
        return _message(rt, status, "Link not valid", detail)
    return _manage_page(rt, token, view)


@router.post(
    "/manage",
    openapi_extra={"parameters": [MANAGE_TOKEN], "requestBody": described_body("SelfServiceManage")},
    responses=_linked_form_answers(
        answer("Saved (or stopped): what is chosen now.", HTML, model=Managed),
        "As described, but refused: a component this page does not have.",
    ),
)
async def manage(request: Request) -> Response:
    rt = _runtime(request)
    as_json = _wants_json(request)
    token = request.query_params.get("token", "")
    try:
        _limits(request).hit("manage", _client(request))
        token = _token(request, "manage")
        _, body = await _read(request, ManageBody)
        if body.action == "stop":
            view = await run_in_threadpool(self_service.stop_everything, rt, token)
            saved = "Done: you will get no more updates. Tick a contact and save to start again."
        else:
            prefs = validate(Preferences, body.preferences())
            _whole_window(prefs)
            receiving = body.receiving
            if receiving is None and not _wants_json(request):
                receiving = []  # a browser posts no box that is not ticked: none is
            view = await run_in_threadpool(self_service.update_preferences, rt, token, prefs, receiving)
            saved = "Saved."
    except Limited as exc:
        if as_json:
            return _problem(429, str(exc), retry_after=exc.retry_after)
        return _too_many(_message(rt, 429, "Too many requests", str(exc)), exc)
    except (BodyError, TocsinError) as exc:
        status, detail = _refusal(exc)
        if as_json:
            return _problem(status, detail, _field_of(exc))
        try:
            current = await run_in_threadpool(self_service.manage_view, rt, token)
        except TocsinError:
            return _message(rt, status, "Link not valid", detail)
        return _manage_page(rt, token, current, status, error=detail)
    if as_json:
        return JSONResponse(_managed(view).model_dump(mode="json"))
    return _manage_page(rt, token, view, saved=saved)


def _managed(view: self_service.ManageView) -> Managed:
    prefs = view.preferences.model_dump(mode="json")
    contacts = [
        {"id": c.id, "channel": c.channel, "address": c.address, "receiving": c.receiving}
        for c in view.contacts
    ]
    return Managed.model_validate({"preferences": prefs, "contacts": contacts})
