"""Grafana unified alerting's webhook contact point, posted to the real app: same behaviour as
Alertmanager (one incident per groupKey, the on-call paged, repeats idempotent, recovery → monitoring)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from tests.test_ingest_alertmanager import (  # noqa: F401 (the story fixtures)
    CUSTOMER,
    ON_CALL,
    Monitoring,
    public_story_fixture,
    resolved,
    story_fixture,
    text_of,
)

# The shape Grafana documents for its webhook contact point (two alerts of one group).
GRAFANA_FIRING: dict[str, Any] = {
    "receiver": "tocsin",
    "status": "firing",
    "orgId": 1,
    "alerts": [
        {
            "status": "firing",
            "labels": {"alertname": "High memory usage", "team": "blue", "zone": "us-1", "service": "api"},
            "annotations": {
                "description": "The system has high memory usage",
                "runbook_url": "https://myrunbook.com/runbook/1234",
                "summary": "This alert was triggered for zone us-1",
            },
            "startsAt": "2026-11-25T09:51:03.157076+02:00",
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "https://grafana.example.com/alerting/1afz29v7z/edit",
            "fingerprint": "c6eadffa33fcdf37",
            "silenceURL": "https://grafana.example.com/alerting/silence/new?alertmanager=grafana",
            "dashboardURL": "https://grafana.example.com/d/memory",
            "panelURL": "https://grafana.example.com/d/memory?viewPanel=2",
            "values": {"B": 44.23943737541908, "C": 1},
        },
        {
            "status": "firing",
            "labels": {"alertname": "High CPU usage", "team": "blue", "zone": "eu-1", "service": "billing"},
            "annotations": {
                "description": "The system has high CPU usage",
                "summary": "This alert was triggered for zone eu-1",
            },
            "startsAt": "2026-11-25T09:52:03.157076+02:00",
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "https://grafana.example.com/alerting/d1rdpdv7k/edit",
            "fingerprint": "bc97ff14869b13e3",
            "silenceURL": "https://grafana.example.com/alerting/silence/new?alertmanager=grafana",
            "dashboardURL": "",
            "panelURL": "",
            "values": {"B": 44.23943737541908, "C": 1},
        },
    ],
    "groupLabels": {"team": "blue"},
    "commonLabels": {"team": "blue", "severity": "critical"},
    "commonAnnotations": {},
    "externalURL": "https://grafana.example.com/",
    "version": "1",
    "groupKey": '{}/{team="blue"}:{team="blue"}',
    "truncatedAlerts": 0,
    "title": "[FIRING:2]  (blue)",
    "state": "alerting",
    "message": "**Firing**\n\nLabels:\n - alertname = High memory usage\n",
}


def test_a_firing_group_opens_one_incident_and_pages_the_on_call(story: Monitoring) -> None:
    response = story.post("/ingest/grafana", GRAFANA_FIRING)

    assert response.status_code == 200, response.text
    [opened] = story.incidents()
    assert response.json()["incident_id"] == opened["id"]
    assert (opened["source"], opened["external_key"]) == ("grafana", GRAFANA_FIRING["groupKey"])
    assert opened["severity"] == "critical"
    assert opened["components"] == ["api", "billing"], "no common component: each alert's service"
    assert opened["title"] == "This alert was triggered for zone us-1"
    [notice] = story.updates()
    assert notice["audience"] == "internal" and notice["author"] == "monitoring:grafana"
    body = text_of(story.mailbox(ON_CALL)[0])
    assert "High memory usage" in body and "High CPU usage" in body
    assert "https://grafana.example.com/d/memory" in body
    assert story.mailbox(CUSTOMER) == []


def test_a_repeat_is_idempotent_and_resolved_moves_to_monitoring(story: Monitoring) -> None:
    first = story.post("/ingest/grafana", GRAFANA_FIRING).json()
    repeat = story.post("/ingest/grafana", GRAFANA_FIRING).json()
    assert (repeat["incident_id"], repeat["repeat"], repeat["updates"]) == (first["incident_id"], True, [])
    assert len(story.updates()) == 1

    done = resolved(GRAFANA_FIRING)
    done["state"] = "ok"
    answer = story.post("/ingest/grafana", done).json()

    assert answer["action"] == "monitoring"
    assert story.incidents()[0]["status"] == "monitoring"
    assert "monitoring reports recovery; confirm before announcing" in text_of(story.mailbox(ON_CALL)[-1])


def test_a_critical_public_update_from_monitoring_waits_for_approval(public_story: Monitoring) -> None:
    """Critical incidents need a second person (default policy): monitoring is not one."""
    story = public_story
    story.post("/ingest/grafana", GRAFANA_FIRING)
    [public] = story.updates("public")
    assert public["state"] == "pending_approval"
    assert story.mailbox(CUSTOMER) == []
    assert "waits for a person's approval" in text_of(story.mailbox(ON_CALL)[0])


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda p: p.update(status="pending"), "status"),
        (lambda p: p["alerts"][0].pop("labels"), "alerts.0.labels"),
        (lambda p: p["alerts"][0].update(values={"B": "lots"}), "alerts.0.values.B"),
    ],
    ids=["bad status", "no labels", "bad value"],
)
def test_a_bad_payload_gets_a_problem_naming_the_field(
    story: Monitoring, change: Callable[[dict[str, Any]], object], field: str
) -> None:
    payload = copy.deepcopy(GRAFANA_FIRING)
    change(payload)
    response = story.post("/ingest/grafana", payload)
    assert response.status_code == 422
    assert field in [e["field"] for e in response.json()["errors"]]
    assert story.incidents() == []


def test_no_token_no_incident(story: Monitoring) -> None:
    assert story.post("/ingest/grafana", GRAFANA_FIRING, token=None).status_code == 401
    assert story.incidents() == []
