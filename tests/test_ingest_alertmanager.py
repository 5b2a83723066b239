"""Alertmanager's webhook, posted to the real app: a firing group opens one incident and pages the
on-call (internal audience) at once; a repeat changes nothing; a resolved group moves the incident to
monitoring, never to resolved; the public hears from monitoring only when the policy allows it."""

from __future__ import annotations

import copy
import email
import json
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy import func, select

from channels.base import ChannelKind
from dispatcher.access.tokens import Scope, create_token
from dispatcher.audience.subscribers import add_subscribers
from dispatcher.domain.models import ContactPoint, Subscriber
from dispatcher.engine.runtime import Runtime
from dispatcher.ingest import alertmanager
from dispatcher.ingest.common import ingest
from dispatcher.runners.embedded import EmbeddedRunner
from dispatcher.store.schema import incident_events, incidents, updates
from dispatcher.web.app import create_app
from tests.helpers import RecordingQueue

TOKEN = "ingest-token-7f3a9c"
HMAC_SECRET = "generic-shared-secret"
ON_CALL = "oncall@example.com"
CUSTOMER = "customer@example.com"


def checkout_alert(instance: str, failing: str, starts_at: str, fingerprint: str) -> dict[str, Any]:
    """One firing CheckoutErrors alert of the group, from the API instance ``instance``."""
    return {
        "status": "firing",
        "labels": {
            "alertname": "CheckoutErrors",
            "severity": "error",
            "component": "checkout",
            "job": "api",
            "instance": instance,
        },
        "annotations": {
            "summary": "Checkout error rate above 5%",
            "description": f"{failing} of POST /checkout fail",
        },
        "startsAt": starts_at,
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus.example.com:9090/graph?g0.expr=checkout_errors",
        "fingerprint": fingerprint,
    }


ALERTMANAGER_FIRING: dict[str, Any] = {
    "version": "4",
    "groupKey": '{}/{severity=~"error|critical"}:{alertname="CheckoutErrors"}',
    "truncatedAlerts": 0,
    "status": "firing",
    "receiver": "tocsin",
    "groupLabels": {"alertname": "CheckoutErrors"},
    "commonLabels": {
        "alertname": "CheckoutErrors",
        "severity": "error",
        "component": "checkout",
        "job": "api",
    },
    "commonAnnotations": {"summary": "Checkout error rate above 5%"},
    "externalURL": "http://alertmanager.example.com:9093",
    "alerts": [
        checkout_alert("api-1:8080", "7.2%", "2026-11-25T09:00:00.000Z", "a1b2c3d4e5f60718"),
        checkout_alert("api-2:8080", "6.1%", "2026-11-25T09:00:30.000Z", "0f1e2d3c4b5a6978"),
    ],
}


def resolved(payload: dict[str, Any], ended: str = "2026-11-25T09:20:00.000Z") -> dict[str, Any]:
    done = copy.deepcopy(payload)
    done["status"] = "resolved"
    for alert in done["alerts"]:
        alert["status"] = "resolved"
        alert["endsAt"] = ended
    return done


def fired_again(payload: dict[str, Any], started: str = "2026-11-25T09:40:00.000Z") -> dict[str, Any]:
    again = copy.deepcopy(payload)
    for alert in again["alerts"]:
        alert["startsAt"] = started
    return again


@dataclass
class Monitoring:
    """The real app on a real database, with an on-call (internal) subscriber and a customer."""

    rt: Runtime
    http: TestClient
    runner: EmbeddedRunner
    outbox: Path

    def post(self, path: str, payload: Any, token: str | None = TOKEN, **headers: str) -> Response:
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        response = self.http.post(path, content=body, headers={"Content-Type": "application/json", **headers})
        # Two updates to the same people (public, then the on-call's notice) go out in order: a later
        # one waits a moment while an earlier one is in flight. Wait for those short waits too.
        self.runner.run_until_idle(wait_up_to=15)
        return response

    def incidents(self) -> list[dict[str, Any]]:
        with self.rt.engine.connect() as conn:
            return [dict(r) for r in conn.execute(select(incidents).order_by(incidents.c.id)).mappings()]

    def updates(self, audience: str | None = None) -> list[dict[str, Any]]:
        query = select(updates).order_by(updates.c.id)
        if audience is not None:
            query = query.where(updates.c.audience == audience)
        with self.rt.engine.connect() as conn:
            return [dict(r) for r in conn.execute(query).mappings()]

    def mailbox(self, address: str) -> list[email.message.Message]:
        """Every email the outbox provider wrote to ``address``."""
        found = []
        for path in sorted(self.outbox.glob("update-*/email/*.eml")):
            message = email.message_from_bytes(path.read_bytes())
            if address in str(message["To"]):
                found.append(message)
        return found


