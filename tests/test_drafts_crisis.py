"""Drafts keep what crisis-comms practice asks an update to say (issues 16 and 17 together): a draft saved
with an impact statement and a signer, in the console or through the API, keeps both; reopened, the form
shows them; published, the update carries them. Real app, real database."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, select, update

from dispatcher.access.tokens import Scope
from dispatcher.comms.drafts import get_draft, list_drafts, publish_draft
from dispatcher.domain.drafts import DraftState
from dispatcher.domain.models import Severity
from dispatcher.engine.runtime import Runtime
from dispatcher.runners.embedded import EmbeddedRunner
from dispatcher.store.schema import drafts, updates
from dispatcher.web.app import create_app
from tests.api_client import Api, api_fixture  # noqa: F401
from tests.cli import tocsin
from tests.helpers import incident, subscribe
from tests.test_console import Browser
from tests.test_console_messages import field

POLICY = """
[signatories.ceo]
name = "Jane Doe"
role = "Chief Executive"

[signatories.cto]
name = "Sam Lee"
role = "Chief Technology Officer"

[severity.critical]
cadence = "30m"
needs_signer = true
[severity.major]
cadence = "1h"
[severity.minor]
cadence = "3h"
"""
JANE = {"key": "ceo", "name": "Jane Doe", "role": "Chief Executive"}
MESSAGE = "Card payments fail for some customers; we are on it. We are sorry."
STATEMENT = {
    "who": "EU customers",
    "not_working": "card payments",
    "since": "2026-01-01T09:05:00Z",
    "workaround": "pay by bank transfer",
}


@pytest.fixture
def rt(make_runtime: Callable[..., Runtime], tmp_path: Path) -> Runtime:
    """A runtime whose policy names two signatories and wants critical updates signed."""
    (tmp_path / "policy.toml").write_text(POLICY)
    return make_runtime(policy_file=tmp_path / "policy.toml", organisation="Example Corp")


@pytest.fixture
def browser(rt: Runtime) -> Iterator[Browser]:
    with TestClient(create_app(lambda: rt)) as http:
        yield Browser(http, rt)


def published_crisis_fields(rt: Runtime) -> tuple[object, object]:
    with rt.engine.connect() as conn:
        row = conn.execute(select(updates.c.impact_statement, updates.c.signer)).one()
    return row.impact_statement, row.signer


def selected_signer(page: str) -> str | None:
    chooser = page.split('id="signer"', 1)[1].split("</select>", 1)[0]
    found = re.search(r'<option value="([^"]*)" selected>', chooser)
    return found.group(1) if found else None


def test_a_draft_saved_in_the_console_keeps_its_impact_and_signer_to_publication(browser: Browser) -> None:
    rt = browser.rt
    subscribe(rt, 1)
    inc = incident(rt, Severity.MINOR)
    browser.log_in(name="alice")
    browser.get(f"/console/incidents/{inc.id}")
    form = {
        "message": MESSAGE,
        "status": "investigating",
        "next_update_in": "1h",
        "affects": "EU customers",
        "not_working": "card payments",
        "since": "2026-01-01T09:05Z",
        "workaround": "pay by bank transfer",
        "signer": "ceo",
    }

    saved = browser.post(f"/console/incidents/{inc.id}/drafts", form)

    assert saved.status_code == 303, saved.text
    (kept,) = list_drafts(rt, inc.id)
    assert kept.signer == "ceo"
    assert kept.impact_statement is not None
    assert kept.impact_statement.model_dump(mode="json") == STATEMENT

    opened = browser.get(f"/console/incidents/{inc.id}?draft={kept.id}")
    assert opened.status_code == 200, opened.text
    reopened = {name: field(opened.text, name) for name in ("affects", "not_working", "since", "workaround")}
    assert reopened == {
        "affects": "EU customers",
        "not_working": "card payments",
        "since": "2026-01-01T09:05Z",
        "workaround": "pay by bank transfer",
    }
    assert selected_signer(opened.text) == "ceo"

    # The preview of the reopened draft (the form posts itself on load) shows both, as an update's does.
    again = reopened | {"message": field(opened.text, "message"), "status": "investigating", "signer": "ceo"}
    again |= {"next_update_in": field(opened.text, "next_update_in")}
    preview = browser.post(f"/console/incidents/{inc.id}/preview", again)
    assert preview.status_code == 200
    assert "Jane Doe" in preview.text and "pay by bank transfer" in preview.text

    sent = browser.post(
        f"/console/incidents/{inc.id}/updates",
        again | {"draft_id": str(kept.id), "draft_version": field(opened.text, "draft_version")},
    )
    assert sent.status_code == 303, sent.text
    browser.deliveries_finished()
    assert published_crisis_fields(rt) == (STATEMENT, JANE)
    assert get_draft(rt, kept.id).state is DraftState.PUBLISHED


def test_a_draft_saved_in_the_console_and_sent_through_the_api_keeps_them(
    browser: Browser, rt: Runtime
) -> None:
    """Whoever sends it, the draft is what is sent: not the form that happened to be open."""
    subscribe(rt, 1)
    inc = incident(rt, Severity.MINOR)
    browser.log_in(name="alice")
    browser.get(f"/console/incidents/{inc.id}")
    form = {"message": MESSAGE, "status": "investigating", "next_update_in": "1h"}
    form |= {"affects": "EU customers", "signer": "cto"}
    assert browser.post(f"/console/incidents/{inc.id}/drafts", form).status_code == 303
    (kept,) = list_drafts(rt, inc.id)

    runner = EmbeddedRunner(rt)
    published = publish_draft(rt, kept.id, runner.queue, "bob")
    runner.run_until_idle()

    assert (
        published.update.signer is not None
        and published.update.signer.line == "Sam Lee, Chief Technology Officer"
    )
    assert published.update.impact_statement is not None
    assert published.update.impact_statement.who == "EU customers"


def test_a_draft_whose_signer_left_the_policy_keeps_it_and_sending_says_why(browser: Browser) -> None:
    """Reopened, the form still names the signer (not "nobody"), so sending is refused, not unsigned."""
    rt = browser.rt
    inc = incident(rt, Severity.MINOR)
    browser.log_in(name="alice")
    browser.get(f"/console/incidents/{inc.id}")
    form = {"message": MESSAGE, "status": "investigating", "next_update_in": "1h", "signer": "cto"}
    assert browser.post(f"/console/incidents/{inc.id}/drafts", form).status_code == 303
    (kept,) = list_drafts(rt, inc.id)
    with rt.engine.begin() as conn:  # the policy's cto was renamed since: the draft names someone gone
        conn.execute(update(drafts).where(drafts.c.id == kept.id).values(signer="vp"))

    opened = browser.get(f"/console/incidents/{inc.id}?draft={kept.id}")

    assert selected_signer(opened.text) == "vp"
    assert "vp (not in the policy's signatories)" in opened.text
    sent = browser.post(
        f"/console/incidents/{inc.id}/updates",
        form
        | {"signer": "vp", "draft_id": str(kept.id), "draft_version": field(opened.text, "draft_version")},
    )
    assert sent.status_code == 400
    assert "signer: no signatory named &#39;vp&#39; in the policy (known: ceo, cto)" in sent.text
    assert get_draft(rt, kept.id).state is DraftState.OPEN


def test_a_draft_through_the_api_holds_its_impact_and_signer(api: Api) -> None:
    subscribe(api.rt, 1)
    inc = incident(api.rt, Severity.MINOR)
    alice = api.auth(Scope.READ, Scope.PUBLISH, name="alice")
    bob = api.auth(Scope.PUBLISH, name="bob")
    body = {"message": MESSAGE, "status": "investigating", "next_update_in": "1h", "signer": "ceo"}
    body |= {"impact_statement": STATEMENT}

    created = api.http.post(f"/incidents/{inc.id}/drafts", json=body, headers=alice)

    assert created.status_code == 201, created.text
    draft = created.json()
    assert (draft["impact_statement"], draft["signer"]) == (STATEMENT, "ceo")
    shown = api.http.get(f"/drafts/{draft['id']}", headers=alice).json()
    assert (shown["impact_statement"], shown["signer"]) == (STATEMENT, "ceo")

    unknown = api.http.patch(f"/drafts/{draft['id']}", json={"signer": "cfo"}, headers=alice)
    assert unknown.status_code == 409, unknown.text
    assert "signer: no signatory named 'cfo' in the policy (known: ceo, cto)" in unknown.text
    naive = api.http.patch(
        f"/drafts/{draft['id']}", json={"impact_statement": {"since": "2026-01-01T09:05:00"}}, headers=alice
    )
    assert naive.status_code == 422 and "time zone" in naive.text

    left_out = api.http.patch(f"/drafts/{draft['id']}", json={"message": MESSAGE + " Retry."}, headers=alice)
    assert left_out.status_code == 200, left_out.text
    assert (left_out.json()["impact_statement"], left_out.json()["signer"]) == (STATEMENT, "ceo")
    removed = api.http.patch(
        f"/drafts/{draft['id']}", json={"impact_statement": None, "signer": None}, headers=alice
    )
    assert (removed.json()["impact_statement"], removed.json()["signer"]) == (None, None)
    blank = api.http.patch(f"/drafts/{draft['id']}", json={"signer": ""}, headers=alice)
    assert blank.status_code == 200 and blank.json()["signer"] is None, "as for an update: empty is none"
    given = api.http.patch(
        f"/drafts/{draft['id']}",
        json={
            "impact_statement": {"who": "EU customers"},
            "signer": "ceo",
            "version": blank.json()["version"],
        },
        headers=bob,
    )
    assert given.status_code == 200, given.text
    assert given.json()["impact_statement"] == {
        "who": "EU customers",
        "not_working": None,
        "since": None,
        "workaround": None,
    }

    sent = api.http.post(
        f"/drafts/{draft['id']}/publish", json={"version": given.json()["version"]}, headers=bob
    )

    assert sent.status_code == 201, sent.text
    update = sent.json()["update"]
    assert update["signer"] == JANE
    assert update["impact_statement"]["who"] == "EU customers"
    api.deliver()
    assert published_crisis_fields(api.rt) == ({"who": "EU customers"}, JANE)


def test_an_unknown_signer_is_refused_when_the_draft_is_saved(api: Api) -> None:
    inc = incident(api.rt, Severity.MINOR)
    body = {"message": MESSAGE, "status": "investigating", "signer": "cfo"}
    refused = api.http.post(f"/incidents/{inc.id}/drafts", json=body, headers=api.auth(Scope.PUBLISH))
    assert refused.status_code == 409, refused.text
    assert "signer: no signatory named 'cfo'" in refused.text
    assert list_drafts(api.rt, inc.id) == [], "nothing half-written"


def test_a_critical_draft_signed_as_the_policy_wants_can_be_published(api: Api) -> None:
    """Before drafts kept the signer, a critical draft could never go out: the policy wants it signed."""
    subscribe(api.rt, 1)
    inc = incident(api.rt, Severity.CRITICAL)
    headers = api.auth(Scope.PUBLISH)
    body = {"message": MESSAGE, "status": "investigating", "next_update_in": "30m", "signer": "ceo"}
    body |= {"impact_statement": {"who": "everyone"}}
    created = api.http.post(f"/incidents/{inc.id}/drafts", json=body, headers=headers)
    assert created.status_code == 201, created.text

    sent = api.http.post(f"/drafts/{created.json()['id']}/publish", headers=headers)

    assert sent.status_code == 201, sent.text
    assert sent.json()["update"]["signer"] == JANE


def test_tocsin_drafts_keep_the_impact_statement_and_the_signer(tmp_path: Path) -> None:
    assert tocsin("init", cwd=tmp_path).code == 0
    (tmp_path / "policy.toml").write_text(POLICY)
    assert tocsin("incident", "open", "Card payments", "--severity", "minor", cwd=tmp_path).code == 0
    said = ["--status", "investigating", "--message", MESSAGE, "--next-update-in", "1h"]
    crisis = ["--affects", "EU customers", "--since", "2026-01-01T09:05Z", "--signer", "ceo"]

    unknown = tocsin("drafts", "save", "1", *said, "--signer", "cfo", cwd=tmp_path)
    assert unknown.code != 0 and "signer: no signatory named 'cfo'" in unknown.err
    saved = tocsin("drafts", "save", "1", *said, *crisis, "--as", "alice", cwd=tmp_path)
    assert saved.code == 0, saved.err
    edited = tocsin(
        "drafts", "edit", "1", "--workaround", "pay by bank transfer", "--as", "bob", cwd=tmp_path
    )
    assert edited.code == 0, edited.err
    shown = tocsin("drafts", "show", "1", cwd=tmp_path)
    assert "impact, affects: EU customers" in shown.out
    assert "impact, since: 2026-01-01 09:05 UTC" in shown.out
    assert "impact, meanwhile: pay by bank transfer" in shown.out
    assert "signed by: ceo" in shown.out

    sent = tocsin("drafts", "publish", "1", "--as", "carol", cwd=tmp_path)

    assert sent.code == 0, sent.err
    post = json.loads((tmp_path / "outbox" / "update-1" / "social" / "1.json").read_text())
    assert (
        "Affects EU customers. Since Thu, Jan 1, 9:05 AM UTC. Meanwhile: pay by bank transfer."
        in post["text"]
    )
    with create_engine(f"sqlite:///{tmp_path / 'tocsin.db'}").connect() as conn:
        assert conn.execute(select(updates.c.signer)).scalar_one() == JANE
