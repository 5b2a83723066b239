"""``/ingest/*``: alerts from monitoring (Alertmanager, Grafana, a generic signed JSON body).

Authentication: ``Authorization: Bearer <token>`` where the token is the ``ingest_token`` setting or an
API token holding the ``publish`` scope (``tocsin tokens create alertmanager --scope publish``). The
generic endpoint also takes an HMAC signature with ``ingest_hmac_secret`` instead. A missing or wrong
credential gets 401 and changes nothing. A bad body gets 400 (not JSON) or 422, as
``application/problem+json`` with ``errors: [{field, message}]`` naming each field that is wrong.

The answer says what happened: ``{"incident_id": 7, "action": "opened", "repeat": false, "updates":
[12, 13], "problems": []}``. A repeat delivery answers 200 with the same incident and sends nothing.

Published notices go where the API sends all its work (``dispatcher.web.api.work``): the broker's
workers when ``REDIS_URL`` is set, otherwise this process's embedded runner.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError
from starlette.concurrency import run_in_threadpool

from dispatcher.access.tokens import Scope, authenticate
from dispatcher.domain.policy import MonitoringPolicy
from dispatcher.engine.runtime import Runtime
from dispatcher.ingest import alertmanager, generic, grafana
from dispatcher.ingest.alerts import AlertGroup, Source
from dispatcher.ingest.common import IngestResult, ingest
from dispatcher.reporting import metrics
from dispatcher.web.api.openapi_text import PLAIN_TEXT
from dispatcher.web.api.problems import FieldError, ProblemError, field_errors, problem_doc
from dispatcher.web.api.work import task_queue

router = APIRouter(prefix="/ingest", tags=["monitoring ingest"])

Model = TypeVar("Model", bound=BaseModel)
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="tocsin-ingest"'}
INGEST_SCOPE = Scope.PUBLISH


def _runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime()
    return runtime


def _unauthorized(detail: str) -> ProblemError:
    return ProblemError(401, "unauthenticated", detail, headers=CHALLENGE)


def _bearer(request: Request) -> str | None:
    scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
    return credentials.strip() or None if scheme.lower() == "bearer" else None


def _check_bearer(request: Request, rt: Runtime) -> None:
    """The ingest token (compared in constant time), or an API token with the publish scope."""
    given = _bearer(request)
    if given is None:
        raise _unauthorized("send Authorization: Bearer <token> (the ingest_token, or an API token)")
    configured = rt.settings.ingest_token
    if configured is not None and hmac.compare_digest(given.encode(), configured.get_secret_value().encode()):
        return
    token = authenticate(rt, given)
    if token is None or token.revoked:
        raise _unauthorized("the bearer token is neither the ingest_token nor a valid API token")
    if not token.allows(INGEST_SCOPE):
        raise ProblemError(403, "forbidden", f"monitoring ingest needs the {INGEST_SCOPE.value!r} scope")


def _parse(body: bytes, model: type[Model]) -> Model:
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise ProblemError(
            400,
            "bad-request",
            f"body: not valid JSON ({exc})",
            errors=[FieldError(field="body", message="not valid JSON")],
        ) from None
    del data  # parsed once more below, strictly: JSON's types as the description states them
    try:
        # Strict: a string stays a string and a time is an ISO 8601 text, never a number (the OpenAPI
        # description says so, and a payload the description calls invalid is refused, not coerced).
        return model.model_validate_json(body, strict=True)
    except ValidationError as exc:
        errors = field_errors(exc.errors())
        detail = "; ".join(f"{e.field}: {e.message}" for e in errors[:5])
        raise ProblemError(422, "invalid-input", f"the payload is invalid: {detail}", errors=errors) from None


class IngestAnswer(BaseModel):
    """What one delivery of an alert did."""

    incident_id: int | None
    action: str
    """opened, updated, resolved, monitoring, repeat, ignored…"""
    repeat: bool
    updates: list[int]
    problems: list[str]


INGEST_MODELS: dict[str, type[BaseModel]] = {
    "AlertmanagerPayload": alertmanager.AlertmanagerPayload,
    "GrafanaPayload": grafana.GrafanaPayload,
    "GenericAlert": generic.GenericAlert,
}
"""The bodies the routes read themselves (the raw bytes are signed), declared in ``/openapi.json``."""


def _described(body: str) -> dict[str, Any]:
    """The operation's request body: a component added by ``declare_ingest_bodies``."""
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{body}"}}},
        }
    }


INGEST_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "What the alert did (a repeat delivery changes and sends nothing).",
        "model": IngestAnswer,
    },
    400: problem_doc("The body is not JSON."),
    401: problem_doc("No credential, or a wrong one (the ingest token, an API token, or the signature)."),
    403: problem_doc("An API token without the publish scope."),
    422: problem_doc("The payload does not match its description: `errors` names each field."),
}


