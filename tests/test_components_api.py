"""The status page's components and maintenance through the HTTP API: what a change does to the
published site, and who may make it."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from dispatcher.access.tokens import Scope
from dispatcher.engine.runtime import Runtime
from tests.api_client import Api, api_fixture  # noqa: F401
from tests.test_statuspage import site_options, with_statuspage


@pytest.fixture
def rt(make_runtime: Callable[..., Runtime], tmp_path: Path) -> Runtime:
    return with_statuspage(make_runtime, {**site_options(tmp_path), "components": []})


def site(tmp_path: Path, name: str) -> dict[str, object]:
    loaded: dict[str, object] = json.loads((tmp_path / "www" / "status" / name).read_text())
    return loaded


def test_components_are_added_ordered_and_set_by_hand_and_the_site_follows(api: Api, tmp_path: Path) -> None:
    publisher = api.auth(Scope.PUBLISH, name="alice")
    for name, group in (("API", None), ("Checkout", "Payments"), ("Refunds", "Payments")):
        made = api.http.post("/components", json={"name": name, "group": group}, headers=publisher)
        assert made.status_code == 201, made.text
        assert made.json()["published"] == {"directory": None}
    clash = api.http.post("/components", json={"name": "api"}, headers=publisher)
    assert clash.status_code == 409 and "taken by the component 'API'" in clash.text

    ordered = api.http.put("/components/order", json={"order": ["refunds", "Checkout"]}, headers=publisher)
    assert [c["name"] for c in ordered.json()["components"]] == ["Refunds", "Checkout", "API"]
    assert [c["name"] for c in site(tmp_path, "tocsin-status.json")["components"]] == [
        "Refunds",
        "Checkout",
        "API",
    ]  # type: ignore[index]

    changed = api.http.post(
        "/components/checkout/status", json={"status": "partial outage"}, headers=publisher
    )
    assert changed.status_code == 200, changed.text
    assert (changed.json()["component"]["status"], changed.json()["component"]["status_set_by"]) == (
        "partial_outage",
        "alice",
    )
    summary = site(tmp_path, "api/v2/summary.json")
    assert {c["name"]: c["status"] for c in summary["components"]}["Checkout"] == "partial_outage"  # type: ignore[index, union-attr]
    assert summary["status"] == {"indicator": "major", "description": "Partial System Outage"}

    renamed = api.http.patch(
        "/components/api", json={"name": "Public API", "description": "REST"}, headers=publisher
    )
    assert (renamed.json()["component"]["name"], renamed.json()["component"]["slug"]) == ("Public API", "api")

    bad = api.http.post("/components/checkout/status", json={"status": "on fire"}, headers=publisher)
    assert bad.status_code == 422 and "status: 'on fire' is not one of" in bad.text
    assert (
        api.http.post(
            "/components/nope/status", json={"status": "operational"}, headers=publisher
        ).status_code
        == 404
    )
    reader = api.auth(Scope.READ)
    assert api.http.get("/components", headers=reader).status_code == 200
    assert api.http.post("/components", json={"name": "X"}, headers=reader).status_code == 403


def test_maintenance_is_scheduled_listed_and_cancelled(api: Api, tmp_path: Path) -> None:
    publisher = api.auth(Scope.PUBLISH)
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=3)
    made = api.http.post(
        "/maintenance",
        json={
            "title": "Database upgrade",
            "starts_at": start.isoformat(),
            "ends_at": (start + timedelta(hours=1)).isoformat(),
        },
        headers=publisher,
    )
    assert made.status_code == 201, made.text
    api.deliver()
    window = made.json()
    upcoming = site(tmp_path, "api/v2/scheduled-maintenances/upcoming.json")["scheduled_maintenances"]
    assert [m["id"] for m in upcoming] == [str(window["id"])]  # type: ignore[union-attr, index]
    listed = api.http.get("/maintenance", headers=api.auth(Scope.READ)).json()
    assert [m["title"] for m in listed] == ["Database upgrade"]

    cancelled = api.http.post(f"/maintenance/{window['id']}/cancel", headers=publisher)
    assert cancelled.status_code == 200 and cancelled.json()["maintenance_stage"] == "cancelled"
    api.deliver()
    assert site(tmp_path, "api/v2/scheduled-maintenances/upcoming.json")["scheduled_maintenances"] == []
    backwards = api.http.post(
        "/maintenance",
        json={
            "title": "Backwards",
            "starts_at": start.isoformat(),
            "ends_at": (start - timedelta(hours=1)).isoformat(),
        },
        headers=publisher,
    )
    assert backwards.status_code == 409  # two times in the wrong order: refused, not malformed
