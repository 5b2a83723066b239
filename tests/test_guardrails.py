"""Guardrails: each rule fires on a bad text (pointing at the offending words) and stays quiet on a good
one. Text rules run on plain values; rules that depend on the incident's history run on real databases.
"""

from __future__ import annotations

import json
import re
from datetime import timedelta
from typing import Any

import pytest

from dispatcher.comms.guardrails import check, check_draft, errors, own_email_domains
from dispatcher.domain.guardrail_rules import Draft, Finding
from dispatcher.domain.models import Audience, IncidentStatus, Severity
from dispatcher.engine.runtime import Runtime
from tests.helpers import draft, incident, publish_and_deliver, subscribe

INVESTIGATING, MONITORING, RESOLVED = (
    IncidentStatus.INVESTIGATING,
    IncidentStatus.MONITORING,
    IncidentStatus.RESOLVED,
)


def findings(text: str, *, public: bool = True, **fields: Any) -> list[Finding]:
    """Findings for ``text`` in an otherwise unremarkable update (a promise given, not the first)."""
    values: dict[str, Any] = {
        "update_status": INVESTIGATING,
        "incident_status": INVESTIGATING,
        "severity": Severity.MINOR,
        "has_next_update": True,
        "first_public": False,
        "own_email_domains": frozenset({"example.com"}),
    }
    values.update(fields)
    return check(Draft(text=text, **values), public)


def flagged(text: str, rule: str, **fields: Any) -> list[str]:
    """The words each finding of ``rule`` points at."""
    found = [f for f in findings(text, **fields) if f.rule == rule]
    assert all(f.span is not None for f in found), found
    return [text[f.span[0] : f.span[1]] for f in found if f.span is not None]


def marked(text: str) -> tuple[str, list[str]]:
    """``"back «soon»"`` → the text without the marks, and the marked words."""
    return text.replace("«", "").replace("»", ""), re.findall(r"«(.*?)»", text, re.DOTALL)


# --- vague timing -----------------------------------------------------------------------------------

VAGUE = [
    "We expect a fix «soon».",
    "Service will be back «shortly».",
    "We are fixing it «ASAP» and will update you «as soon as possible».",
    "Back «in a bit». Payments resume «momentarily».",
    "Le service reviendra «bientôt», «sous peu», «dès que possible».",
    # "We don't know yet" excuses only its own sentence (issue 15).
    "We are working on it «as soon as possible». We do not know yet how long it takes.",
]

WITH_ETA = [
    "We expect a fix soon, by 14:30 UTC.",
    "Service will be back shortly (within 2 hours).",
    "A fix is coming soon: in 30 minutes.",
    "We will update you as soon as possible, by 3pm.",
    "Back soon; we don't know yet exactly when.",
    "Fix soon, no ETA yet.",
    "We hope to fix it soon, on 2026-12-01 at the latest.",
    "Le service reviendra bientôt, vers 15h30.",
    "We are investigating failed checkouts.",
]


@pytest.mark.parametrize("case", VAGUE)
def test_vague_timing_without_an_eta_is_an_error(case: str) -> None:
    text, words = marked(case)
    assert flagged(text, "vague-timing") == words
    assert {f.level for f in findings(text) if f.rule == "vague-timing"} == {"error"}


@pytest.mark.parametrize("text", WITH_ETA)
def test_vague_timing_with_an_eta_or_an_honest_no_eta_is_fine(text: str) -> None:
    assert flagged(text, "vague-timing") == []


def test_vague_timing_is_checked_for_internal_updates_too() -> None:
    assert [f.rule for f in findings("Back soon.", public=False)] == ["vague-timing"]


# --- what must never reach the public -----------------------------------------------------------

