"""A resolution saved as a draft with "full report by <date>" keeps that promise when it is published,
however it was saved and sent (API, console, CLI); the rules an update's ``report_by`` follows apply to
the draft's when it is saved, and again when it is sent. Real app, real database."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, select

from dispatcher.access.tokens import Scope
from dispatcher.comms.drafts import get_draft, list_drafts
from dispatcher.domain.drafts import DraftState
from dispatcher.domain.models import Severity
from dispatcher.engine.runtime import Runtime
from dispatcher.store.schema import incidents, updates
from dispatcher.web.app import create_app
from tests.api_client import Api, api_fixture  # noqa: F401
from tests.cli import tocsin
from tests.helpers import hand_clock, incident, subscribe
from tests.test_console import Browser
from tests.test_console_messages import field

POLICY = """
[severity.critical]
cadence = "30m"
report_within = "5d"
[severity.major]
cadence = "1h"
report_within = "5d"
[severity.minor]
cadence = "3h"
"""
FIXED = "Card payments work again for everyone since 10:40 UTC. We are sorry."


@pytest.fixture
def rt(make_runtime: Callable[..., Runtime], tmp_path: Path) -> Runtime:
    """A runtime whose policy promises a major incident's report within five days by default."""
    (tmp_path / "policy.toml").write_text(POLICY)
    return make_runtime(policy_file=tmp_path / "policy.toml", organisation="Example Corp")


@pytest.fixture
def browser(rt: Runtime) -> Iterator[Browser]:
    with TestClient(create_app(lambda: rt)) as http:
        yield Browser(http, rt)


def promised(rt: Runtime) -> tuple[object, object]:
    """The published update's promise and the incident's report deadline, as stored."""
    with rt.engine.connect() as conn:
        report_by = conn.execute(select(updates.c.report_by)).scalar_one()
        due = conn.execute(select(incidents.c.report_due_at)).scalar_one()
    return report_by, due


def iso(when: datetime) -> str:
    return when.astimezone(UTC).isoformat().replace("+00:00", "Z")


def test_a_resolution_drafted_through_the_api_keeps_its_report_date(api: Api) -> None:
    subscribe(api.rt, 1)
    inc = incident(api.rt, Severity.MAJOR)
    alice = api.auth(Scope.READ, Scope.PUBLISH, name="alice")
    bob = api.auth(Scope.PUBLISH, name="bob")
    report_by = api.rt.clock.now() + timedelta(days=2)
    body = {"message": FIXED, "status": "resolved", "report_by": iso(report_by)}

    created = api.http.post(f"/incidents/{inc.id}/drafts", json=body, headers=alice)

    assert created.status_code == 201, created.text
    draft = created.json()
    assert datetime.fromisoformat(draft["report_by"]) == report_by
    shown = api.http.get(f"/drafts/{draft['id']}", headers=alice).json()
    assert datetime.fromisoformat(shown["report_by"]) == report_by
    left_out = api.http.patch(f"/drafts/{draft['id']}", json={"message": FIXED + " Thanks."}, headers=alice)
    assert left_out.status_code == 200, left_out.text
    assert datetime.fromisoformat(left_out.json()["report_by"]) == report_by, "left out: unchanged"
    removed = api.http.patch(f"/drafts/{draft['id']}", json={"report_by": None}, headers=alice)
    assert removed.status_code == 200 and removed.json()["report_by"] is None, "null: removed"
    later = report_by + timedelta(days=1)
    given = api.http.patch(f"/drafts/{draft['id']}", json={"report_by": iso(later)}, headers=alice)
    assert given.status_code == 200, given.text

    sent = api.http.post(
        f"/drafts/{draft['id']}/publish", json={"version": given.json()["version"]}, headers=bob
    )

    assert sent.status_code == 201, sent.text
    assert datetime.fromisoformat(sent.json()["update"]["report_by"]) == later
    api.deliver()
    assert promised(api.rt) == (later, later), "the draft's date, not the policy's five days"


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ({"status": "monitoring", "report_by": "2099-01-01T17:00:00Z"}, "only a resolution promises"),
        ({"status": "resolved", "report_by": "2099-01-01T17:00:00"}, "give a time zone"),
        ({"status": "resolved", "report_by": "2000-01-01T17:00:00Z"}, "must be in the future"),
    ],
)
def test_a_draft_report_date_an_update_would_refuse_is_refused_when_saved(
    api: Api, body: dict[str, str], problem: str
) -> None:
    inc = incident(api.rt, Severity.MAJOR)
    headers = api.auth(Scope.PUBLISH)

    refused = api.http.post(f"/incidents/{inc.id}/drafts", json={"message": FIXED, **body}, headers=headers)

    assert refused.status_code == 409, refused.text
    assert f"report_by: {problem}" in refused.text
    assert list_drafts(api.rt, inc.id) == [], "nothing half-written"


def test_a_draft_cannot_stop_resolving_and_keep_the_report_date(api: Api) -> None:
    inc = incident(api.rt, Severity.MAJOR)
    headers = api.auth(Scope.READ, Scope.PUBLISH)
    body = {"message": FIXED, "status": "resolved", "report_by": iso(api.rt.clock.now() + timedelta(days=2))}
    draft = api.http.post(f"/incidents/{inc.id}/drafts", json=body, headers=headers).json()

    refused = api.http.patch(f"/drafts/{draft['id']}", json={"status": "monitoring"}, headers=headers)

    assert refused.status_code == 409, refused.text
    assert "report_by: only a resolution promises the post-incident report" in refused.text
    assert get_draft(api.rt, draft["id"]).status.value == "resolved"


