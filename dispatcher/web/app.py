"""The FastAPI application ``tocsin api`` serves."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

from fastapi import FastAPI

from dispatcher.engine.runtime import Runtime, build_runtime
from dispatcher.web import api, log_redaction
from dispatcher.web.consent_routes import router as consent_router
from dispatcher.web.console import router as console_router
from dispatcher.web.ingest_routes import declare_ingest_bodies
from dispatcher.web.ingest_routes import router as ingest_router
from dispatcher.web.metrics_routes import router as metrics_router
from dispatcher.web.provider_routes import router as provider_router
from dispatcher.web.request_guard import RequestGuard
from dispatcher.web.self_service import router as self_service_router
from dispatcher.web.self_service.bodies import declare_self_service_bodies


def create_app(runtime: Callable[[], Runtime] | None = None) -> FastAPI:
    """``runtime`` builds the Runtime on first use (tests pass their own)."""
    app = FastAPI(title="Tocsin", description="Outage notification dispatcher")
    app.state.runtime = runtime or cache(build_runtime)
    app.add_middleware(RequestGuard)  # body size, JSON depth, control characters: before anything else
    log_redaction.install()  # tokens in a query string (or anywhere) never reach the access log
    app.include_router(provider_router)
    app.include_router(self_service_router)
    app.include_router(consent_router)
    app.include_router(ingest_router)
    app.include_router(metrics_router)
    app.include_router(console_router)
    api.install(app, more=[declare_ingest_bodies, declare_self_service_bodies])

    @app.get("/healthz", tags=["health"])
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app
