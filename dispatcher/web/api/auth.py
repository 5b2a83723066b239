"""Bearer-token authentication and scope checks for the API routes.

No token, an unknown one or a revoked one: 401 with ``WWW-Authenticate: Bearer``. A valid token without
the scope an operation needs: 403. ``admin`` holds every scope.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.dependencies.models import Dependant
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from dispatcher.access.tokens import ApiToken, Scope, authenticate
from dispatcher.engine.runtime import Runtime
from dispatcher.web.api.problems import FieldError, ProblemError

bearer = HTTPBearer(
    auto_error=False,
    scheme_name="ApiToken",
    description="A token from `tocsin tokens create NAME --scope …`, sent as `Authorization: Bearer tcn_…`.",
)

CHALLENGE = {"WWW-Authenticate": 'Bearer realm="tocsin"'}


def _query_names(dependant: Dependant) -> set[str]:
    names = {p.alias for p in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names


def reject_unknown_query(request: Request) -> None:
    """A query parameter the operation does not take is an error naming it, not silently ignored."""
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    if dependant is None:
        return
    known = _query_names(dependant)
    unknown = sorted({k for k in request.query_params if k not in known})
    if unknown:
        raise ProblemError(
            422,
            "invalid-input",
            f"unknown query parameter(s): {', '.join(unknown)}",
            title="Invalid input",
            errors=[FieldError(field=k, message="unknown query parameter") for k in unknown],
        )


def runtime_of(request: Request) -> Runtime:
    rt: Runtime = request.app.state.runtime()
    return rt


def _unauthenticated(detail: str) -> ProblemError:
    return ProblemError(401, "unauthenticated", detail, headers=CHALLENGE)


def require(scope: Scope) -> Callable[..., ApiToken]:
    """A dependency: the caller's token, which must hold ``scope`` (or ``admin``)."""

    def dependency(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> ApiToken:
        if credentials is None:
            raise _unauthenticated("send an API token: Authorization: Bearer <token> (tocsin tokens create)")
        token = authenticate(runtime_of(request), credentials.credentials)
        if token is None:
            raise _unauthenticated("the API token is not known")
        if token.revoked:
            raise _unauthenticated(f"the API token {token.prefix}… was revoked")
        if not token.allows(scope):
            held = ", ".join(s.value for s in token.scopes)
            raise ProblemError(
                403, "forbidden", f"this operation needs the {scope.value!r} scope; the token has {held}"
            )
        return token

    dependency.__name__ = f"require_{scope.value}"
    return dependency


ReadToken = Annotated[ApiToken, Depends(require(Scope.READ))]
PublishToken = Annotated[ApiToken, Depends(require(Scope.PUBLISH))]
SubscribersToken = Annotated[ApiToken, Depends(require(Scope.SUBSCRIBERS))]
RuntimeDep = Annotated[Runtime, Depends(runtime_of)]