LEAKS = [
    ("internal-hostname", "Errors from «db-3.internal» and «build.corp»."),
    ("internal-hostname", "The «printer.local» and «nas.lan» hosts are down."),
    ("internal-hostname", "We restarted «prod-db-01» and «web01»."),
    ("private-address", "Traffic to «10.1.2.3» and «192.168.0.7» fails."),
    ("private-address", "«172.16.5.4», «127.0.0.1» and «169.254.1.1» are down."),
    ("private-address", "IPv6 «fd12:3456::1», «::1» and «fe80::1» too."),
    ("stack-trace", "«Traceback (most recent call last)»:\n  x"),
    ("stack-trace", 'Oops: «File "app/pay.py", line 42», in charge'),
    ("stack-trace", "«Exception in thread main»\n «at com.foo.Bar.run(»Bar.java:3)"),
    ("email-address", "Write to «jane.doe@gmail.com» or «ops@corp.example.net»."),
    ("secret", "Key «sk_live_4eC39HqLyjWDarjtT1zdp7dc» leaked."),
    ("secret", "AWS «AKIAIOSFODNN7EXAMPLE» and «ghp_16C7e42F292c6912E7710c838347Ae178B4a»."),
    ("secret", "Slack «xoxb-263594206564-2343594206574-FGqddMF8t08v8N7Oq4i57vs1»"),
    (
        "secret",
        "Bearer «eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0TH»",
    ),
    ("secret", "hash «9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08»."),
    ("secret", "password «dGhpcyBpcyBhIHNlY3JldCB0b2tlbiBmb3IgeW91» leaked"),
]

CLEAN = [
    "Checkout fails for about a third of customers; we are rolling back the 14:05 release.",
    "See https://status.example.com/incidents/2026/Checkout-Outage-Update-Rollback-42 and api.example.com",
    "Version 1.2.3 of the app; tickets DEV-123 and QA-42; 8.8.8.8 resolves slowly; IPv6 2001:4860::8888.",
    "Questions? Write to support@example.com.",
    "Donaudampfschifffahrtsgesellschaftskapitaen123 and ThePostmortemForJanuary2026Outage are words.",
]


@pytest.mark.parametrize(("rule", "case"), LEAKS)
def test_leaks_in_public_text_are_errors_pointing_at_them(rule: str, case: str) -> None:
    text, words = marked(case)
    assert flagged(text, rule) == words
    assert {f.level for f in findings(text) if f.rule == rule} == {"error"}


@pytest.mark.parametrize("text", CLEAN)
def test_ordinary_public_text_has_no_leak(text: str) -> None:
    assert findings(text) == []


@pytest.mark.parametrize(("rule", "case"), LEAKS)
def test_internal_updates_may_name_hosts_addresses_and_traces(rule: str, case: str) -> None:
    text, _ = marked(case)
    assert [f for f in findings(text, public=False) if f.rule == rule] == []


def test_the_organisations_own_domain_comes_from_the_status_page_url() -> None:
    assert own_email_domains("https://status.example.com/") == {"status.example.com", "example.com"}
    assert own_email_domains("https://example.org") == {"example.org"}
    assert own_email_domains(None) == frozenset()
    text = "Write to help@example.org."
    assert flagged(text, "email-address", own_email_domains=frozenset()) == ["help@example.org"]
    assert flagged(text, "email-address", own_email_domains=own_email_domains("https://example.org")) == []


# --- promises, resolution claims, apologies -------------------------------------------------------


def test_a_public_update_on_an_unresolved_incident_must_promise_the_next_one() -> None:
    assert [f.rule for f in findings("Looking into it.", has_next_update=False)] == ["next-update-missing"]
    assert findings("Looking into it.", has_next_update=True) == []
    assert findings("All fixed.", update_status=RESOLVED, has_next_update=False) == []
    assert findings("Looking into it.", public=False, has_next_update=False) == []


CLAIMS = [
    "The issue is «fixed» and payments are «restored».",
    "Everything is «back to normal» and «fully operational».",
    "It has been «resolved».",
    "Le problème est «résolu», le paiement est «rétabli» et «corrigé».",
]

NOT_CLAIMS = [
    "The issue is not yet fixed.",
    "Payments aren't restored.",
    "Service will be restored by 15:00.",
    "We will tell you once payments are back to normal.",
    "We will keep you posted until it is resolved.",
    "Payments are partially restored.",
    "Le service n'est pas encore rétabli.",
]


@pytest.mark.parametrize("case", CLAIMS)
def test_saying_it_is_fixed_before_monitoring_is_an_error(case: str) -> None:
    text, words = marked(case)
    assert flagged(text, "premature-resolution") == words


@pytest.mark.parametrize("case", CLAIMS)
def test_saying_it_is_fixed_is_fine_when_monitoring_or_resolving(case: str) -> None:
    text, _ = marked(case)
    assert flagged(text, "premature-resolution", update_status=MONITORING) == []
    assert flagged(text, "premature-resolution", update_status=RESOLVED) == []
    # Resolving an incident that is in monitoring:
    assert flagged(text, "premature-resolution", incident_status=MONITORING, update_status=RESOLVED) == []
    # Still investigating by the update's status, but the incident is already being monitored:
    assert flagged(text, "premature-resolution", incident_status=MONITORING) == []


