"""Issue 17 through the HTTP API: a security incident opened with its kind, blocked without its data facts
(a problem naming the rule), its facts given with PUT, an update with an impact statement, then after
resolution the post-incident report (Markdown) and amends with per-recipient codes."""

from __future__ import annotations

from dispatcher.access.tokens import Scope
from dispatcher.comms.closure import resolve
from dispatcher.domain.identity import Identity
from tests.api_client import Api, api_fixture  # noqa: F401
from tests.helpers import subscribe

BODY = {
    "status": "investigating",
    "message": "Someone read our customer list. Sorry.",
    "next_update_in": "1h",
}
FACTS = {
    "data_affected": "names",
    "data_not_affected": "passwords",
    "customer_actions": "watch for phishing",
    "company_actions": "sessions reset",
}
REPORT = "## Summary\nx\n## Impact\ny\n## Root cause\nz\n## What we did\nw\n## What we will do\nv\n"


def test_a_breach_through_the_api(api: Api) -> None:
    subscribe(api.rt, 2)
    headers = api.auth(Scope.PUBLISH)
    opened = api.http.post(
        "/incidents", json={"title": "Data exposed", "kind": "security", "severity": "minor"}, headers=headers
    )
    assert opened.status_code == 201, opened.text
    incident_id = opened.json()["incident"]["id"]
    assert opened.json()["incident"]["kind"] == "security"

    blocked = api.http.post(f"/incidents/{incident_id}/updates", json=BODY, headers=headers)
    assert blocked.status_code == 409, blocked.text  # a guardrail: what no schema states
    assert "data-facts-missing" in blocked.text

    given = api.http.put(f"/incidents/{incident_id}/data-facts", json=FACTS, headers=headers)
    assert given.status_code == 200, given.text
    assert given.json()["data_facts"] == FACTS
    statement = {"who": "all customers", "workaround": "change your password"}
    sent = api.http.post(
        f"/incidents/{incident_id}/updates", json=BODY | {"impact_statement": statement}, headers=headers
    )
    assert sent.status_code == 201, sent.text
    assert sent.json()["update"]["impact_statement"] == statement | {"not_working": None, "since": None}
    api.deliver()

    resolve(api.rt, incident_id, Identity("ada"), api.runner.queue)
    api.deliver()
    report = api.http.post(f"/incidents/{incident_id}/report", json={"markdown": REPORT}, headers=headers)
    assert report.status_code == 201, report.text
    assert report.json()["told"] >= 2
    read = api.http.get(f"/incidents/{incident_id}/report", headers=api.auth(Scope.READ))
    assert read.json()["report"]["root_cause"] == "z"
    both = api.http.post(
        f"/incidents/{incident_id}/report",
        json={"markdown": REPORT, "report": read.json()["report"]},
        headers=headers,
    )
    assert both.status_code == 422

    codes = "email,code\nperson0@example.com,A-1\nperson1@example.com,B-2\n"
    amends = api.http.post(
        f"/incidents/{incident_id}/amends",
        json={"offer": "A year of monitoring, on us: {code}", "codes_csv": codes},
        headers=headers,
    )
    assert amends.status_code == 201, amends.text
    assert amends.json()["without_code"] == 0
    assert amends.json()["update"]["kind"] == "amends"
