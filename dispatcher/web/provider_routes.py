"""Endpoints providers call after a send: Twilio status callbacks and inbound SMS, SendGrid events.

Every request is authenticated by the provider's own signature (Twilio: HMAC-SHA1 with the auth token
over the URL and parameters; SendGrid: ECDSA over timestamp + body). A forged or stale one gets 403 and
changes nothing.
"""

from __future__ import annotations

from typing import Any
from xml.sax.saxutils import escape

from fastapi import APIRouter, HTTPException, Request, Response
from starlette.concurrency import run_in_threadpool

from channels.base import ChannelKind
from channels.callbacks import sendgrid_events, twilio_callbacks
from channels.twilio import CALLBACK_DELIVERY_PARAM
from dispatcher.audience import self_service
from dispatcher.audience.provider_events import record_provider_status, set_opt_out
from dispatcher.engine.runtime import Runtime
from dispatcher.web.api.problems import problem_doc

router = APIRouter(prefix="/providers", tags=["provider callbacks"])

STOP_ERROR = 21610

_REFUSALS: dict[int | str, dict[str, Any]] = {
    400: problem_doc("Signed, but not a callback this endpoint understands."),
    403: problem_doc("The provider's signature is missing, wrong or stale."),
    404: problem_doc("This provider is not configured here."),
    422: problem_doc("A field, key or value holds a control character (refused before anything else)."),
}
TWILIO_FORM: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "Twilio's callback parameters, signed in X-Twilio-Signature.",
        "content": {
            "application/x-www-form-urlencoded": {
                "schema": {"type": "object", "additionalProperties": {"type": "string"}}
            }
        },
    }
}
SENDGRID_EVENTS: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "SendGrid's event batch, signed (ECDSA over timestamp and body).",
        "content": {
            "application/json": {
                "schema": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "additionalProperties": {
                            "anyOf": [
                                {"type": "string"},
                                {"type": "number"},
                                {"type": "boolean"},
                                {"type": "null"},
                                {"type": "array", "items": {"type": "string"}},
                            ]
                        },
                    },
                }
            }
        },
    }
}


def _runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime()
    return runtime


def _public_url(request: Request, rt: Runtime) -> str:
    """The URL the provider signed: the configured public base (behind a proxy) or the request's own."""
    base = rt.settings.public_url
    if base is None:
        return str(request.url)
    query = f"?{request.url.query}" if request.url.query else ""
    return base.rstrip("/") + request.url.path + query


async def _twilio_params(request: Request, rt: Runtime) -> dict[str, Any]:
    token = rt.settings.providers.get("twilio", {}).get("auth_token")
    if not token:
        raise HTTPException(404, "twilio is not configured")
    params = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
    signature = request.headers.get("X-Twilio-Signature")
    if not twilio_callbacks.verify_signature(str(token), _public_url(request, rt), params, signature):
        raise HTTPException(403, "bad X-Twilio-Signature")
    return params


@router.post("/twilio/status", status_code=204, responses=_REFUSALS, openapi_extra=TWILIO_FORM)
async def twilio_status(request: Request) -> Response:
    rt = _runtime(request)
    params = await _twilio_params(request, rt)
    try:
        event = twilio_callbacks.parse_status_callback(params)
    except ValueError as exc:
        raise HTTPException(400, str(exc)) from None
    error = f"twilio {event.error_code}" if event.error_code else None
    delivery = request.query_params.get(CALLBACK_DELIVERY_PARAM, "")
    await run_in_threadpool(
        record_provider_status,
        rt,
        event.status,
        provider_message_id=event.message_sid,
        delivery_id=int(delivery) if delivery.isdigit() else None,
        error=error,
    )
    if event.error_code == STOP_ERROR and params.get("To"):
        await run_in_threadpool(set_opt_out, rt, ChannelKind.SMS, params["To"], True, "replied STOP")
    return Response(status_code=204)


@router.post(
    "/twilio/inbound",
    response_class=Response,
    responses={
        200: {
            "description": "TwiML: the reply to send back, if any.",
            "content": {"application/xml": {"schema": {"type": "string"}}},
        },
        **_REFUSALS,
    },
    openapi_extra=TWILIO_FORM,
)
async def twilio_inbound(request: Request) -> Response:
    rt = _runtime(request)
    params = await _twilio_params(request, rt)
    try:
        inbound = twilio_callbacks.parse_inbound(params)
    except ValueError as exc:
        raise HTTPException(400, str(exc)) from None
    reply = ""
    if inbound.keyword == "stop":
        await run_in_threadpool(set_opt_out, rt, ChannelKind.SMS, inbound.from_number, True, "replied STOP")
    elif inbound.keyword == "start":
        await run_in_threadpool(set_opt_out, rt, ChannelKind.SMS, inbound.from_number, False, "replied START")
    elif inbound.keyword == "help":
        answer = await run_in_threadpool(self_service.sms_help, rt, inbound.from_number)
        reply = f"<Message>{escape(answer)}</Message>"
    return Response(
        f'<?xml version="1.0" encoding="UTF-8"?><Response>{reply}</Response>', media_type="application/xml"
    )


@router.post("/sendgrid/events", status_code=204, responses=_REFUSALS, openapi_extra=SENDGRID_EVENTS)
async def sendgrid_event_webhook(request: Request) -> Response:
    rt = _runtime(request)
    key = rt.settings.sendgrid_event_public_key
    if key is None:
        raise HTTPException(404, "the SendGrid event webhook is not configured")
    body = await request.body()
    signature = request.headers.get(sendgrid_events.SIGNATURE_HEADER, "")
    timestamp = request.headers.get(sendgrid_events.TIMESTAMP_HEADER, "")
    if not sendgrid_events.verify_event_signature(key.get_secret_value(), body, signature, timestamp):
        raise HTTPException(403, "bad or stale event webhook signature")
    try:
        events = sendgrid_events.parse_events(body)
    except ValueError as exc:
        raise HTTPException(400, str(exc)) from None
    await run_in_threadpool(_apply_email_events, rt, events)
    return Response(status_code=204)


def _apply_email_events(rt: Runtime, events: list[sendgrid_events.EmailEvent]) -> None:
    for event in events:
        reason = event.event + (f": {event.reason}" if event.reason else "")
        if event.delivery_id is not None:
            record_provider_status(
                rt,
                event.event,
                delivery_id=event.delivery_id,
                error=reason if sendgrid_events.is_suppressing(event) else None,
            )
        if sendgrid_events.is_suppressing(event):
            set_opt_out(rt, ChannelKind.EMAIL, event.email, True, reason)
