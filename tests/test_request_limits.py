"""Crafted requests get a clear 4xx, never a 500: JSON nested too deep, bodies too large (refused before
authentication), NUL and other control characters (422 naming the field, on SQLite and PostgreSQL)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from dispatcher.access.tokens import Scope, create_token
from dispatcher.engine.runtime import Runtime
from dispatcher.store.schema import incidents, subscribers
from dispatcher.web.app import create_app
from dispatcher.web.request_guard import DepthScanner

DEEP = "[" * 100000 + "]" * 100000  # the issue's reproduction
INGEST_TOKEN = "ingest-secret-token"


@pytest.fixture
def limited(make_runtime: Callable[..., Runtime]) -> Runtime:
    return make_runtime(ingest_token=INGEST_TOKEN, limits={"max_body_bytes": 4096, "max_json_depth": 16})


@pytest.fixture
def http(limited: Runtime) -> Iterator[TestClient]:
    with TestClient(create_app(lambda: limited), raise_server_exceptions=False) as client:
        yield client


def bearer(rt: Runtime) -> dict[str, str]:
    return {"Authorization": f"Bearer {create_token(rt, 'ops', (Scope.ADMIN,))[1]}"}


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        ("/ingest/alertmanager", {"Authorization": f"Bearer {INGEST_TOKEN}"}),
        ("/ingest/generic", {"Authorization": f"Bearer {INGEST_TOKEN}", "Content-Type": "text/plain"}),
        ("/ingest/grafana", {"Authorization": f"Bearer {INGEST_TOKEN}"}),
        ("/subscribe", {"Content-Type": "application/json"}),
        ("/incidents", {}),
    ],
)
def test_deeply_nested_json_is_refused_with_400_not_500(
    http: TestClient, path: str, headers: dict[str, str]
) -> None:
    # The limit is the configured depth; the issue's 100,000 levels would also be over the byte limit,
    # so the depth is shown with a body small enough to pass that.
    deep = "[" * 20 + "]" * 20
    response = http.post(path, content=deep, headers={"Content-Type": "application/json", **headers})
    assert response.status_code == 400, response.text
    problem = response.json()
    assert problem["type"] == "urn:tocsin:problem:too-deep"
    assert "nested deeper than 16 levels (limits.max_json_depth)" in problem["detail"]


def test_the_issue_s_hundred_thousand_levels_get_a_4xx_on_every_json_route(rt: Runtime) -> None:
    """Default limits: ``"[" * 100000 + "]" * 100000`` answered 500 on /ingest/* and /subscribe."""
    with TestClient(create_app(lambda: rt), raise_server_exceptions=False) as client:
        token = bearer(rt)
        for path in ("/subscribe", "/ingest/alertmanager", "/ingest/generic", "/incidents"):
            response = client.post(path, content=DEEP, headers={"Content-Type": "application/json", **token})
            assert response.status_code == 400, (path, response.status_code, response.text[:200])
            assert "nested deeper than 32 levels" in response.json()["detail"]


def test_nesting_inside_strings_does_not_count() -> None:
    scanner = DepthScanner(3)
    text = json.dumps({"a": ["[[[[[[[[", {"b": '{{{{{\\"' + "}}"}]}).encode()
    assert all(scanner.feed(text[i : i + 3]) for i in range(0, len(text), 3)), "split across chunks too"
    assert scanner.depth == 0
    assert not DepthScanner(3).feed(b'{"a": [[[1]]]}')


def test_a_declared_oversized_body_is_refused_before_authentication(http: TestClient) -> None:
    # No token at all: the size decides first (413), nothing is read or authenticated.
    response = http.post("/incidents", content=b"x" * 5000, headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    assert response.json()["detail"] == "the request body is larger than 4096 bytes (limits.max_body_bytes)"
    assert response.headers["connection"] == "close"


def test_a_streamed_body_is_cut_off_at_the_limit(http: TestClient, limited: Runtime) -> None:
    sent: list[int] = []

    def chunks() -> Iterator[bytes]:
        for _ in range(100):  # 100 KiB offered, without a Content-Length
            sent.append(1)
            yield b"y" * 1024

    response = http.post("/subscribe", content=chunks(), headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    with limited.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(subscribers)).scalar_one() == 0


def test_imports_have_their_own_larger_limit(make_runtime: Callable[..., Runtime]) -> None:
    rt = make_runtime(limits={"max_body_bytes": 2048, "max_import_bytes": 8192})
    with TestClient(create_app(lambda: rt), raise_server_exceptions=False) as client:
        csv = "email\n" + "".join(f"p{i}@example.com\n" for i in range(150))  # ~2.6 KB
        ok = client.post(
            "/subscribers/import", content=csv, headers={"Content-Type": "text/csv", **bearer(rt)}
        )
        assert ok.status_code == 201, ok.text
        big = client.post("/subscribers/import", content="x" * 9000, headers={"Content-Type": "text/csv"})
        assert big.status_code == 413 and "limits.max_import_bytes" in big.json()["detail"]


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/incidents", {"title": "Checkout\u0000 down", "severity": "major"}, "title"),
        ("/incidents", {"title": "Checkout down", "components": ["api", "ch\u0007eckout"]}, "components.1"),
        ("/subscribers", {"email": "ann@example.com", "name": "Ann\u0000"}, "name"),
        ("/subscribe", {"email": "ann\u0000@example.com"}, "email"),
    ],
)
def test_control_characters_are_refused_naming_the_field(
    rt: Runtime, path: str, body: dict[str, Any], field: str
) -> None:
    with TestClient(create_app(lambda: rt), raise_server_exceptions=False) as client:
        response = client.post(path, json=body, headers=bearer(rt))
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["errors"][0]["field"] == field
    assert "control character U+00" in problem["errors"][0]["message"]
    with rt.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(incidents)).scalar_one() == 0
        assert conn.execute(select(func.count()).select_from(subscribers)).scalar_one() == 0


def test_a_nul_in_an_update_s_message_is_refused_on_publish_and_preview(rt: Runtime) -> None:
    with TestClient(create_app(lambda: rt), raise_server_exceptions=False) as client:
        auth = bearer(rt)
        opened = client.post("/incidents", json={"title": "Checkout down"}, headers=auth)
        assert opened.status_code == 201, opened.text
        ident = opened.json()["incident"]["id"]
        draft = {"status": "investigating", "message": "We are sorry.\u0000", "next_update_in": "30m"}
        for path in (f"/incidents/{ident}/updates", f"/incidents/{ident}/preview"):
            response = client.post(path, json=draft, headers=auth)
            assert response.status_code == 422, response.text
            assert response.json()["errors"] == [
                {"field": "message", "message": "contains the control character U+0000 at position 14"}
            ]


def test_control_characters_in_a_query_or_a_form_are_refused_too(rt: Runtime) -> None:
    with TestClient(create_app(lambda: rt), raise_server_exceptions=False) as client:
        query = client.get("/incidents?limit=5%00", headers=bearer(rt))
        assert query.status_code == 422 and query.json()["errors"][0]["field"] == "limit"
        form = client.post("/subscribe", data={"email": "bob\x00@example.com"})
        assert form.status_code == 422
        assert form.headers["content-type"].startswith("text/html"), "the signup form gets a page"
        assert "email: contains the control character U+0000" in form.text


def test_a_nul_in_a_monitoring_alert_is_refused_naming_the_field(http: TestClient, limited: Runtime) -> None:
    alert = {"key": "db-down", "status": "firing", "title": "Primary database\u0000 unreachable"}
    response = http.post("/ingest/generic", json=alert, headers={"Authorization": f"Bearer {INGEST_TOKEN}"})
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "title"
    with limited.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(incidents)).scalar_one() == 0