def text_of(message: email.message.Message) -> str:
    for part in message.walk():
        if part.get_content_type() == "text/plain":
            payload = part.get_payload(decode=True)
            assert isinstance(payload, bytes)
            return payload.decode()
    raise AssertionError("no text part")


def policy_file(tmp_path: Path, may_publish_public: bool) -> Path:
    path = tmp_path / "policy.toml"
    path.write_text(f"[monitoring]\nmay_publish_public = {'true' if may_publish_public else 'false'}\n")
    return path


def monitoring_story(
    make_runtime: Callable[..., Runtime], tmp_path: Path, may_publish_public: bool = False, **settings: Any
) -> Iterator[Monitoring]:
    rt = make_runtime(
        ingest_token=TOKEN,
        ingest_hmac_secret=HMAC_SECRET,
        policy_file=policy_file(tmp_path, may_publish_public),
        **settings,
    )
    add_subscribers(
        rt,
        [
            Subscriber(
                name="On-call",
                internal=True,
                contact_points=[ContactPoint(channel=ChannelKind.EMAIL, address=ON_CALL)],
            ),
            Subscriber(
                name="Customer", contact_points=[ContactPoint(channel=ChannelKind.EMAIL, address=CUSTOMER)]
            ),
        ],
    )
    app = create_app(lambda: rt)
    runner = EmbeddedRunner(rt)
    app.state.task_queue = lambda: runner.queue
    with TestClient(app) as http:
        yield Monitoring(rt, http, runner, tmp_path / "outbox")


@pytest.fixture(name="story")
def story_fixture(make_runtime: Callable[..., Runtime], tmp_path: Path) -> Iterator[Monitoring]:
    """Monitoring may not publish to the public (the default policy). Other ingest tests import it."""
    yield from monitoring_story(make_runtime, tmp_path, may_publish_public=False)


@pytest.fixture(name="public_story")
def public_story_fixture(make_runtime: Callable[..., Runtime], tmp_path: Path) -> Iterator[Monitoring]:
    """The policy lets monitoring publish to the public. Other ingest tests import it."""
    yield from monitoring_story(make_runtime, tmp_path, may_publish_public=True)


def test_a_firing_group_opens_one_incident_and_pages_the_on_call_at_once(story: Monitoring) -> None:
    response = story.post("/ingest/alertmanager", ALERTMANAGER_FIRING)

    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["action"] == "opened" and answer["repeat"] is False
    [opened] = story.incidents()
    assert answer["incident_id"] == opened["id"]
    assert opened["source"] == "alertmanager"
    assert opened["external_key"] == ALERTMANAGER_FIRING["groupKey"]
    assert opened["title"] == "Checkout error rate above 5%"
    assert opened["severity"] == "major", "severity=error maps to major (policy.monitoring.severity_map)"
    assert opened["components"] == ["checkout"]
    assert opened["status"] == "investigating"

    [notice] = story.updates()
    assert answer["updates"] == [notice["id"]]
    assert notice["audience"] == "internal" and notice["author"] == "monitoring:alertmanager"
    [page] = story.mailbox(ON_CALL)
    body = text_of(page)
    assert f"FIRING: incident {opened['id']} opened" in body
    assert "Checkout error rate above 5%" in body and "2 alert(s) firing" in body
    assert "http://alertmanager.example.com:9093" in body
    assert "Nothing was published to customers" in body
    assert story.mailbox(CUSTOMER) == [], "customers hear nothing from monitoring by default"
    with story.rt.engine.connect() as conn:
        kinds = conn.execute(
            select(incident_events.c.kind, incident_events.c.actor).where(
                incident_events.c.incident_id == opened["id"]
            )
        ).all()
    assert ("opened", "monitoring:alertmanager") in kinds


