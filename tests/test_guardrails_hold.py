"""Guardrails that hold: every public-facing string (title, message, component names, maintenance
text, templates' own words) goes through the same checks, and the forms that used to slip through are
caught. Each case below passed the checks before (issue 15)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from dispatcher.comms.incidents import open_incident
from dispatcher.comms.maintenance import MaintenanceDraft, schedule_maintenance
from dispatcher.comms.publish import publish
from dispatcher.domain.errors import GuardrailsBlocked
from dispatcher.domain.models import Incident, IncidentDraft, IncidentStatus, Severity, UpdateDraft
from dispatcher.engine.runtime import Runtime
from tests.helpers import RecordingQueue, hand_clock, incident, subscribe

TEN_AM = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)


@pytest.fixture
def at_ten(rt: Runtime) -> Runtime:
    hand_clock(rt).at = TEN_AM
    return rt


def blocked_by(rt: Runtime, inc: Incident, message: str, **fields: object) -> list[tuple[str, str, str]]:
    """(field, rule, offending words) of every error that blocks publishing ``message``; [] if it went."""
    values: dict[str, object] = {
        "incident_id": inc.id,
        "status": IncidentStatus.INVESTIGATING,
        "message": message,
        "next_update_at": rt.clock.now() + timedelta(minutes=30),
    }
    values.update(fields)
    try:
        publish(rt, UpdateDraft.model_validate(values), RecordingQueue())
    except GuardrailsBlocked as exc:
        texts = {"message": message, "title": inc.title}
        return [
            (f.field, f.rule, texts.get(f.field, "")[f.span[0] : f.span[1]] if f.span else "")
            for f in exc.findings
            if f.level == "error"
        ]
    return []


LEAKS = [
    (
        "internal-hostname",
        "We restarted pg-primary-1 and it is back in service within 10 minutes.",
        "pg-primary-1",
    ),
    ("internal-hostname", "The redis-cache-7 node is being replaced by 11:00 UTC.", "redis-cache-7"),
    ("internal-hostname", "Graphs: https://grafana.corp.acme.io/d/abc until 11:00.", "grafana.corp.acme.io"),
    ("private-address", "Traffic from 100.64.3.17 is dropped; next step by 11:00.", "100.64.3.17"),
    (
        "stack-trace",
        "Logins fail with psycopg2.OperationalError: could not connect.",
        "psycopg2.OperationalError",
    ),
    (
        "stack-trace",
        "Payments fail: java.lang.NullPointerException at PaymentService.charge.",
        "java.lang.NullPointerException",
    ),
    ("phone-number", "Call our engineer on +1 202 555 0143 for details.", "+1 202 555 0143"),
    ("card-number", "The charge to 4111 1111 1111 1111 failed twice.", "4111 1111 1111 1111"),
    ("customer-data", "Orders of customer Jane Doe (acct 4421-889) are stuck.", "Jane Doe"),
    ("customer-data", "Orders of customer Jane Doe (acct 4421-889) are stuck.", "acct 4421-889"),
]


@pytest.mark.parametrize(("rule", "message", "words"), LEAKS, ids=[c[2] for c in LEAKS])
def test_leaks_that_used_to_pass_are_caught(at_ten: Runtime, rule: str, message: str, words: str) -> None:
    inc = incident(at_ten, Severity.MINOR)
    assert ("message", rule, words) in blocked_by(at_ten, inc, message)


def test_an_own_internal_zone_from_the_policy_is_internal(rt: Runtime, tmp_path: Path) -> None:
    (tmp_path / "policy.toml").write_text('[guardrails]\ninternal_domains = ["ops.acme.example"]\n')
    inc = incident(rt, Severity.MINOR)
    found = blocked_by(rt, inc, "Dashboards on metrics.eu.ops.acme.example show the errors.")
    assert ("message", "internal-hostname", "metrics.eu.ops.acme.example") in found
    assert blocked_by(rt, inc, "Read more on status.acme.example.") == []


def test_the_support_line_may_be_published(rt: Runtime, tmp_path: Path) -> None:
    (tmp_path / "policy.toml").write_text('[guardrails]\npublic_phone_numbers = ["+1 202 555 0100"]\n')
    inc = incident(rt, Severity.MINOR)
    assert blocked_by(rt, inc, "Questions? Call our support line, (202) 555-0100.") == []
    assert blocked_by(rt, inc, "Call (202) 555-0143.")[0][1] == "phone-number"


def test_the_incident_title_is_checked_before_it_goes_out(rt: Runtime) -> None:
    subscribe(rt, 2)
    inc = open_incident(
        rt,
        IncidentDraft(title="db-3.internal down: 10.0.3.17 refuses connections", severity=Severity.MINOR),
        override_reason="opened from the runbook's wording",
    )
    found = blocked_by(rt, inc, "Logins fail for some customers. We are sorry.")
    assert ("title", "internal-hostname", "db-3.internal") in found
    assert ("title", "private-address", "10.0.3.17") in found
    # With a recorded reason it goes (the update keeps the reason).
    assert blocked_by(rt, inc, "Logins fail. We are sorry.", override_reason="legal cleared the title") == []


def test_opening_an_incident_with_a_leaking_title_needs_a_reason(rt: Runtime) -> None:
    with pytest.raises(GuardrailsBlocked, match="title internal-hostname"):
        open_incident(rt, IncidentDraft(title="db-3.internal down", severity=Severity.MINOR))
    with pytest.raises(GuardrailsBlocked, match="component 'pg-primary-1'"):
        open_incident(rt, IncidentDraft(title="Logins failing", components=["pg-primary-1"]))


def test_component_names_are_checked(rt: Runtime) -> None:
    inc = open_incident(
        rt, IncidentDraft(title="Logins failing", components=["redis-cache-7"]), override_reason="test"
    )
    assert [(f, r) for f, r, _ in blocked_by(rt, inc, "Logins fail. Sorry.")] == [
        ("components", "internal-hostname")
    ]


def test_maintenance_text_is_checked(rt: Runtime) -> None:
    hand_clock(rt).at = TEN_AM
    draft = MaintenanceDraft(
        title="Database upgrade",
        starts_at=TEN_AM + timedelta(days=1),
        ends_at=TEN_AM + timedelta(days=1, hours=1),
        message="We will fail over db-3.internal to 10.0.3.18 during the window.",
    )
    with pytest.raises(GuardrailsBlocked) as blocked:
        schedule_maintenance(rt, RecordingQueue(), draft)
    assert {f.rule for f in blocked.value.findings} == {"internal-hostname", "private-address"}
    with pytest.raises(GuardrailsBlocked, match="title internal-hostname"):
        schedule_maintenance(
            rt, RecordingQueue(), draft.model_copy(update={"title": "pg-primary-1 upgrade", "message": None})
        )


def test_a_template_that_names_an_internal_host_is_caught(
    make_runtime: Callable[..., Runtime], tmp_path: Path
) -> None:
    own = tmp_path / "mytemplates" / "sms"
    own.mkdir(parents=True)
    (own / "body.txt.j2").write_text("{{ update.message }} Ops: db-3.internal")
    rt = make_runtime(templates_dir=tmp_path / "mytemplates")
    inc = incident(rt, Severity.MINOR)
    assert ("template:sms", "internal-hostname", "") in blocked_by(rt, inc, "Logins fail. Sorry.")


# --- vague timing, promises, recovery words ------------------------------------------------------


def test_a_past_time_is_not_an_eta(at_ten: Runtime) -> None:
    inc = incident(at_ten, Severity.MINOR)
    assert blocked_by(at_ten, inc, "Since 09:12 UTC checkouts fail; we will fix it soon.") == [
        ("message", "vague-timing", "soon")
    ]
    assert (
        blocked_by(at_ten, inc, "Errors began at 09:12 UTC and we will fix them soon.")[0][1]
        == "vague-timing"
    )
    assert blocked_by(at_ten, inc, "The 09:05 deploy broke checkouts; a fix comes soon, by 11:30 UTC.") == []


def test_we_dont_know_yet_exempts_only_its_own_sentence(at_ten: Runtime) -> None:
    inc = incident(at_ten, Severity.MINOR)
    assert blocked_by(at_ten, inc, "Payments will be back soon. We don't know yet why they failed.") == [
        ("message", "vague-timing", "soon")
    ]
    assert blocked_by(at_ten, inc, "Payments will be back soon, but we don't know yet when.") == []


@pytest.mark.parametrize(
    "words", ["as quickly as we can", "in the coming hours", "as fast as possible", "in due course"]
)
def test_common_evasions_are_vague(at_ten: Runtime, words: str) -> None:
    inc = incident(at_ten, Severity.MINOR)
    assert blocked_by(at_ten, inc, f"We will restore payments {words}.") == [
        ("message", "vague-timing", words)
    ]


def test_a_promise_beyond_the_cadence_needs_a_reason(at_ten: Runtime) -> None:
    inc = incident(at_ten, Severity.CRITICAL)  # built-in cadence: 30 minutes
    far = {"next_update_at": TEN_AM + timedelta(hours=24)}
    assert [r for _, r, _ in blocked_by(at_ten, inc, "Payments fail. We are sorry.", **far)] == [
        "promise-too-far"
    ]
    assert (
        blocked_by(at_ten, inc, "Payments fail. We are sorry.", override_reason="vendor's own ETA", **far)
        == []
    )


@pytest.mark.parametrize(
    "message",
    [
        "Service has recovered, all good now.",
        "Checkout is working normally again.",
        "The errors have stopped.",
    ],
)
def test_declaring_recovery_is_treated_like_fixed(at_ten: Runtime, message: str) -> None:
    inc = incident(at_ten, Severity.MINOR)
    assert "premature-resolution" in [r for _, r, _ in blocked_by(at_ten, inc, message)]
    assert blocked_by(at_ten, inc, message, status=IncidentStatus.MONITORING) == []


@pytest.mark.parametrize(
    "message",
    [
        "Checkout fails for about a third of customers; we roll back the 09:05 release by 10:30 UTC.",
        "Customers in eu-west-1 see errors; see status.example.com. Next update by 10:45.",
        "Our Customer Success Team will contact affected customers within 2 hours.",
        "Version 1.2.3 fixes it; tickets DEV-123 and QA-42 track it. Next update in 30 minutes.",
        "Health advice is on who.int and gov.uk; customers in eu-west-1 and us-east-2 are not affected.",
        "A follow-up is planned; orders placed meanwhile are safe. We are sorry.",
    ],
)
def test_ordinary_public_text_still_goes(at_ten: Runtime, message: str) -> None:
    assert blocked_by(at_ten, incident(at_ten, Severity.MINOR), message) == []
