"""No swallowed errors: where a broad ``except`` keeps something running, the error is recorded where a
person sees it. (The tick's isolation of a failing duty and a crashing probe: ``test_readiness.py``.)"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from dispatcher.engine.runtime import Runtime
from dispatcher.reporting.metrics import LedgerCollector
from dispatcher.runners.embedded import EmbeddedRunner
from dispatcher.web.app import create_app
from tests.helpers import incident, subscribe
from tests.test_console import Browser


@pytest.fixture
def browser(rt: Runtime) -> Iterator[Browser]:
    with TestClient(create_app(lambda: rt)) as http:
        yield Browser(http, rt)


def test_a_background_send_that_stops_is_shown_to_the_person_who_pressed_send(
    browser: Browser, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The issue: the console's background send swallowed its error; the sender was never told."""

    def database_went_away(self: EmbeddedRunner, wait_up_to: float = 0.0) -> object:
        raise RuntimeError("the database went away mid-delivery")

    monkeypatch.setattr(EmbeddedRunner, "run_until_idle", database_went_away)
    subscribe(browser.rt, 2)
    inc = incident(browser.rt)
    browser.log_in()
    form = {
        "message": "We are investigating failed checkouts. Sorry.",
        "status": "investigating",
        "next_update_in": "30m",
    }
    sent = browser.post(f"/console/incidents/{inc.id}/updates", {**form, "channel": ["email"]})
    assert sent.status_code == 303
    browser.deliveries_finished()

    progress = browser.get(sent.headers["location"] + "/progress").text
    assert (
        "Delivery from this console stopped early: RuntimeError: the database went away mid-delivery"
        in progress
    )
    banner = browser.get("/console/incidents").text
    assert 'id="delivery-problems"' in banner and "the database went away mid-delivery" in banner
    assert "what is still owed is delivered by `tocsin worker`" in banner
    assert "console: background delivery stopped early" in caplog.text and "Traceback" in caplog.text


def test_a_bug_reading_the_ledger_is_not_passed_off_as_a_database_outage(
    rt: Runtime, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def bug(self: LedgerCollector, rt: Runtime) -> Iterator[object]:
        raise KeyError("severity")

    monkeypatch.setattr(LedgerCollector, "_comms", bug)
    with TestClient(create_app(lambda: rt)) as http:
        metrics = http.get("/metrics")
    assert metrics.status_code == 200, "the scrape still answers"
    assert "tocsin_ledger_up 0.0" in metrics.text
    assert "reading the ledger failed (not a database outage: a bug)" in caplog.text
    assert "KeyError: 'severity'" in caplog.text, "with its traceback"
    assert "the database could not be read" not in caplog.text