def test_a_repeated_delivery_returns_the_same_incident_and_sends_nothing(story: Monitoring) -> None:
    first = story.post("/ingest/alertmanager", ALERTMANAGER_FIRING).json()
    # Alertmanager lists the alerts in any order: the same group is still the same delivery.
    shuffled = copy.deepcopy(ALERTMANAGER_FIRING)
    shuffled["alerts"].reverse()
    again = story.post("/ingest/alertmanager", shuffled)

    assert again.status_code == 200
    assert again.json()["incident_id"] == first["incident_id"]
    assert again.json()["repeat"] is True and again.json()["updates"] == []
    assert len(story.incidents()) == 1
    assert len(story.updates()) == 1
    assert len(story.mailbox(ON_CALL)) == 1


def test_resolved_moves_the_incident_to_monitoring_never_to_resolved(story: Monitoring) -> None:
    incident_id = story.post("/ingest/alertmanager", ALERTMANAGER_FIRING).json()["incident_id"]

    answer = story.post("/ingest/alertmanager", resolved(ALERTMANAGER_FIRING)).json()

    assert answer == {**answer, "incident_id": incident_id, "action": "monitoring", "repeat": False}
    [inc] = story.incidents()
    assert (
        inc["status"] == "monitoring" and inc["resolved_at"] is None and inc["monitoring_since"] is not None
    )
    assert [u["audience"] for u in story.updates()] == ["internal", "internal"]
    pages = story.mailbox(ON_CALL)
    assert len(pages) == 2
    assert "monitoring reports recovery; confirm before announcing" in text_of(pages[1])
    assert story.mailbox(CUSTOMER) == []

    repeat = story.post("/ingest/alertmanager", resolved(ALERTMANAGER_FIRING)).json()
    assert repeat["repeat"] is True and story.incidents()[0]["status"] == "monitoring"


def test_firing_again_after_recovery_sends_the_incident_back_to_investigating(story: Monitoring) -> None:
    incident_id = story.post("/ingest/alertmanager", ALERTMANAGER_FIRING).json()["incident_id"]
    story.post("/ingest/alertmanager", resolved(ALERTMANAGER_FIRING))

    answer = story.post("/ingest/alertmanager", fired_again(ALERTMANAGER_FIRING)).json()

    assert (answer["incident_id"], answer["action"]) == (incident_id, "escalated")
    assert len(story.incidents()) == 1 and story.incidents()[0]["status"] == "investigating"
    assert "back to investigating" in text_of(story.mailbox(ON_CALL)[-1])


def test_a_resolved_group_for_an_unknown_incident_changes_nothing(story: Monitoring) -> None:
    answer = story.post("/ingest/alertmanager", resolved(ALERTMANAGER_FIRING)).json()
    assert (answer["incident_id"], answer["action"]) == (None, "ignored")
    assert story.incidents() == [] and story.updates() == []


def test_when_the_policy_allows_it_monitoring_also_tells_the_public(public_story: Monitoring) -> None:
    story = public_story
    answer = story.post("/ingest/alertmanager", ALERTMANAGER_FIRING).json()

    [public] = story.updates("public")
    assert public["status"] == "investigating" and public["author"] == "monitoring:alertmanager"
    assert public["next_update_at"] is not None
    cadence = public["next_update_at"] - public["published_at"]
    assert cadence.total_seconds() == pytest.approx(3600, abs=5), "the major cadence: 60 minutes"
    assert set(answer["updates"]) == {u["id"] for u in story.updates()}
    [told] = story.mailbox(CUSTOMER)
    text = text_of(told)
    # The library's first notice, in every language it has; the layout states the promise, once.
    assert public["template"] == "first-notice" and set(public["texts"]) == {"en", "fr"}
    assert "We are aware of a problem affecting checkout and are investigating" in text and "sorry" in text
    assert text.count("Next update by") == 1
    assert "7.2% of POST /checkout fail" not in text, "the alerts' details stay internal"
    assert f"Published to customers automatically as update {public['id']}" in text_of(
        story.mailbox(ON_CALL)[0]
    )

    story.post("/ingest/alertmanager", resolved(ALERTMANAGER_FIRING))
    assert [u["status"] for u in story.updates("public")] == ["investigating", "monitoring"]
    assert story.incidents()[0]["status"] == "monitoring", "still never resolved by monitoring"
    recovered = text_of(story.mailbox(CUSTOMER)[-1])
    assert "working normally again" in recovered and recovered.count("Next update by") == 1


