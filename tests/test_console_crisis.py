"""The console's crisis-comms forms (issue 17), driven as a person does: give a breach's data facts, compose
an update with its impact statement, publish the post-incident report and make amends. Real app, real
database."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from dispatcher.comms.closure import resolve
from dispatcher.comms.incidents import get_incident
from dispatcher.domain.identity import Identity
from dispatcher.domain.models import Severity
from dispatcher.engine.runtime import Runtime
from dispatcher.runners.embedded import EmbeddedRunner
from dispatcher.store.schema import incident_reports, updates
from dispatcher.web.app import create_app
from tests.helpers import draft, incident, publish_and_deliver, subscribe
from tests.test_console import Browser

REPORT = (
    "## Summary\nDown.\n## Impact\nAll.\n## Root cause\nA bug.\n## What we did\nFixed.\n"
    "## What we will do\nTests.\n"
)


@pytest.fixture
def browser(rt: Runtime) -> Iterator[Browser]:
    with TestClient(create_app(lambda: rt)) as http:
        yield Browser(http, rt)


def test_a_breach_is_told_with_its_facts_and_impact_from_the_console(browser: Browser) -> None:
    browser.log_in()
    inc = incident(browser.rt, Severity.MINOR)
    subscribe(browser.rt, 1)
    browser.get(f"/console/incidents/{inc.id}")
    facts = {
        "data_affected": "names",
        "data_not_affected": "passwords",
        "customer_actions": "watch for phishing",
        "company_actions": "sessions reset",
    }
    assert browser.post(f"/console/incidents/{inc.id}/facts", facts).status_code == 303
    page = browser.get(f"/console/incidents/{inc.id}")
    assert 'id="data-facts"' in page.text and "watch for phishing" in page.text
    assert get_incident(browser.rt, inc.id).kind == "security"

    form = {"message": "Someone read our customer list. Sorry.", "status": "investigating"}
    form |= {"next_update_in": "1h", "affects": "all customers", "since": "25:99"}
    bad = browser.post(f"/console/incidents/{inc.id}/updates", form)
    assert bad.status_code == 400 and "since: &#39;25:99&#39; is not a time like 09:05" in bad.text
    sent = browser.post(f"/console/incidents/{inc.id}/updates", form | {"since": "2026-01-01T09:05Z"})
    assert sent.status_code == 303, sent.text
    with browser.rt.engine.connect() as conn:
        stored = conn.execute(select(updates.c.impact_statement)).scalar_one()
    assert stored == {"who": "all customers", "since": "2026-01-01T09:05:00Z"}


def test_the_report_and_amends_from_the_console(browser: Browser) -> None:
    browser.log_in()
    rt = browser.rt
    subscribe(rt, 1)
    inc = incident(rt, Severity.MINOR)
    publish_and_deliver(rt, draft(inc, "Checkout is failing. Sorry."))
    runner = EmbeddedRunner(rt)
    resolve(rt, inc.id, Identity("ada"), runner.queue)
    runner.run_until_idle()
    page = browser.get(f"/console/incidents/{inc.id}")
    assert 'id="report-form"' in page.text and 'id="amends-form"' in page.text

    missing = browser.post(f"/console/incidents/{inc.id}/report", {"markdown": "## Summary\nx\n"})
    assert missing.status_code == 400 and "no &#39;## Impact&#39;" in missing.text
    assert browser.post(f"/console/incidents/{inc.id}/report", {"markdown": REPORT}).status_code == 303
    browser.deliveries_finished()
    with rt.engine.connect() as conn:
        assert conn.execute(select(incident_reports.c.root_cause)).scalar_one() == "A bug."
    assert 'id="report"' in browser.get(f"/console/incidents/{inc.id}").text

    amends = browser.post(f"/console/incidents/{inc.id}/amends", {"offer": "A free month. Sorry."})
    assert amends.status_code == 303, amends.text
    browser.deliveries_finished()
    with rt.engine.connect() as conn:
        kinds = list(conn.execute(select(updates.c.kind).order_by(updates.c.id)).scalars())
    assert kinds[-2:] == ["report", "amends"]
