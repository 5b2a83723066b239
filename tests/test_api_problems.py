"""Every API error is RFC 9457 problem+json: type, title, status, detail, and for bad input the fields."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from fastapi.testclient import TestClient

from dispatcher.access.tokens import Scope, create_token
from dispatcher.engine.runtime import Runtime
from dispatcher.web.app import create_app
from tests.api_client import Api, api_fixture  # noqa: F401
from tests.helpers import incident

PROBLEM = "application/problem+json"
GOOD_TEXT = "Since 09:12 UTC a third of checkouts fail. We are sorry. We are rolling back the deploy."


def assert_problem(response: object, status: int) -> dict[str, object]:
    assert response.status_code == status, response.text  # type: ignore[attr-defined]
    assert response.headers["content-type"] == PROBLEM  # type: ignore[attr-defined]
    body: dict[str, object] = response.json()  # type: ignore[attr-defined]
    assert body["status"] == status
    assert str(body["type"]).startswith("urn:tocsin:problem:")
    assert body["title"] and body["detail"]
    return body


def test_a_bad_body_names_every_bad_field(api: Api) -> None:
    response = api.http.post(
        "/incidents", json={"title": "x", "severity": "apocalyptic", "colour": "red"}, headers=api.auth()
    )
    problem = assert_problem(response, 422)
    fields = {e["field"] for e in problem["errors"]}  # type: ignore[attr-defined]
    assert fields == {"title", "severity", "colour"}
    assert "severity" in str(problem["detail"])


def test_bad_query_and_path_values_name_their_parameter(api: Api) -> None:
    problem = assert_problem(api.http.get("/incidents?limit=0", headers=api.auth()), 422)
    assert [e["field"] for e in problem["errors"]] == ["limit"]  # type: ignore[attr-defined]
    problem = assert_problem(api.http.get("/incidents?cursor=bogus", headers=api.auth()), 422)
    assert [e["field"] for e in problem["errors"]] == ["cursor"]  # type: ignore[attr-defined]
    problem = assert_problem(api.http.get("/updates/abc", headers=api.auth()), 422)
    assert [e["field"] for e in problem["errors"]] == ["update_id"]  # type: ignore[attr-defined]


def test_not_found_is_a_404_problem(api: Api) -> None:
    problem = assert_problem(api.http.get("/incidents/42", headers=api.auth()), 404)
    assert problem["type"] == "urn:tocsin:problem:not-found" and problem["detail"] == "no incident 42"
    assert_problem(api.http.get("/no/such/route", headers=api.auth()), 404)


def test_a_core_refusal_names_its_field_and_is_a_409_like_a_state_clash(api: Api) -> None:
    """A request that matches its description but is refused by what no schema states (here: a channel
    the configuration does not enable) is a 409; its ``errors`` still name the field."""
    inc = incident(api.rt)
    publish = api.http.post(
        f"/incidents/{inc.id}/updates",
        json={
            "status": "investigating",
            "message": GOOD_TEXT,
            "next_update_in": "30m",
            "channels": ["chat"],
        },
        headers=api.auth(Scope.PUBLISH),
    )
    body = assert_problem(publish, 409)
    assert body["errors"] == [{"field": "channels", "message": "chat not enabled in the configuration"}]

    again = api.http.post(f"/incidents/{inc.id}/status", json={"status": "investigating"}, headers=api.auth())
    clash = assert_problem(again, 409)
    assert "already investigating" in str(clash["detail"])


def test_guardrail_errors_come_back_as_field_errors_on_message(api: Api) -> None:
    inc = incident(api.rt)
    response = api.http.post(
        f"/incidents/{inc.id}/updates",
        json={"status": "investigating", "message": "Checkout is broken."},
        headers=api.auth(Scope.PUBLISH),
    )
    problem = assert_problem(response, 409)  # the text is refused by the policy, not by the schema
    assert problem["detail"].startswith("guardrails:")  # type: ignore[union-attr]
    assert {e["field"] for e in problem["errors"]} == {"message"}  # type: ignore[attr-defined]


def test_method_not_allowed_is_a_problem_too(api: Api) -> None:
    response = api.http.delete("/incidents", headers=api.auth())
    assert_problem(response, 405)
    assert response.headers["allow"] == "GET, POST"


def test_an_unknown_query_parameter_is_named_not_ignored(api: Api) -> None:
    problem = assert_problem(api.http.get("/incidents?limt=5", headers=api.auth()), 422)
    assert problem["errors"] == [{"field": "limt", "message": "unknown query parameter"}]


def test_a_broken_configuration_is_a_503_naming_what_is_wrong(
    make_runtime: Callable[..., Runtime], tmp_path: Path
) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text('[severity.minor]\ncadence = "whenever"\n', encoding="utf-8")
    rt = make_runtime(policy_file=policy)
    with TestClient(create_app(lambda: rt)) as http:
        token = create_token(rt, "t", [Scope.READ])[1]
        response = http.get("/policy", headers={"Authorization": f"Bearer {token}"})
    problem = assert_problem(response, 503)
    assert problem["type"] == "urn:tocsin:problem:configuration"
    assert "policy.toml" in str(problem["detail"]) and "severity.minor.cadence" in str(problem["detail"])