def test_a_draft_sent_after_its_report_date_passed_is_refused_naming_it(api: Api) -> None:
    """Saved in time, sent too late: publishing checks the promise again (no promise already broken)."""
    subscribe(api.rt, 1)
    inc = incident(api.rt, Severity.MAJOR)
    headers = api.auth(Scope.READ, Scope.PUBLISH)
    clock = hand_clock(api.rt)
    body = {"message": FIXED, "status": "resolved", "report_by": iso(clock.now() + timedelta(hours=2))}
    draft = api.http.post(f"/incidents/{inc.id}/drafts", json=body, headers=headers).json()
    clock.advance(hours=3)

    sent = api.http.post(f"/drafts/{draft['id']}/publish", headers=headers)

    assert sent.status_code == 409, sent.text
    assert "report_by: must be in the future" in sent.text
    assert get_draft(api.rt, draft["id"]).state is DraftState.OPEN


def test_tocsin_drafts_keep_the_report_date(tmp_path: Path) -> None:
    assert tocsin("init", cwd=tmp_path).code == 0
    (tmp_path / "policy.toml").write_text(POLICY)
    assert tocsin("incident", "open", "Card payments", "--severity", "major", cwd=tmp_path).code == 0
    said = ["--status", "resolved", "--message", FIXED]

    early = tocsin(
        "drafts",
        "save",
        "1",
        "--status",
        "monitoring",
        "--message",
        FIXED,
        "--report-by",
        "2099-12-01",
        cwd=tmp_path,
    )
    assert early.code != 0 and "report_by: only a resolution promises the post-incident report" in early.err
    saved = tocsin("drafts", "save", "1", *said, "--report-by", "2099-12-01", "--as", "alice", cwd=tmp_path)
    assert saved.code == 0, saved.err
    assert "full report by: 2099-12-01 17:00 UTC" in tocsin("drafts", "show", "1", cwd=tmp_path).out
    removed = tocsin("drafts", "edit", "1", "--report-by", "", cwd=tmp_path)
    assert removed.code == 0, removed.err
    assert "full report by" not in tocsin("drafts", "show", "1", cwd=tmp_path).out
    edited = tocsin("drafts", "edit", "1", "--report-by", "2099-12-02T12:00Z", "--as", "bob", cwd=tmp_path)
    assert edited.code == 0, edited.err
    assert "full report by: 2099-12-02 12:00 UTC" in tocsin("drafts", "show", "1", cwd=tmp_path).out

    sent = tocsin("drafts", "publish", "1", "--as", "carol", cwd=tmp_path)

    assert sent.code == 0, sent.err
    post = json.loads((tmp_path / "outbox" / "update-1" / "social" / "1.json").read_text())
    assert "will follow by" in post["text"] and "2099" in post["text"]
    with create_engine(f"sqlite:///{tmp_path / 'tocsin.db'}").connect() as conn:
        stored = conn.execute(select(updates.c.report_by)).scalar_one()
    assert stored is not None and stored.replace(tzinfo=UTC) == datetime(2099, 12, 2, 12, 0, tzinfo=UTC)


def test_a_resolution_drafted_in_the_console_keeps_its_report_date(browser: Browser) -> None:
    rt = browser.rt
    subscribe(rt, 1)
    inc = incident(rt, Severity.MAJOR)
    browser.log_in(name="alice")
    browser.get(f"/console/incidents/{inc.id}")
    form = {"message": FIXED, "status": "resolved", "next_update_in": "", "report_by": "2099-12-01"}

    saved = browser.post(f"/console/incidents/{inc.id}/drafts", form)

    assert saved.status_code == 303, saved.text
    (kept,) = list_drafts(rt, inc.id)
    assert kept.report_by == datetime(2099, 12, 1, 17, 0, tzinfo=UTC)
    opened = browser.get(f"/console/incidents/{inc.id}?draft={kept.id}")
    assert opened.status_code == 200, opened.text
    assert field(opened.text, "report_by") == "2099-12-01T17:00Z"

    # The reopened draft's preview promises the report by that date, as an update's preview does.
    again = form | {"report_by": field(opened.text, "report_by"), "message": field(opened.text, "message")}
    preview = browser.post(f"/console/incidents/{inc.id}/preview", again)
    assert preview.status_code == 200
    assert "will follow by" in preview.text and "2099" in preview.text

    sent = browser.post(
        f"/console/incidents/{inc.id}/updates",
        again | {"draft_id": str(kept.id), "draft_version": field(opened.text, "draft_version")},
    )

    assert sent.status_code == 303, sent.text
    browser.deliveries_finished()
    when = datetime(2099, 12, 1, 17, 0, tzinfo=UTC)
    assert promised(rt) == (when, when), "the draft's date, not the policy's five days"
    assert get_draft(rt, kept.id).state is DraftState.PUBLISHED


def test_the_console_refuses_a_report_date_it_cannot_read_naming_it(browser: Browser) -> None:
    rt = browser.rt
    inc = incident(rt, Severity.MAJOR)
    browser.log_in(name="alice")
    browser.get(f"/console/incidents/{inc.id}")
    form = {"message": FIXED, "status": "resolved", "next_update_in": "", "report_by": "next week"}

    refused = browser.post(f"/console/incidents/{inc.id}/drafts", form)

    assert refused.status_code == 400, refused.text
    assert "report_by: &#39;next week&#39; is not a date (2026-12-01) or a span (5d)" in refused.text
    assert list_drafts(rt, inc.id) == []
