"""What the CLI does, through the HTTP API: incidents, updates, subscribers, deliveries, policy."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import update

from channels.base import ChannelKind
from dispatcher.access.tokens import Scope
from dispatcher.domain.models import Severity
from dispatcher.store.schema import deliveries
from tests.api_client import Api, api_fixture  # noqa: F401
from tests.helpers import draft, incident, publish_and_deliver, states, subscribe

TEXT = "Since 09:12 UTC a third of checkouts fail. We are sorry. We are rolling back the 09:05 deploy."


def publish_body(**fields: object) -> dict[str, object]:
    return {"status": "investigating", "message": TEXT, "next_update_in": "30m", **fields}


def test_a_publish_through_the_api_reaches_every_subscriber_in_the_outbox(api: Api, tmp_path: Path) -> None:
    subscribe(api.rt, 3, sms=True)
    opened = api.http.post(
        "/incidents", json={"title": "Checkout failing", "components": ["checkout"]}, headers=api.auth()
    )
    assert opened.status_code == 201 and opened.json()["action"] == "opened"
    incident_id = opened.json()["incident"]["id"]

    published = api.http.post(
        f"/incidents/{incident_id}/updates",
        json=publish_body(channels=["email", "sms"]),
        headers=api.auth(Scope.PUBLISH),
    )
    assert published.status_code == 201, published.text
    update = published.json()["update"]
    assert update["state"] == "pending" and update["author"] == "api:test"
    api.deliver()

    outbox = tmp_path / "outbox" / f"update-{update['id']}"
    assert len(list((outbox / "email").glob("*.eml"))) == 3
    assert len(list((outbox / "sms").glob("*.json"))) == 3
    status = api.http.get(f"/updates/{update['id']}/status", headers=api.auth(Scope.READ)).json()
    assert status["owed"] == 0
    assert {c["channel"]: c["counts"] for c in status["channels"]} == {
        "email": {"sent": 3},
        "sms": {"sent": 3},
    }
    assert {(p["channel"], p["provider"], p["sent"]) for p in status["providers"]} == {
        ("email", "outbox", 3),
        ("sms", "outbox", 3),
    }
    assert (
        api.http.get(f"/updates/{update['id']}", headers=api.auth(Scope.READ)).json()["state"] == "fanned_out"
    )

    detail = api.http.get(f"/incidents/{incident_id}", headers=api.auth(Scope.READ)).json()
    assert [e["kind"] for e in detail["timeline"]] == ["opened", "first_word", "update"]
    assert detail["timeline"][1]["update_id"] == update["id"]


def test_lists_page_with_a_cursor_without_repeating_or_skipping(api: Api) -> None:
    for _ in range(5):
        incident(api.rt)
    headers = api.auth(Scope.READ)
    seen: list[int] = []
    cursor = None
    pages = 0
    while True:
        query = "/incidents?limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = api.http.get(query, headers=headers).json()
        seen += [i["id"] for i in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
        incident(api.rt)  # a new incident meanwhile does not shift the pages already read
    assert seen == [5, 4, 3, 2, 1] and pages == 3

    subscribe(api.rt, 3)
    first = api.http.get("/subscribers?limit=2", headers=api.auth(Scope.SUBSCRIBERS)).json()
    rest = api.http.get(
        f"/subscribers?limit=2&cursor={first['next_cursor']}", headers=api.auth(Scope.SUBSCRIBERS)
    ).json()
    assert [s["id"] for s in first["items"] + rest["items"]] == [1, 2, 3]
    assert rest["next_cursor"] is None


def test_subscribers_crud_and_preferences(api: Api) -> None:
    headers = api.auth(Scope.SUBSCRIBERS)
    made = api.http.post(
        "/subscribers",
        json={"name": "Ada", "email": "Ada@Example.com", "phone": "+442079460000", "components": ["api"]},
        headers=headers,
    )
    assert made.status_code == 201, made.text
    ada = made.json()
    assert {(c["channel"], c["address"]) for c in ada["contact_points"]} == {
        ("email", "Ada@example.com"),
        ("sms", "+442079460000"),
    }
    sid = ada["id"]

    taken = api.http.post("/subscribers", json={"email": "Ada@example.com"}, headers=headers)
    assert taken.status_code == 409 and "already subscribed" in taken.json()["detail"]
    bad = api.http.post("/subscribers", json={"email": "nope", "phone": "12"}, headers=headers)
    assert bad.status_code == 422
    assert {e["field"] for e in bad.json()["errors"]} == {"email", "phone"}

    patched = api.http.patch(
        f"/subscribers/{sid}", json={"plan": "pro", "min_severity": "major"}, headers=headers
    )
    assert patched.status_code == 200
    assert (patched.json()["plan"], patched.json()["min_severity"], patched.json()["name"]) == (
        "pro",
        "major",
        "Ada",
    )

    prefs = api.http.put(
        f"/subscribers/{sid}/preferences",
        json={
            "channels": ["email"],
            "quiet_start": "22:00",
            "quiet_end": "07:00",
            "timezone": "Europe/London",
            "opted_out": {"sms": True},
        },
        headers=headers,
    )
    assert prefs.status_code == 200, prefs.text
    got = api.http.get(f"/subscribers/{sid}/preferences", headers=headers).json()
    assert (
        got["channels"] == ["email"] and got["quiet_start"] == "22:00" and got["timezone"] == "Europe/London"
    )
    assert got["opted_out"] == {"email": False, "sms": True}
    half = api.http.put(f"/subscribers/{sid}/preferences", json={"quiet_start": "22:00"}, headers=headers)
    assert half.status_code == 422
    no_webhook = api.http.put(
        f"/subscribers/{sid}/preferences", json={"opted_out": {"webhook": True}}, headers=headers
    )
    # Well formed, but the subscriber has no webhook address: refused by what is stored (409).
    assert no_webhook.status_code == 409 and no_webhook.json()["errors"][0]["field"] == "opted_out.webhook"

    assert api.http.delete(f"/subscribers/{sid}", headers=headers).status_code == 204
    assert api.http.get(f"/subscribers/{sid}", headers=headers).status_code == 404
    assert api.http.delete(f"/subscribers/{sid}", headers=headers).status_code == 404


def test_an_email_without_at_is_422_and_one_email_validator_refuses_is_409(api: Api) -> None:
    headers = api.auth(Scope.SUBSCRIBERS)
    no_at = api.http.post("/subscribers", json={"email": "ann.example.org"}, headers=headers)
    assert no_at.status_code == 422, "breaks format: email as the description states it"
    reserved = api.http.post("/subscribers", json={"email": "ann@example.test"}, headers=headers)
    assert reserved.status_code == 409, "as described, but refused by what no schema states"
    assert reserved.json()["errors"][0]["field"] == "email"
    assert api.http.get("/subscribers", headers=headers).json()["items"] == []


def test_csv_import_lists_every_bad_row_and_imports_nothing_unless_told(api: Api) -> None:
    headers = api.auth(Scope.SUBSCRIBERS) | {"Content-Type": "text/csv"}
    csv = "name,email,phone\nAda,ada@example.com,\nBob,not-an-email,\nCy,,+1202555\n"

    refused = api.http.post("/subscribers/import", content=csv, headers=headers)
    assert refused.status_code == 409  # a CSV as described, whose rows break rules no schema states
    assert [e["field"] for e in refused.json()["errors"]] == ["line 3.email", "line 4.phone"]
    assert api.http.get("/subscribers", headers=headers).json()["items"] == []

    partial = api.http.post("/subscribers/import?skip_invalid=true", content=csv, headers=headers)
    assert partial.status_code == 201
    assert (partial.json()["imported"], partial.json()["skipped"]) == (1, 2)
    assert [p["line"] for p in partial.json()["problems"]] == [3, 4]

    latin1 = "name,email\nZo\u00eb,zoe@example.org\n".encode("latin-1")
    not_text = api.http.post("/subscribers/import?skip_invalid=true", content=latin1, headers=headers)
    assert not_text.status_code == 422, "not the UTF-8 text the description asks for, even with skip_invalid"
    assert "line 2 is not UTF-8 text" in not_text.json()["errors"][0]["message"]
    assert len(api.http.get("/subscribers", headers=headers).json()["items"]) == 1, "nothing more imported"


def test_deliveries_ledger_missing_and_retry(api: Api) -> None:
    # a dead letter: one email row failed (as after a permanent provider error)
    subscribe(api.rt, 2)
    inc = incident(api.rt)
    published = publish_and_deliver(api.rt, draft(inc, channels=[ChannelKind.EMAIL], override_reason="test"))
    uid = published.update.id
    with api.rt.engine.begin() as conn:
        conn.execute(
            update(deliveries)
            .where(deliveries.c.address == "person1@example.com")
            .values(state="failed", last_error="550 mailbox unavailable")
        )
    read = api.auth(Scope.READ)

    failed = api.http.get(f"/deliveries?update_id={uid}&state=failed", headers=read).json()
    assert [d["address"] for d in failed["items"]] == ["person1@example.com"]
    every = api.http.get(f"/deliveries?update_id={uid}", headers=read).json()
    assert len(every["items"]) == 2

    missing = api.http.get(f"/updates/{uid}/missing", headers=read).json()
    assert missing["counts"] == {"failed": 1}
    assert missing["missing"][0]["detail"].startswith("550 mailbox unavailable")

    dry = api.http.post(
        "/deliveries/retry", json={"update_id": uid, "dry_run": True}, headers=api.auth(Scope.PUBLISH)
    )
    assert dry.json()["rows"] == 1 and dry.json()["dry_run"] is True
    assert states(api.rt, uid) == {"sent": 1, "failed": 1}
    retried = api.http.post("/deliveries/retry", json={"update_id": uid}, headers=api.auth(Scope.PUBLISH))
    assert retried.status_code == 200 and retried.json()["rows"] == 1
    api.deliver()
    assert states(api.rt, uid) == {"sent": 2}
    nothing = api.http.post("/deliveries/retry", json={"update_id": uid}, headers=api.auth(Scope.PUBLISH))
    assert nothing.status_code == 409 and "no failed deliveries" in nothing.json()["detail"]
    assert api.http.post("/deliveries/retry", json={}, headers=read).status_code == 403


def test_policy_in_force_and_checking_a_candidate(api: Api) -> None:
    read = api.auth(Scope.READ)
    current = api.http.get("/policy", headers=read).json()
    assert (
        current["version"] == "builtin"
        and current["policy"]["severity"]["critical"]["needs_approval"] is True
    )

    good = (
        '[severity.minor]\ncadence = "3h"\n[severity.major]\ncadence = "1h"\n'
        '[severity.critical]\ncadence = "30m"\n'
    )
    checked = api.http.post(
        "/policy/check", content=good, headers=read | {"Content-Type": "application/toml"}
    )
    assert checked.status_code == 200 and checked.json()["valid"] is True
    assert checked.json()["version"].startswith("sha256:")

    bad = '[severity.minor]\ncadence = "soon"\n[severity.major]\ncadence = "1h"\n'
    # A policy that is not valid is the check's answer (200, valid: false), not a refused request.
    refused = api.http.post("/policy/check", content=bad, headers=read | {"Content-Type": "application/toml"})
    assert refused.status_code == 200 and refused.json()["valid"] is False
    assert refused.json()["policy"] is None and refused.json()["version"] is None
    assert [e["field"] for e in refused.json()["errors"]] == ["severity.minor.cadence"]
    incomplete = api.http.post(
        "/policy/check",
        content='[severity.minor]\ncadence = "3h"\n',
        headers=read | {"Content-Type": "text/plain"},
    )
    assert incomplete.status_code == 200 and incomplete.json()["valid"] is False
    assert incomplete.json()["errors"] == [
        {"field": "(top level)", "message": "severity: no policy for major, critical"}
    ]
    broken = api.http.post("/policy/check", content="[oops", headers=read | {"Content-Type": "text/plain"})
    assert broken.status_code == 200 and broken.json()["valid"] is False
    assert broken.json()["errors"][0]["field"] == "body"
    assert "not valid TOML" in broken.json()["errors"][0]["message"]
    empty = api.http.post("/policy/check", content="  \n", headers=read | {"Content-Type": "text/plain"})
    assert empty.status_code == 422 and empty.json()["errors"] == [{"field": "body", "message": "empty"}]


def test_status_changes_and_approvals(api: Api) -> None:
    inc = incident(api.rt)
    publisher = api.auth(Scope.PUBLISH)
    moved = api.http.post(f"/incidents/{inc.id}/status", json={"status": "identified"}, headers=publisher)
    assert moved.status_code == 200 and moved.json()["status"] == "identified"
    early = api.http.post(f"/incidents/{inc.id}/status", json={"status": "resolved"}, headers=publisher)
    assert early.status_code == 409 and "monitor" in early.json()["detail"]

    critical = incident(api.rt, severity=Severity.CRITICAL)
    waiting = api.http.post(
        f"/incidents/{critical.id}/updates",
        json=publish_body(),
        headers=api.auth(Scope.PUBLISH, name="alice"),
    )
    assert waiting.status_code == 201 and waiting.json()["update"]["state"] == "pending_approval"
    uid = waiting.json()["update"]["id"]
    assert [u["id"] for u in api.http.get("/approvals", headers=api.auth(Scope.READ)).json()] == [uid]

    same = api.http.post(f"/updates/{uid}/approve", headers=api.auth(Scope.PUBLISH, name="alice"))
    assert same.status_code == 409 and "someone else" in same.json()["detail"]
    # Alice's token cannot approve alice's update by naming someone else (issue 15).
    claimed = api.http.post(
        f"/updates/{uid}/approve", json={"approver": "bob"}, headers=api.auth(Scope.PUBLISH, name="alice")
    )
    assert claimed.status_code == 422 and claimed.json()["errors"][0]["field"] == "approver"
    approved = api.http.post(f"/updates/{uid}/approve", headers=api.auth(Scope.PUBLISH, name="bob"))
    assert approved.status_code == 200 and approved.json()["approved_by"] == "api:bob"
    assert api.http.get("/approvals", headers=api.auth(Scope.READ)).json() == []
    rejected = api.http.post(f"/updates/{uid}/reject", json={"reason": "late"}, headers=publisher)
    assert rejected.status_code == 409


def test_preview_shows_each_channel_and_the_guardrail_findings(api: Api) -> None:
    inc = incident(api.rt)
    response = api.http.post(
        f"/incidents/{inc.id}/preview",
        json={"status": "investigating", "message": "Checkout is broken."},
        headers=api.auth(Scope.PUBLISH),
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert {c["channel"] for c in body["channels"]} >= {"email", "sms"}
    assert body["blocked"] is True and any(f["level"] == "error" for f in body["findings"])
    sms = next(c for c in body["channels"] if c["channel"] == "sms")
    assert "segment" in sms["measure"]
    assert json.dumps(body)  # plain JSON
