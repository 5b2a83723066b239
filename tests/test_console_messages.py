"""The console's compose form: a template picker that fills the form (and its live preview), a field per
language and per short channel, drafts one person saves and another sends."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from dispatcher.access.tokens import Scope
from dispatcher.audience.subscribers import add_subscribers
from dispatcher.comms.drafts import get_draft, list_drafts
from dispatcher.domain.drafts import DraftState
from dispatcher.domain.models import Severity, Subscriber
from dispatcher.engine.runtime import Runtime
from dispatcher.store.schema import updates
from dispatcher.web.app import create_app
from tests.helpers import incident, person, subscribe
from tests.test_console import Browser


@pytest.fixture
def browser(rt: Runtime) -> Iterator[Browser]:
    with TestClient(create_app(lambda: rt)) as http:
        yield Browser(http, rt)


def field(page: str, name: str) -> str:
    """The value of a form field (input or textarea) of the page's compose form (the resolve form above it
    has a ``message`` of its own)."""
    page = page.split('id="compose"', 1)[-1]
    found = re.search(rf'name="{re.escape(name)}"[^>]*value="([^"]*)"', page) or re.search(
        rf'name="{re.escape(name)}"[^>]*>([^<]*)</textarea>', page
    )
    assert found is not None, name
    return html.unescape(found.group(1))


def test_a_template_fills_the_compose_form_and_its_preview(browser: Browser) -> None:
    add_subscribers(browser.rt, [Subscriber(**person(1, sms=True).model_dump()), person(2, locale="fr")])
    inc = incident(browser.rt, Severity.MAJOR, ["Payments"])
    browser.log_in()

    asking = browser.get(f"/console/incidents/{inc.id}?template=identified-workaround")
    assert asking.status_code == 200
    assert 'name="var_impact"' in asking.text and 'name="var_workaround"' in asking.text
    assert field(asking.text, "template") == "", "nothing is filled in before the values are given"

    filled = browser.get(
        f"/console/incidents/{inc.id}?template=identified-workaround&fill=1"
        "&var_impact=the+failed+card+payments&var_workaround=paying+by+transfer+works."
        "&var_workaround.fr=le+virement+fonctionne."
    )
    assert filled.status_code == 200, filled.text
    message = field(filled.text, "message")
    assert message.startswith("We have found the cause of the failed card payments")
    assert field(filled.text, "template") == "identified-workaround"
    assert "le virement fonctionne." in field(filled.text, "text_fr_message")
    compose_status = filled.text.split('id="compose-status"', 1)[1].split("</select>", 1)[0]
    assert '<option value="identified" selected>' in compose_status

    form = {
        "message": message,
        "status": "identified",
        "next_update_in": "1h",
        "template": "identified-workaround",
        "template_vars": field(filled.text, "template_vars"),
        "text_fr_message": field(filled.text, "text_fr_message"),
        "text_en_sms": field(filled.text, "text_en_sms"),
    }
    preview = browser.post(f"/console/incidents/{inc.id}/preview", form)
    assert preview.status_code == 200
    assert 'data-locale="fr"' in preview.text and "le virement fonctionne." in preview.text
    assert "Cause of the failed card payments found" in preview.text, "the SMS text of its own"


def test_drafts_are_prepared_by_one_person_and_sent_by_another(browser: Browser, rt: Runtime) -> None:
    subscribe(rt, 2)
    inc = incident(rt, Severity.MAJOR, ["Payments"])
    browser.log_in(Scope.PUBLISH, Scope.READ, name="alice")

    saved = browser.post(
        f"/console/incidents/{inc.id}/drafts",
        {
            "message": "Card payments fail for some customers. We are sorry.",
            "status": "investigating",
            "next_update_in": "30m",
            "text_fr_message": "Les paiements par carte échouent. Désolés.",
        },
    )
    assert saved.status_code == 303, saved.text
    (draft,) = list_drafts(rt, inc.id)
    assert saved.headers["location"] == f"/console/incidents/{inc.id}?draft={draft.id}"
    assert draft.author == "alice" and draft.texts is not None and draft.texts["fr"].message
    with rt.engine.connect() as conn:
        assert conn.execute(select(updates.c.id)).first() is None, "saving sends nothing"

    with TestClient(create_app(lambda: rt)) as other:
        bob = Browser(other, rt)
        bob.log_in(Scope.PUBLISH, Scope.READ, name="bob")
        page = bob.get(f"/console/incidents/{inc.id}")
        assert f"#{draft.id} by alice" in page.text
        opened = bob.get(f"/console/incidents/{inc.id}?draft={draft.id}")
        assert field(opened.text, "message") == draft.message
        assert field(opened.text, "draft_version") == "1"
        assert field(opened.text, "text_fr_message") == "Les paiements par carte échouent. Désolés."

        # alice edits meanwhile: bob's form, opened at version 1, must not overwrite her words
        edit = browser.post(
            f"/console/incidents/{inc.id}/drafts",
            {"message": draft.message + " Retry in a minute.", "status": "investigating",
             "next_update_in": "30m", "text_fr_message": "Les paiements par carte échouent. Désolés.",
             "draft_id": str(draft.id), "draft_version": "1"},
        )
        assert edit.status_code == 303
        stale = bob.post(
            f"/console/incidents/{inc.id}/updates",
            {"message": draft.message, "status": "investigating", "next_update_in": "30m",
             "draft_id": str(draft.id), "draft_version": "1"},
        )
        assert stale.status_code == 400 and "changed since version 1" in html.unescape(stale.text)

        fresh = bob.get(f"/console/incidents/{inc.id}?draft={draft.id}")
        sent = bob.post(
            f"/console/incidents/{inc.id}/updates",
            {"message": field(fresh.text, "message"), "status": "investigating", "next_update_in": "30m",
             "text_fr_message": field(fresh.text, "text_fr_message"),
             "draft_id": str(draft.id), "draft_version": field(fresh.text, "draft_version")},
        )
        assert sent.status_code == 303, sent.text
        bob.deliveries_finished()

    done = get_draft(rt, draft.id)
    assert done.state is DraftState.PUBLISHED and done.published_by == "bob"
    with rt.engine.connect() as conn:
        row = conn.execute(select(updates.c.author, updates.c.message, updates.c.texts)).one()
    assert row.author == "bob" and row.message.endswith("Retry in a minute.")
    assert row.texts == {"fr": {"message": "Les paiements par carte échouent. Désolés."}}
