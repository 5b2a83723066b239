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
from dispatcher.web.api.problems import FieldError, ProblemError, field_errors
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
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = field_errors(exc.errors())
        detail = "; ".join(f"{e.field}: {e.message}" for e in errors[:5])
        raise ProblemError(422, "invalid-input", f"the payload is invalid: {detail}", errors=errors) from None


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


@router.post("/alertmanager")
async def alertmanager_webhook(request: Request) -> JSONResponse:
    """Prometheus Alertmanager's webhook (``webhook_configs``, payload version 4)."""
    payload = alertmanager.AlertmanagerPayload
    return await _handle(request, "alertmanager", _bearer_only(request), payload, alertmanager.to_group)


@router.post("/grafana")
async def grafana_webhook(request: Request) -> JSONResponse:
    """Grafana unified alerting's webhook contact point."""
    return await _handle(request, "grafana", _bearer_only(request), grafana.GrafanaPayload, grafana.to_group)


@router.post("/generic")
async def generic_webhook(request: Request) -> JSONResponse:
    """A documented JSON body (see ``dispatcher.ingest.generic``), HMAC-signed or with a bearer token."""

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