ANY_TEXT_JSON = "AnyPlainJson"
"""Any JSON value whose texts and keys carry no control character (what the request guard lets
through): the fields a sender adds that Tocsin does not read."""


def declare_ingest_bodies(openapi: dict[str, Any]) -> dict[str, Any]:
    """Add the ingest payloads (and the models they use) to the document's components. The senders'
    own fields that Tocsin ignores are described as what they may be: any JSON without control
    characters (``ANY_TEXT_JSON``)."""
    schemas = openapi.setdefault("components", {}).setdefault("schemas", {})
    anything = {"$ref": f"#/components/schemas/{ANY_TEXT_JSON}"}
    schemas[ANY_TEXT_JSON] = {
        "anyOf": [
            {"type": "string", "pattern": PLAIN_TEXT},
            {"type": ["number", "boolean", "null"]},
            {"type": "array", "items": anything},
            {"type": "object", "propertyNames": {"pattern": PLAIN_TEXT}, "additionalProperties": anything},
        ]
    }
    for name, model in INGEST_MODELS.items():
        found = model.model_json_schema(by_alias=True, ref_template="#/components/schemas/{model}")
        for inner, definition in found.pop("$defs", {}).items():
            schemas.setdefault(inner, _open_to(definition, anything))
        schemas[name] = _open_to(found, anything)
    return openapi


def _open_to(schema: dict[str, Any], anything: dict[str, Any]) -> dict[str, Any]:
    """An object schema that ignores unknown fields says what they may hold."""
    if schema.get("type") == "object" and "additionalProperties" not in schema:
        schema["additionalProperties"] = anything
        schema["propertyNames"] = {"pattern": PLAIN_TEXT}
    return schema


def _answer(result: IngestResult) -> dict[str, Any]:
    return {
        "incident_id": result.incident_id,
        "action": result.action,
        "repeat": result.repeat,
        "updates": result.updates,
        "problems": result.problems,
    }


async def _handle(
    request: Request,
    source: Source,
    authenticate_request: Callable[[Runtime, bytes], None],
    model: type[Model],
    to_group: Callable[[Model, MonitoringPolicy], AlertGroup],
) -> JSONResponse:
    """Authenticate, parse the body as ``model``, normalise it and ingest it; count the outcome."""
    rt = _runtime(request)
    body = await request.body()
    try:
        await run_in_threadpool(authenticate_request, rt, body)
        group = to_group(_parse(body, model), rt.policy.policy.monitoring)
    except ProblemError as problem:
        metrics.INGEST_REQUESTS.labels(source, f"http_{problem.status}").inc()
        raise
    result = await run_in_threadpool(ingest, rt, group, task_queue(request))
    metrics.INGEST_REQUESTS.labels(source, result.action).inc()
    return JSONResponse(_answer(result))


def _bearer_only(request: Request) -> Callable[[Runtime, bytes], None]:
    return lambda rt, _: _check_bearer(request, rt)


@router.post("/alertmanager", openapi_extra=_described("AlertmanagerPayload"), responses=INGEST_RESPONSES)
async def alertmanager_webhook(request: Request) -> JSONResponse:
    """Prometheus Alertmanager's webhook (``webhook_configs``, payload version 4)."""
    payload = alertmanager.AlertmanagerPayload
    return await _handle(request, "alertmanager", _bearer_only(request), payload, alertmanager.to_group)


@router.post("/grafana", openapi_extra=_described("GrafanaPayload"), responses=INGEST_RESPONSES)
async def grafana_webhook(request: Request) -> JSONResponse:
    """Grafana unified alerting's webhook contact point."""
    return await _handle(request, "grafana", _bearer_only(request), grafana.GrafanaPayload, grafana.to_group)


@router.post("/generic", openapi_extra=_described("GenericAlert"), responses=INGEST_RESPONSES)
async def generic_webhook(request: Request) -> JSONResponse:
    """A documented JSON body (see ``dispatcher.ingest.generic``), with a bearer token or signed:
    ``X-Tocsin-Timestamp`` (Unix seconds, within five minutes of now) and ``X-Tocsin-Signature:
    sha256=<hex HMAC-SHA256 of "<timestamp>.<body>" with ingest_hmac_secret>``."""

    def check(rt: Runtime, body: bytes) -> None:
        signature = request.headers.get(generic.SIGNATURE_HEADER)
        if signature is None:
            _check_bearer(request, rt)
            return
        secret = rt.settings.ingest_hmac_secret
        if secret is None:
            raise _unauthorized(f"{generic.SIGNATURE_HEADER} given but no ingest_hmac_secret is configured")
        wrong = generic.check_signature(
            secret.get_secret_value(),
            body,
            signature,
            request.headers.get(generic.TIMESTAMP_HEADER, ""),
            rt.clock.now(),
        )
        if wrong is not None:
            raise _unauthorized(wrong)

    return await _handle(request, "generic", check, generic.GenericAlert, generic.to_group)
