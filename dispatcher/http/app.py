"""The FastAPI application ``tocsin api`` serves."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

from fastapi import FastAPI

from dispatcher.http.provider_routes import router as provider_router
from dispatcher.runtime import Runtime, build_runtime


def create_app(runtime: Callable[[], Runtime] | None = None) -> FastAPI:
    """``runtime`` builds the Runtime on first use (tests pass their own)."""
    app = FastAPI(title="Tocsin", description="Outage notification dispatcher")
    app.state.runtime = runtime or cache(build_runtime)
    app.include_router(provider_router)

    @app.get("/healthz", tags=["health"])
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app
