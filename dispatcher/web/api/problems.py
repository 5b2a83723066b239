"""Every API error as RFC 9457 ``application/problem+json``.

A problem has ``type`` (a URN naming the kind of problem), ``title`` (the same for every problem of a
type), ``status``, ``detail`` (this occurrence, one line a person can act on) and, for invalid input,
``errors: [{field, message}]`` naming each field that is wrong.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, ValidationError
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from dispatcher.domain.errors import ConfigurationError, InvalidInput, NotFound, NotInitialised, TocsinError

PROBLEM_JSON = "application/problem+json"
TYPE_PREFIX = "urn:tocsin:problem:"
log = logging.getLogger(__name__)


class FieldError(BaseModel):
    field: str = Field(description="Where the bad value is: a body field (dotted), a query or header name.")
    message: str


class Problem(BaseModel):
    """RFC 9457 problem details."""

    type: str = Field(description="A URN naming the kind of problem, e.g. urn:tocsin:problem:not-found.")
    title: str
    status: int
    detail: str
    errors: list[FieldError] | None = Field(
        default=None, description="For invalid input: each field that is wrong and why."
    )


class ProblemError(Exception):
    """Raise anywhere in a route to answer with a problem."""

    def __init__(
        self,
        status: int,
        kind: str,
        detail: str,
        *,
        title: str | None = None,
        errors: Sequence[FieldError] = (),
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.kind = kind
        self.title = title or HTTPStatus(status).phrase
        self.detail = detail
        self.errors = list(errors)
        self.headers = headers or {}


def problem_response(
    status: int,
    kind: str,
    detail: str,
    *,
    title: str | None = None,
    errors: Sequence[FieldError] = (),
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = Problem(
        type=TYPE_PREFIX + kind,
        title=title or HTTPStatus(status).phrase,
        status=status,
        detail=detail,
        errors=list(errors) or None,
    )
    return JSONResponse(
        body.model_dump(exclude_none=True), status_code=status, media_type=PROBLEM_JSON, headers=headers
    )


def _field(loc: Sequence[Any]) -> str:
    """``("body", "channels", 0)`` → ``channels.0``; ``("query", "limit")`` → ``limit``."""
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("body", "query", "path", "header", "cookie"):
        parts = parts[1:]
    return ".".join(parts) or "body"


def field_errors(errors: Sequence[Any]) -> list[FieldError]:
    found = []
    for err in errors:
        message = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
        found.append(FieldError(field=_field(err.get("loc", ())), message=message))
    return found


def invalid_input(detail: str, errors: Sequence[FieldError], status: int = 422) -> JSONResponse:
    """422 when the request breaks what ``/openapi.json`` says of it; 409 (``status``) when it is as
    described but what it asks is refused by the state of things: the incident's lifecycle, the policy in
    force (guardrails), the clock (a time already past), another field of the same request."""
    return problem_response(status, "invalid-input", detail, title="Invalid input", errors=errors)


def _split_message(message: str) -> list[FieldError]:
    """``"channels: sms not enabled"`` names its field before the colon (the core's convention)."""
    head, sep, tail = message.partition(": ")
    if sep and head and " " not in head.strip():
        return [FieldError(field=head.strip(), message=tail)]
    return []


def tocsin_error_response(exc: TocsinError) -> JSONResponse:
    """NotFound → 404; InvalidInput → 409, naming its field when it does (``"field: why"``): the request
    matched its schema (else it would not have reached the core), and what refuses it is a rule no schema
    states (guardrails, the lifecycle, a time already past, an address taken…);
    NotInitialised and ConfigurationError → 503; an error with ``http_status`` → that status."""
    message = str(exc)
    findings = getattr(exc, "findings", None)
    if findings is not None:  # guardrails blocked the text
        errors = [
            FieldError(field=getattr(f, "field", "message"), message=f"{f.rule}: {f.message}")
            for f in findings
            if f.level == "error"
        ]
        return invalid_input(message, errors, status=409)
    status = getattr(exc, "http_status", None)
    if isinstance(status, int):
        kind = "conflict" if status == 409 else HTTPStatus(status).phrase.lower().replace(" ", "-")
        return problem_response(status, kind, message)
    if isinstance(exc, NotFound):
        return problem_response(404, "not-found", message)
    if isinstance(exc, InvalidInput):
        named = _split_message(message)
        if named:
            return invalid_input(message, named, status=409)
        return problem_response(409, "conflict", message)
    if isinstance(exc, NotInitialised):
        return problem_response(503, "not-initialised", message, title="Service not ready")
    if isinstance(exc, ConfigurationError):
        return problem_response(
            503, "configuration", f"the server's configuration is broken: {message}", title="Misconfigured"
        )
    # Any other expected error (e.g. nothing to retry) is a conflict with the current state.
    return problem_response(409, "conflict", message)


def allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at this path (Starlette names only the first route's)."""
    routes = request.app.router.routes
    allowed = []
    for method in ("DELETE", "GET", "PATCH", "POST", "PUT"):
        scope = {**request.scope, "method": method}
        if any(route.matches(scope)[0] is Match.FULL for route in routes):
            allowed.append(method)
    return allowed


def install_problem_handlers(app: FastAPI) -> None:
    """Answer every error in the app with a problem (provider callbacks included)."""

    async def on_problem(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ProblemError)
        return problem_response(
            exc.status, exc.kind, exc.detail, title=exc.title, errors=exc.errors, headers=exc.headers
        )

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        status = exc.status_code
        try:
            known = HTTPStatus(status)
            kind, fallback = known.phrase.lower().replace(" ", "-"), known.description
        except ValueError:
            kind, fallback = "http", "HTTP error"
        detail = exc.detail if isinstance(exc.detail, str) else fallback
        headers = dict(exc.headers or {})
        if status == 405:
            headers["Allow"] = ", ".join(allowed_methods(request))
        return problem_response(status, kind, detail, headers=headers)

    async def on_validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError | ValidationError)
        errors = field_errors(exc.errors())
        summary = "; ".join(f"{e.field}: {e.message}" for e in errors[:5])
        return invalid_input(f"the request is invalid: {summary}", errors)

    async def on_tocsin(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, TocsinError)
        return tocsin_error_response(exc)

    async def on_database(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, OperationalError)
        first = str(exc.orig).splitlines()[0] if exc.orig is not None else "unknown error"
        return problem_response(
            503, "database-unavailable", f"database unreachable or locked: {first}", title="Database down"
        )

    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
        return problem_response(500, "internal", "an unexpected error happened; it has been logged")

    app.add_exception_handler(ProblemError, on_problem)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(ValidationError, on_validation)
    app.add_exception_handler(TocsinError, on_tocsin)
    app.add_exception_handler(OperationalError, on_database)
    app.add_exception_handler(Exception, on_unexpected)


def problem_doc(description: str) -> dict[str, Any]:
    """A declared problem response; ``use_problem_media_type`` moves it under problem+json."""
    return {"description": description, "model": Problem}


AUTH_PROBLEMS: dict[int | str, dict[str, Any]] = {
    400: problem_doc("The body could not be parsed (e.g. not JSON)."),
    401: problem_doc("No token, or an unknown or revoked one."),
    403: problem_doc("The token lacks the scope this operation needs."),
    409: problem_doc(
        "Refused by a rule no schema states: the current state (already resolved, address taken), the "
        "policy (guardrails), the clock (a time already past); `errors` names the field when there is one."
    ),
    422: problem_doc("The request does not match this description: `errors` names each field."),
    503: problem_doc("The database is unreachable or the configuration is broken."),
}
"""Problems every authenticated operation may answer with (declared in the OpenAPI document)."""

NOT_FOUND: dict[int | str, dict[str, Any]] = {404: problem_doc("No such resource.")}
CONFLICT: dict[int | str, dict[str, Any]] = {
    409: problem_doc("The request conflicts with the current state.")
}


def use_problem_media_type(openapi: dict[str, Any]) -> dict[str, Any]:
    """FastAPI documents every response model as application/json: error responses are problem+json.
    Its own 422 (``HTTPValidationError``, added to every operation with parameters) is described as
    what the server really answers with: a problem."""
    problem_ref = {"$ref": "#/components/schemas/Problem"}
    for operations in openapi.get("paths", {}).values():
        for operation in operations.values():
            if not isinstance(operation, dict):
                continue
            for status, response in operation.get("responses", {}).items():
                content = response.get("content", {})
                if status[:1] in ("4", "5") and "application/json" in content:
                    content[PROBLEM_JSON] = content.pop("application/json")
                body = content.get(PROBLEM_JSON, {})
                if body.get("schema") == {"$ref": "#/components/schemas/HTTPValidationError"}:
                    body["schema"] = problem_ref
    schemas = openapi.get("components", {}).get("schemas", {})
    if "Problem" not in schemas:
        schemas["Problem"] = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(schemas["Problem"].pop("$defs", {}))
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    return openapi
