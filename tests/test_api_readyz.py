"""``/healthz`` says the process is alive without touching anything; ``/readyz`` says whether it can
serve: the database answers and, with REDIS_URL, the broker too. A 503 problem names what is down."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine

from dispatcher.domain.errors import NotInitialised
from dispatcher.engine.runtime import Runtime
from dispatcher.web.app import create_app

CLOSED_PORT = 1  # nothing listens on 127.0.0.1:1


def readyz(factory: Callable[[], Runtime]) -> tuple[int, str, dict[str, object]]:
    with TestClient(create_app(factory)) as http:
        assert http.get("/healthz").status_code == 200
        response = http.get("/readyz")
    return response.status_code, response.headers["content-type"], response.json()


def test_ready_when_the_database_answers(rt: Runtime) -> None:
    ready = {"status": "ok", "checks": {"database": "ok"}, "channels": {}}  # no probe round yet
    assert readyz(lambda: rt) == (200, "application/json", ready)


def test_not_ready_when_the_database_is_unreachable(rt: Runtime) -> None:
    unreachable = create_engine(f"postgresql+psycopg://tocsin@127.0.0.1:{CLOSED_PORT}/tocsin")
    down = Runtime(settings=rt.settings, engine=unreachable, renderer=rt.renderer)

    status, kind, problem = readyz(lambda: down)

    assert (status, kind) == (503, "application/problem+json")
    assert problem["type"] == "urn:tocsin:problem:not-ready"
    assert str(problem["detail"]).startswith("not ready: database (")


def test_not_ready_when_the_database_has_no_schema() -> None:
    def factory() -> Runtime:
        raise NotInitialised("the database has no Tocsin schema yet: run `tocsin init` first")

    status, _, problem = readyz(factory)
    assert status == 503 and "tocsin init" in str(problem["detail"])


def test_not_ready_when_the_broker_is_unreachable(make_runtime: Callable[..., Runtime]) -> None:
    rt = make_runtime(redis_url=f"redis://127.0.0.1:{CLOSED_PORT}/0")
    status, _, problem = readyz(lambda: rt)
    assert status == 503
    assert "broker (" in str(problem["detail"]) and "database" not in str(problem["detail"])


@pytest.mark.redis
def test_ready_with_a_reachable_broker(make_runtime: Callable[..., Runtime], redis_url: str) -> None:
    rt = make_runtime(redis_url=redis_url)
    assert readyz(lambda: rt) == (
        200,
        "application/json",
        {"status": "ok", "checks": {"database": "ok", "broker": "ok"}, "channels": {}},
    )
