"""The newest compose routes (preview, drafts, the post-incident report) agree with ``/openapi.json``.

Each body here is one schemathesis found refused as invalid (422) although the description called it
valid. For each, the test asks the description itself (JSON Schema validation of the operation's
request body, formats included) and the server: a body the description calls valid is never a 422,
and one it calls invalid always is. Where an empty string is "not given" the server reads it so."""

from __future__ import annotations

from typing import Any

import pytest
from jsonschema import Draft202012Validator, FormatChecker

from dispatcher.access.tokens import Scope
from tests.api_client import Api, api_fixture  # noqa: F401
from tests.helpers import incident

GOOD = "Checkout fails for a third of customers since 09:12 UTC; we are rolling back. Sorry."


def described_valid(api: Api, method: str, path: str, body: dict[str, Any]) -> bool:
    """Whether ``/openapi.json`` calls ``body`` a valid request body of ``method path``."""
    document = api.http.get("/openapi.json").json()
    schema = document["paths"][path][method]["requestBody"]["content"]["application/json"]["schema"]
    validator = Draft202012Validator(
        {**schema, "components": document["components"]}, format_checker=FormatChecker()
    )
    return validator.is_valid(body)


def answer(api: Api, method: str, template: str, path: str, body: dict[str, Any]) -> tuple[bool, int, Any]:
    valid = described_valid(api, method, template, body)
    response = api.http.request(method.upper(), path, json=body, headers=api.auth(Scope.ADMIN))
    assert (response.status_code == 422) == (not valid), (valid, response.status_code, response.text)
    return valid, response.status_code, response.json()


PREVIEW = "/incidents/{incident_id}/preview"


def test_the_preview_schemathesis_found_refused_is_described_as_refused(api: Api) -> None:
    inc = incident(api.rt)
    found = {
        "audience": "public", "channels": [], "impact_statement": None, "locale": "en", "message": "0",
        "next_update_at": "2000-01-01T00:00:00Z", "next_update_in": "0", "signer": "", "status": None,
        "template": "", "texts": {}, "timezone": "", "vars": {},
    }  # fmt: skip
    valid, status, problem = answer(api, "post", PREVIEW, f"/incidents/{inc.id}/preview", found)
    assert not valid and status == 422
    assert {e["field"] for e in problem["errors"]} >= {"timezone", "template"}


def test_a_preview_for_a_reader_zone_names_a_zone_and_an_empty_signer_is_no_signer(api: Api) -> None:
    inc = incident(api.rt)
    path = f"/incidents/{inc.id}/preview"
    base = {"status": "investigating", "message": GOOD, "next_update_in": "30m"}
    assert answer(api, "post", PREVIEW, path, {**base, "timezone": ""})[1] == 422
    assert answer(api, "post", PREVIEW, path, {**base, "timezone": "Mars/Olympus"})[1] == 422
    assert answer(api, "post", PREVIEW, path, {**base, "timezone": "Europe/Paris"})[1] == 200
    assert answer(api, "post", PREVIEW, path, {**base, "template": ""})[1] == 422
    assert answer(api, "post", PREVIEW, path, {**base, "template": "No Such"})[1] == 422
    assert answer(api, "post", PREVIEW, path, {**base, "template": "no-such"})[1] == 404
    # A form's empty signer field is no signer (the policy has none to name); a name it lacks is a 409.
    assert answer(api, "post", PREVIEW, path, {**base, "signer": ""})[1] == 200
    assert answer(api, "post", PREVIEW, path, {**base, "signer": "  "})[1] == 200
    status, problem = answer(api, "post", PREVIEW, path, {**base, "signer": "ceo"})[1:]
    assert status == 409 and problem["errors"][0]["field"] == "signer"
    status, problem = answer(api, "post", PREVIEW, path, {**base, "next_update_in": "30000000000H"})[1:]
    assert status == 409 and "longer than 366 days" in problem["detail"]


DRAFTS = "/incidents/{incident_id}/drafts"
EDIT = "/drafts/{draft_id}"


def test_the_drafts_schemathesis_found_refused_are_described_as_refused(api: Api) -> None:
    inc = incident(api.rt)
    found = {
        "audience": "", "channels": [], "impact": {}, "internal_note": "", "message": "0",
        "next_update_in": "", "status": "resolved", "texts": {},
    }  # fmt: skip
    valid, status, problem = answer(api, "post", DRAFTS, f"/incidents/{inc.id}/drafts", found)
    assert not valid and status == 422
    assert {e["field"] for e in problem["errors"]} == {"audience", "next_update_in"}

    first = {"status": "identified", "message": GOOD}
    saved = answer(api, "post", DRAFTS, f"/incidents/{inc.id}/drafts", first)
    assert saved[1] == 201
    draft_id = saved[2]["id"]
    edit = {**found, "status": None, "version": 1}
    valid, status, problem = answer(api, "patch", EDIT, f"/drafts/{draft_id}", edit)
    assert not valid and status == 422
    assert {e["field"] for e in problem["errors"]} == {"audience", "next_update_in", "status"}


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"message": None}, 422),  # a draft always says something: null is no message to keep
        ({"audience": None}, 422),
        ({"status": "monitoring"}, 200),
        ({"internal_note": ""}, 200),
        ({"next_update_in": None}, 200),  # no promise
        ({"next_update_in": "45m"}, 200),
        ({"next_update_in": "30"}, 422),
        ({"next_update_in": "9999d"}, 409),  # well written, but no promise Tocsin holds
        ({"next_update_in": "30000000000H"}, 409),  # more days than Python's timedelta holds: not a 500
        ({"audience": "no-such-segment"}, 409),
    ],
)
def test_a_draft_edit_is_refused_as_its_description_says(
    api: Api, change: dict[str, Any], expected: int
) -> None:
    inc = incident(api.rt)
    saved = api.http.post(
        f"/incidents/{inc.id}/drafts", json={"status": "identified", "message": GOOD}, headers=api.auth()
    )
    assert saved.status_code == 201, saved.text
    assert answer(api, "patch", EDIT, f"/drafts/{saved.json()['id']}", change)[1] == expected
    new = {"status": "identified", "message": GOOD, **change}
    if change.get("message", "") is not None and change.get("audience", "") is not None:
        assert answer(api, "post", DRAFTS, f"/incidents/{inc.id}/drafts", new)[1] == (
            201 if expected == 200 else expected
        )


REPORT = "/incidents/{incident_id}/report"


@pytest.mark.parametrize(
    "body",
    [
        {"markdown": None, "override_reason": "", "report": None},
        {},
        {"markdown": ""},
        {"markdown": "## Summary\nx", "report": {"summary": "a", "impact": "b", "root_cause": "c",
                                               "actions_taken": "d", "prevention": "e"}},
    ],
)  # fmt: skip
def test_a_report_body_that_is_not_exactly_one_form_is_described_as_refused(
    api: Api, body: dict[str, Any]
) -> None:
    inc = incident(api.rt)
    valid, status, _ = answer(api, "post", REPORT, f"/incidents/{inc.id}/report", body)
    assert not valid and status == 422


def test_a_report_in_one_form_is_described_as_valid_and_judged_by_the_incident(api: Api) -> None:
    inc = incident(api.rt)  # still open: a report comes after it is resolved (409, not 422)
    for body in ({"markdown": "## Summary\nx", "report": None}, {"markdown": "no sections at all"}):
        valid, status, _ = answer(api, "post", REPORT, f"/incidents/{inc.id}/report", body)
        assert valid and status == 409
