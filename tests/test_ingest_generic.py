"""The generic ingest body, posted to the real app: an HMAC signature over timestamp and raw body (checked
in constant time, refused when stale or wrong) or the bearer token; bad bodies name their field."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from httpx import Response

from dispatcher.engine.runtime import Runtime
from dispatcher.ingest.generic import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign
from tests.test_ingest_alertmanager import HMAC_SECRET, ON_CALL, Monitoring, monitoring_story, text_of

BODY: dict[str, Any] = {
    "key": "db-primary-down",
    "status": "firing",
    "title": "Primary database unreachable",
    "severity": "major",
    "components": ["api", "checkout"],
    "message": "pg-primary-1 refuses connections since 09:12",
    "occurred_at": "2026-11-25T09:12:00Z",
}


@pytest.fixture
def story(make_runtime: Callable[..., Runtime], tmp_path: Path) -> Iterator[Monitoring]:
    yield from monitoring_story(make_runtime, tmp_path)


def signed_post(
    story: Monitoring,
    body: dict[str, Any],
    secret: str = HMAC_SECRET,
    skew: float = 0.0,
    tamper: bool = False,
) -> Response:
    """POST ``body`` signed as sent ``skew`` seconds from now (taken at the call, not at collection)."""
    raw = json.dumps(body).encode()
    timestamp = str(int(time.time() + skew))
    signature = sign(secret, timestamp, raw)
    if tamper:
        raw = raw.replace(b"major", b"minor")
    return story.post(
        "/ingest/generic", raw, token=None, **{SIGNATURE_HEADER: signature, TIMESTAMP_HEADER: timestamp}
    )


def test_a_signed_firing_body_opens_the_incident_and_pages_the_on_call(story: Monitoring) -> None:
    response = signed_post(story, BODY)

    assert response.status_code == 200, response.text
    assert response.json()["action"] == "opened"
    [opened] = story.incidents()
    assert (opened["source"], opened["external_key"]) == ("generic", "db-primary-down")
    assert (opened["title"], opened["severity"], opened["components"]) == (
        "Primary database unreachable",
        "major",
        ["api", "checkout"],
    )
    body = text_of(story.mailbox(ON_CALL)[0])
    assert "pg-primary-1 refuses connections since 09:12" in body, "the message reaches the on-call"
    assert "[monitoring:generic]" in body


def test_the_same_signed_body_twice_is_one_delivery(story: Monitoring) -> None:
    first = signed_post(story, BODY).json()
    again = signed_post(story, BODY).json()
    assert (again["incident_id"], again["repeat"]) == (first["incident_id"], True)
    assert len(story.updates()) == 1


def test_resolved_moves_to_monitoring(story: Monitoring) -> None:
    signed_post(story, BODY)
    answer = signed_post(story, {**BODY, "status": "resolved", "occurred_at": "2026-11-25T09:30:00Z"}).json()
    assert answer["action"] == "monitoring"
    assert story.incidents()[0]["status"] == "monitoring"


@pytest.mark.parametrize(
    ("how", "detail"),
    [
        ({"secret": "not-the-secret"}, "does not match"),
        ({"tamper": True}, "does not match"),
        ({"skew": -600}, "stale or replayed"),
        ({"skew": 600}, "stale or replayed"),
    ],
    ids=["wrong secret", "body changed after signing", "stale", "from the future"],
)
def test_a_bad_or_stale_signature_is_refused_and_changes_nothing(
    story: Monitoring, how: dict[str, Any], detail: str
) -> None:
    response = signed_post(story, BODY, **how)
    assert response.status_code == 401
    assert detail in response.json()["detail"]
    assert story.incidents() == [] and story.updates() == []


def test_a_signature_without_its_timestamp_is_refused(story: Monitoring) -> None:
    raw = json.dumps(BODY).encode()
    response = story.post(
        "/ingest/generic", raw, token=None, **{SIGNATURE_HEADER: sign(HMAC_SECRET, "0", raw)}
    )
    assert response.status_code == 401
    assert story.incidents() == []


def test_the_bearer_token_works_instead_of_a_signature(story: Monitoring) -> None:
    assert story.post("/ingest/generic", BODY).status_code == 200
    assert story.post("/ingest/generic", {**BODY, "key": "other"}, token=None).status_code == 401
    assert len(story.incidents()) == 1


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"title": None}, "title"),
        ({"status": "broken"}, "status"),
        ({"severity": "apocalyptic"}, "severity"),
        ({"components": "api"}, "components"),
        ({"colour": "red"}, "colour"),
        # Read strictly, as the OpenAPI description states the fields: no number as a time, no number
        # as a text, no title that is blank once trimmed.
        ({"occurred_at": 0}, "occurred_at"),
        ({"key": 42}, "key"),
        ({"title": "  a  "}, "title"),
    ],
)
def test_a_bad_body_names_its_field(story: Monitoring, change: dict[str, Any], field: str) -> None:
    body = {k: v for k, v in {**BODY, **change}.items() if v is not None}
    response = signed_post(story, body)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert field in [e["field"] for e in response.json()["errors"]]
    assert story.incidents() == []
