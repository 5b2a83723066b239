"""The HTTP API: incidents, updates, subscribers, deliveries and policy, behind scoped bearer tokens.

``install(app)`` adds the routers, answers every error as ``application/problem+json`` and documents
the problems and the bearer scheme in ``/openapi.json``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from fastapi import Depends, FastAPI
from fastapi.openapi.utils import get_openapi

from dispatcher.web.api import (
    components,
    crisis,
    deliveries,
    drafts,
    health,
    incidents,
    maintenance,
    policy,
    subscribers,
    templates,
    updates,
)
from dispatcher.web.api.auth import reject_unknown_query
from dispatcher.web.api.openapi_text import declare_plain_text
from dispatcher.web.api.problems import install_problem_handlers, use_problem_media_type

ROUTERS = (
    incidents.router,
    updates.router,
    maintenance.router,
    subscribers.router,
    deliveries.router,
    policy.router,
    templates.router,
    drafts.router,
    components.router,
    crisis.router,
)


def install(app: FastAPI, *, more: Sequence[Callable[[dict[str, Any]], dict[str, Any]]] = ()) -> None:
    """The API's routes and problem handlers, and ``/openapi.json``; ``more`` adds what routes outside
    this package describe themselves (the ingest payloads, read as raw signed bytes)."""
    app.include_router(health.router)
    for router in ROUTERS:
        app.include_router(router, dependencies=[Depends(reject_unknown_query)])
    install_problem_handlers(app)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            for add in more:
                schema = add(schema)
            app.openapi_schema = declare_plain_text(use_problem_media_type(schema))
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