@pytest.mark.parametrize("text", NOT_CLAIMS)
def test_negated_or_future_resolution_is_not_a_claim(text: str) -> None:
    assert flagged(text, "premature-resolution") == []


def test_first_public_update_of_a_major_incident_should_apologise() -> None:
    said = {"first_public": True, "has_impact_statement": True}
    bare = findings("Checkout is failing.", severity=Severity.MAJOR, **said)
    assert [(f.rule, f.level, f.span) for f in bare] == [("apology-missing", "warn", None)]
    for text in (
        "We are sorry: checkout is failing.",
        "We apologize.",
        "Nous sommes désolés.",
        "Toutes nos excuses.",
    ):
        said = findings(text, first_public=True, severity=Severity.CRITICAL, has_impact_statement=True)
        assert said == [], text
    assert findings("Checkout is failing.", first_public=True, severity=Severity.MINOR) == []
    assert findings("Checkout is failing.", first_public=False, severity=Severity.MAJOR) == []


def test_findings_are_json_serialisable_and_errors_come_first() -> None:
    found = findings(
        "Back soon, no promise.", first_public=True, severity=Severity.MAJOR, has_next_update=False
    )
    assert [f.level for f in found] == ["error", "error", "warn", "warn"]
    assert errors(found) == found[:2]
    assert json.loads(json.dumps([f.as_dict() for f in found]))[0] == {
        "rule": "vague-timing",
        "level": "error",
        "message": found[0].message,
        "span": [5, 9],
        "field": "message",
    }
    assert "soon" in found[0].message


# --- check_draft on a real incident -----------------------------------------------------------------


def test_check_draft_knows_whether_a_public_update_went_out_before(rt: Runtime) -> None:
    subscribe(rt, 2)
    inc = incident(rt, Severity.MAJOR)
    later = rt.clock.now() + timedelta(minutes=30)
    bare = draft(inc, "Checkout is failing for some customers.", next_update_at=later)

    assert [f.rule for f in check_draft(rt, inc, bare)] == ["apology-missing", "impact-missing"]

    internal = draft(inc, "Staff heads-up.", audience=Audience.INTERNAL, next_update_at=later)
    publish_and_deliver(rt, internal)
    first = ["apology-missing", "impact-missing"]
    assert [f.rule for f in check_draft(rt, inc, bare)] == first, "internal ones do not count"

    publish_and_deliver(rt, draft(inc, "Checkout is failing. We are sorry.", next_update_at=later))
    assert check_draft(rt, inc, bare) == []


def test_check_draft_applies_the_audience_and_the_kind(rt: Runtime) -> None:
    inc = incident(rt, Severity.MINOR)
    text = "db-3.internal is down; back soon."
    public = check_draft(rt, inc, draft(inc, text, next_update_at=None))
    assert [f.rule for f in public] == ["internal-hostname", "vague-timing", "next-update-missing"]
    assert [text[f.span[0] : f.span[1]] for f in public if f.span] == ["db-3.internal", "soon"]

    internal = check_draft(rt, inc, draft(inc, text, audience=Audience.INTERNAL, next_update_at=None))
    assert [f.rule for f in internal] == ["vague-timing"]

    assert check_draft(rt, inc, draft(inc, text, kind="holding")) == []


def test_check_draft_uses_the_incident_status_for_resolution_claims(rt: Runtime) -> None:
    inc = incident(rt, Severity.MINOR)
    later = rt.clock.now() + timedelta(minutes=30)
    fixed = draft(inc, "Payments are restored.", next_update_at=later)
    assert [f.rule for f in check_draft(rt, inc, fixed)] == ["premature-resolution"]
    assert check_draft(rt, inc.model_copy(update={"status": MONITORING}), fixed) == []
    resolving = draft(inc, "Payments are restored.", status=RESOLVED)
    assert check_draft(rt, inc, resolving) == []


def test_check_draft_allows_the_status_page_domain_in_public_text(make_runtime: Any) -> None:
    rt = make_runtime(status_page_url="https://status.example.com")
    inc = incident(rt, Severity.MINOR)
    later = rt.clock.now() + timedelta(minutes=30)
    ok = draft(inc, "Questions: support@example.com.", next_update_at=later)
    assert check_draft(rt, inc, ok) == []
    leak = draft(inc, "Questions: jane@gmail.com.", next_update_at=later)
    assert [f.rule for f in check_draft(rt, inc, leak)] == ["email-address"]
