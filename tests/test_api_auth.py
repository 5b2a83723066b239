"""Every API route needs a bearer token with the right scope: none, unknown or revoked → 401,
wrong scope → 403, right scope (or admin) → 2xx. Tokens are made, listed and revoked with the CLI."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from sqlalchemy import select

from dispatcher.access.tokens import Scope, hash_token, revoke_token
from dispatcher.store.schema import api_tokens
from tests.api_client import Api, api_fixture  # noqa: F401
from tests.cli import tocsin
from tests.helpers import incident

PROBLEM = "application/problem+json"

# (method, path, body, scope it needs)
MATRIX = [
    ("GET", "/incidents", None, Scope.READ),
    ("GET", "/deliveries", None, Scope.READ),
    ("GET", "/policy", None, Scope.READ),
    ("POST", "/incidents", {"title": "Checkout down", "severity": "minor"}, Scope.PUBLISH),
    ("GET", "/subscribers", None, Scope.SUBSCRIBERS),
    ("POST", "/subscribers", {"email": "new@example.com"}, Scope.SUBSCRIBERS),
]


@pytest.mark.parametrize(("method", "path", "body", "scope"), MATRIX, ids=[f"{m} {p}" for m, p, *_ in MATRIX])
def test_the_auth_matrix(api: Api, method: str, path: str, body: object, scope: Scope) -> None:
    def call(headers: dict[str, str]) -> tuple[int, str, dict[str, object]]:
        response = api.http.request(method, path, json=body, headers=headers)
        return response.status_code, response.headers["content-type"], response.json()

    status, kind, problem = call({})
    assert (status, kind) == (401, PROBLEM)
    assert problem["type"] == "urn:tocsin:problem:unauthenticated" and problem["status"] == 401

    status, _, problem = call({"Authorization": "Bearer tcn_not-a-token"})
    assert status == 401 and "not known" in str(problem["detail"])

    status, _, _ = call({"Authorization": "Basic dXNlcjpwYXNz"})
    assert status == 401

    other = next(s for s in (Scope.READ, Scope.SUBSCRIBERS) if s is not scope)
    status, kind, problem = call(api.auth(other))
    assert (status, kind) == (403, PROBLEM)
    assert scope.value in str(problem["detail"])

    revoked = api.token(scope)
    token_id = _token_id(api, revoked)
    revoke_token(api.rt, token_id)
    status, _, problem = call({"Authorization": f"Bearer {revoked}"})
    assert status == 401 and "revoked" in str(problem["detail"])

    status, kind, _ = call(api.auth(scope))
    assert status in (200, 201) and kind == "application/json"
    if method == "POST":  # the admin token may do it too (a second, different resource)
        again = dict(body or {}) | ({"email": "other@example.com"} if "email" in (body or {}) else {})
        assert api.http.request(method, path, json=again, headers=api.auth(Scope.ADMIN)).status_code in (
            200,
            201,
        )
    else:
        assert api.http.request(method, path, headers=api.auth(Scope.ADMIN)).status_code == 200


def _token_id(api: Api, secret: str) -> int:
    with api.rt.engine.connect() as conn:
        return int(
            conn.execute(
                select(api_tokens.c.id).where(api_tokens.c.token_hash == hash_token(secret))
            ).scalar_one()
        )


def test_tokens_are_stored_hashed_and_record_their_last_use(api: Api) -> None:
    secret = api.token(Scope.READ)
    with api.rt.engine.connect() as conn:
        row = conn.execute(select(api_tokens)).mappings().one()
    assert row["token_hash"] == hash_token(secret) and secret not in str(dict(row))
    assert row["last_used_at"] is None
    incident(api.rt)
    assert api.http.get("/incidents", headers={"Authorization": f"Bearer {secret}"}).status_code == 200
    with api.rt.engine.connect() as conn:
        assert conn.execute(select(api_tokens.c.last_used_at)).scalar_one() is not None


def test_health_and_provider_routes_need_no_token(api: Api) -> None:
    assert api.http.get("/healthz").json() == {"status": "ok"}
    assert api.http.get("/readyz").status_code == 200
    assert api.http.get("/openapi.json").status_code == 200
    # provider callbacks keep their own (signature) authentication: not configured here → 404, not 401
    assert api.http.post("/providers/sendgrid/events", content=b"[]").status_code == 404


def test_tokens_cli_creates_lists_and_revokes(tmp_path: Path) -> None:
    assert tocsin("init", cwd=tmp_path).code == 0
    made = tocsin("tokens", "create", "ci-bot", "--scope", "publish", "--scope", "read", cwd=tmp_path)
    assert made.code == 0, made.err
    secret = made.out.strip()
    assert secret.startswith("tcn_") and len(secret) > 30
    assert "not shown again" in made.err

    listed = tocsin("tokens", "list", cwd=tmp_path)
    assert "ci-bot" in listed.out and "publish, read" in listed.out
    assert secret not in listed.out and secret[:12] in listed.out

    bad = tocsin("tokens", "create", "x", "--scope", "root", cwd=tmp_path)
    assert bad.code != 0 and "Traceback" not in bad.err

    before = next(line for line in listed.out.splitlines() if "ci-bot" in line)
    assert len(re.findall(r"\d{4}-\d{2}-\d{2}", before)) == 1  # created; never used, not revoked
    revoked = tocsin("tokens", "revoke", "1", cwd=tmp_path)
    assert revoked.code == 0 and "revoked token 1 (ci-bot)" in revoked.out
    after = next(line for line in tocsin("tokens", "list", cwd=tmp_path).out.splitlines() if "ci-bot" in line)
    assert len(re.findall(r"\d{4}-\d{2}-\d{2}", after)) == 2  # created and revoked
    missing = tocsin("tokens", "revoke", "99", cwd=tmp_path)
    assert missing.code == 1 and "no API token 99" in missing.err
