"""Mid-incident changes: a major incident escalated to critical gets critical's channels, approval and
cadence at once; title and components change with who and why on the timeline; each update may say how
hard each component is hit, which the status page shows and ``component_impacts`` keeps, with the time
it took effect, for uptime."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from channels.base import ChannelKind
from dispatcher.access.tokens import Scope, create_token
from dispatcher.comms.changes import change_incident
from dispatcher.comms.closure import resolve
from dispatcher.comms.incidents import get_incident
from dispatcher.comms.lifecycle import timeline
from dispatcher.comms.publish import publish
from dispatcher.config.settings import ChannelSettings
from dispatcher.domain.errors import GuardrailsBlocked, InvalidInput
from dispatcher.domain.identity import Identity
from dispatcher.domain.models import ComponentImpact, Severity
from dispatcher.engine.runtime import Runtime
from dispatcher.runners.embedded import EmbeddedRunner
from dispatcher.store.schema import component_impacts
from dispatcher.web.app import create_app
from tests.cli import tocsin
from tests.helpers import RecordingQueue, draft, hand_clock, incident

POLICY = """
[severity.critical]
cadence = "30m"
needs_approval = true
channels = ["email", "sms"]
[severity.major]
cadence = "60m"
channels = ["email"]
[severity.minor]
cadence = "3h"
channels = ["email"]
"""


def test_escalating_to_critical_applies_its_policy_at_once(tmp_path: Path) -> None:
    assert tocsin("init", cwd=tmp_path).code == 0
    (tmp_path / "policy.toml").write_text(POLICY)
    (tmp_path / "people.csv").write_text("name,email,phone\nAda,ada@example.com,+12025550123\n")
    assert tocsin("subscribers", "import", "people.csv", cwd=tmp_path).code == 0
    tocsin(
        "incident", "open", "Checkout failing", "--severity", "major", "--component", "checkout", cwd=tmp_path
    )
    first = tocsin(
        "publish", "1", "--status", "investigating", "--message", "Checkout fails for some. We are sorry.",
        "--next-update-in", "60m", cwd=tmp_path,
    )  # fmt: skip
    assert first.code == 0, first.err
    assert list(tmp_path.glob("outbox/update-1/email/*.eml")) and not list(
        tmp_path.glob("outbox/update-1/sms/*")
    )

    changed = tocsin(
        "incident", "change", "1", "--severity", "critical", "--reason", "payments fail too", "--as", "grace",
        cwd=tmp_path,
    )  # fmt: skip

    assert changed.code == 0, changed.err
    assert "[critical]" in changed.out
    shown = tocsin("incident", "show", "1", cwd=tmp_path).out
    assert "changed" in shown and "grace" in shown and "payments fail too" in shown
    assert re.search(r"severity major\s*→\s*critical", " ".join(shown.split()))
    assert "next update now due by" in " ".join(shown.split()), "critical's 30 minutes pull the promise in"
    # The next update goes out under critical's rules: a second person approves it, SMS joins.
    writer, checker = (
        tocsin("tokens", "create", name, "--scope", "publish", cwd=tmp_path).out.splitlines()[0]
        for name in ("ada", "bob")
    )
    second = tocsin(
        "publish", "1", "--status", "identified", "--message", "The card processor is down. We are sorry.",
        "--next-update-in", "30m", cwd=tmp_path, env={"TOCSIN_TOKEN": writer},
    )  # fmt: skip
    assert "waits for approval" in second.out, second.err
    assert tocsin("approve", "2", cwd=tmp_path, env={"TOCSIN_TOKEN": checker}).code == 0
    assert list(tmp_path.glob("outbox/update-2/sms/*.json")), "critical's channels joined"


def test_changes_are_recorded_and_checked(rt: Runtime) -> None:
    clock = hand_clock(rt)
    inc = incident(rt, Severity.MAJOR, ["checkout"])
    with pytest.raises(InvalidInput, match="reason"):
        change_incident(rt, inc.id, Identity("ada"), reason=" ", severity=Severity.CRITICAL)
    with pytest.raises(InvalidInput, match="nothing to change"):
        change_incident(rt, inc.id, Identity("ada"), reason="x", severity=Severity.MAJOR)
    with pytest.raises(GuardrailsBlocked, match="title internal-hostname"):
        change_incident(rt, inc.id, Identity("ada"), reason="x", title="db-3.internal is down")

    changed = change_incident(
        rt,
        inc.id,
        Identity("ada"),
        reason="customers call it payments",
        title="Payments failing",
        components=["checkout", "payments"],
    )

    assert (changed.title, changed.components) == ("Payments failing", ["checkout", "payments"])
    [event] = [e for e in timeline(rt, inc.id) if e.kind == "changed"]
    assert event.actor == "ada" and event.at == clock.now()
    assert event.reason == (
        "title 'Checkout failing' → 'Payments failing'; components checkout → checkout, payments; "
        "customers call it payments"
    )
    resolve(rt, inc.id, Identity("ada"), RecordingQueue(), force=True, reason="test")
    with pytest.raises(InvalidInput, match="resolved"):
        change_incident(rt, inc.id, Identity("ada"), reason="x", severity=Severity.MINOR)


def test_a_shorter_cadence_pulls_the_promise_in(rt: Runtime) -> None:
    clock = hand_clock(rt)
    inc = incident(rt, Severity.MINOR, ["checkout"])
    publish(rt, draft(inc, next_update_at=clock.now() + timedelta(hours=3)), RecordingQueue())
    clock.advance(minutes=10)
    changed = change_incident(rt, inc.id, Identity("ada"), reason="worse", severity=Severity.CRITICAL)
    assert changed.next_update_at == clock.now() + timedelta(minutes=30)
    again = change_incident(rt, inc.id, Identity("ada"), reason="better", severity=Severity.MINOR)
    assert again.next_update_at == changed.next_update_at, "a longer cadence never pushes a promise out"


def test_each_update_sets_component_impact_which_the_status_page_shows(
    make_runtime: Callable[..., Runtime], tmp_path: Path
) -> None:
    site = tmp_path / "www" / "status"
    rt = make_runtime(
        channels={ChannelKind.STATUSPAGE: ChannelSettings(providers=["statuspage"])},
        providers={"statuspage": {"directory": str(site), "components": ["api", "checkout", "search"]}},
    )
    clock = hand_clock(rt)
    inc = incident(rt, Severity.MAJOR, ["api", "checkout"])
    runner = EmbeddedRunner(rt)
    app = create_app(lambda: rt)
    app.state.task_queue = lambda: runner.queue
    _, secret = create_token(rt, "ada", [Scope.PUBLISH, Scope.READ])
    headers = {"Authorization": f"Bearer {secret}"}

    def components() -> dict[str, str]:
        return {c["name"]: c["status"] for c in json.loads((site / "status.json").read_text())["components"]}

    with TestClient(app) as http:
        body = {
            "status": "identified",
            "message": "Checkout fails; the API is slow. We are sorry.",
            "next_update_in": "60m",
            "impact": {"checkout": "major_outage", "api": "degraded"},
        }
        assert http.post(f"/incidents/{inc.id}/updates", json=body, headers=headers).status_code == 201
        runner.run_until_idle()
        assert components() == {
            "api": "degraded_performance",
            "checkout": "major_outage",
            "search": "operational",
        }

        clock.advance(minutes=20)
        patched = http.patch(
            f"/incidents/{inc.id}",
            json={"reason": "checkout recovered partly", "impact": {"checkout": "partial_outage"}},
            headers=headers,
        )
        assert patched.status_code == 200, patched.text
        body = {"status": "identified", "message": "Checkout partly works. Sorry.", "next_update_in": "60m"}
        assert http.post(f"/incidents/{inc.id}/updates", json=body, headers=headers).status_code == 201
        runner.run_until_idle()
        assert components()["checkout"] == "partial_outage"

        bad = http.post(
            f"/incidents/{inc.id}/updates", json={**body, "impact": {"checkout": "meh"}}, headers=headers
        )
        assert bad.status_code == 422 and bad.json()["errors"][0]["field"].startswith("impact")

    resolve(rt, inc.id, Identity("ada"), runner.queue, force=True, reason="done")
    runner.run_until_idle()
    assert set(components().values()) == {"operational"}
    with rt.engine.connect() as conn:
        rows = conn.execute(
            select(
                component_impacts.c.component, component_impacts.c.impact, component_impacts.c.source
            ).order_by(component_impacts.c.id)
        ).all()
    assert [tuple(r) for r in rows] == [
        ("checkout", ComponentImpact.MAJOR_OUTAGE.value, "update"),
        ("api", ComponentImpact.DEGRADED_PERFORMANCE.value, "update"),
        ("checkout", ComponentImpact.PARTIAL_OUTAGE.value, "manual"),
        ("api", "operational", "resolved"),
        ("checkout", "operational", "resolved"),
    ]


def test_the_console_changes_an_incident(rt: Runtime) -> None:
    inc = incident(rt, Severity.MAJOR, ["checkout"])
    _, secret = create_token(rt, "carol", [Scope.PUBLISH])
    with TestClient(create_app(lambda: rt)) as http:
        login = http.get("/console/login")
        csrf = login.text.split('name="csrf" value="')[1].split('"')[0]
        http.post("/console/login", data={"token": secret, "csrf": csrf}, follow_redirects=False)
        page = http.get(f"/console/incidents/{inc.id}")
        csrf = page.text.split('name="csrf" value="')[1].split('"')[0]
        assert (
            'id="change-form"' in page.text
            and 'name="impact"' in page.text
            and 'name="internal_note"' in page.text
        )
        done = http.post(
            f"/console/incidents/{inc.id}/change",
            data={
                "csrf": csrf,
                "severity": "critical",
                "title": inc.title,
                "components": "checkout, payments",
                "reason": "payments too",
            },
            follow_redirects=False,
        )
        assert done.status_code == 303, done.text
    after = get_incident(rt, inc.id)
    assert after.severity is Severity.CRITICAL and after.components == ["checkout", "payments"]
    assert [e.actor for e in timeline(rt, inc.id) if e.kind == "changed"] == ["carol"]