def test_by_default_monitoring_publishes_nothing_public(story: Monitoring) -> None:
    story.post("/ingest/alertmanager", ALERTMANAGER_FIRING)
    story.post("/ingest/alertmanager", resolved(ALERTMANAGER_FIRING))
    assert story.updates("public") == []
    assert story.mailbox(CUSTOMER) == []


def test_without_the_token_the_request_is_refused_and_nothing_happens(story: Monitoring) -> None:
    for token in (None, "wrong-token"):
        response = story.post("/ingest/alertmanager", ALERTMANAGER_FIRING, token=token)
        assert response.status_code == 401
        assert response.headers["content-type"] == "application/problem+json"
        assert response.headers["www-authenticate"].startswith("Bearer")
    assert story.incidents() == [] and story.updates() == []


def test_an_api_token_with_the_publish_scope_is_accepted_and_a_read_token_is_not(story: Monitoring) -> None:
    reader = create_token(story.rt, "grafana-read", [Scope.READ])[1]
    assert story.post("/ingest/alertmanager", ALERTMANAGER_FIRING, token=reader).status_code == 403
    publisher = create_token(story.rt, "alertmanager", [Scope.PUBLISH])[1]
    assert story.post("/ingest/alertmanager", ALERTMANAGER_FIRING, token=publisher).status_code == 200
    assert len(story.incidents()) == 1


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda p: p.pop("groupKey"), "groupKey"),
        (lambda p: p.update(version="3"), "version"),
        (lambda p: p["alerts"][1].update(status="burning"), "alerts.1.status"),
        (lambda p: p["alerts"][0].update(startsAt="yesterday"), "alerts.0.startsAt"),
        (lambda p: p.update(alerts=[]), "alerts"),
    ],
    ids=["no groupKey", "version 3", "bad alert status", "bad startsAt", "no alerts"],
)
def test_a_bad_payload_gets_a_problem_naming_the_field(
    story: Monitoring, change: Callable[[dict[str, Any]], object], field: str
) -> None:
    payload = copy.deepcopy(ALERTMANAGER_FIRING)
    change(payload)
    response = story.post("/ingest/alertmanager", payload)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert field in [e["field"] for e in problem["errors"]], problem
    assert field in problem["detail"]
    assert story.incidents() == []


def test_a_body_that_is_not_json_gets_400(story: Monitoring) -> None:
    response = story.post("/ingest/alertmanager", b"{not json")
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "body"


def test_the_incident_count_stays_one_however_often_the_group_is_sent(story: Monitoring) -> None:
    for _ in range(3):
        story.post("/ingest/alertmanager", ALERTMANAGER_FIRING)
    with story.rt.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(incidents)).scalar_one() == 1


def test_deliveries_of_one_group_arriving_together_open_one_incident(story: Monitoring) -> None:
    """Two Alertmanager replicas (and a changed group) at the same moment: one incident, no duplicate."""
    monitoring = story.rt.policy.policy.monitoring
    payloads = [ALERTMANAGER_FIRING, fired_again(ALERTMANAGER_FIRING)] * 3
    groups = [
        alertmanager.to_group(alertmanager.AlertmanagerPayload.model_validate(p), monitoring)
        for p in payloads
    ]
    queue = RecordingQueue()
    with ThreadPoolExecutor(len(groups)) as pool:
        results = list(pool.map(lambda g: ingest(story.rt, g, queue), groups))

    [opened] = story.incidents()
    fresh = [r for r in results if not r.repeat]
    assert len(fresh) == 2, "each distinct delivery is applied once"
    assert {r.incident_id for r in fresh} == {opened["id"]}
    assert sorted(r.action for r in fresh) == ["changed", "opened"]
    assert len(story.updates()) == 2


def test_a_public_text_the_guardrails_refuse_is_not_sent_and_the_on_call_is_told(
    public_story: Monitoring,
) -> None:
    payload = copy.deepcopy(ALERTMANAGER_FIRING)
    payload["commonLabels"]["component"] = "pg-prod-1.corp.internal"
    answer = public_story.post("/ingest/alertmanager", payload).json()

    assert answer["action"] == "opened"
    assert public_story.updates("public") == []
    assert any("internal host name" in p for p in answer["problems"]), answer["problems"]
    page = text_of(public_story.mailbox(ON_CALL)[0])
    assert "public update was NOT published" in page and "internal host name" in page
    assert public_story.mailbox(CUSTOMER) == []
