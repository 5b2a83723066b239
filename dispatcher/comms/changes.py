"""Mid-incident changes: severity, title, components and per-component impact, with who and why.

An incident is rarely what it first looked like: a major one turns critical, the title needs the
customer's words, another component turns out to be hit. ``change_incident`` makes such a change in one
transaction, records it on the timeline (event ``changed``: who, what changed, and why), and applies
the severity policy at once:

- the next update goes out under the new severity's rules: its channels (new channels join from the
  next update), its audiences, whether it waits for approval, its first-word budget;
- a shorter cadence pulls the open promise in: when the incident's next update was due later than one
  new cadence from now, it is due then (customers keep the promise they were given; Tocsin now holds
  itself to the sooner one, with its reminders and holding messages);
- a new title or component names go through the guardrails' leak rules (they head every message).

Customers learn of the change with the next update they are sent (the status page shows the severity
of the latest public update). A per-component impact set here (``manual``) is recorded in
``component_impacts`` from now on, like one an update sets.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import update

from dispatcher.comms import guardrails
from dispatcher.comms.lifecycle import record_event
from dispatcher.comms.publish import record_impact
from dispatcher.domain.crisis import INCIDENT_KINDS
from dispatcher.domain.errors import InvalidInput
from dispatcher.domain.identity import Identity
from dispatcher.domain.models import ComponentImpact, Incident, IncidentDraft, IncidentStatus, Severity
from dispatcher.domain.texts import hhmm
from dispatcher.engine.runtime import Runtime
from dispatcher.store import queries
from dispatcher.store.schema import incidents


def _what_changed(before: Incident, values: dict[str, Any]) -> list[str]:
    said = []
    if "severity" in values:
        said.append(f"severity {before.severity.value} → {values['severity']}")
    if "title" in values:
        said.append(f"title {before.title!r} → {values['title']!r}")
    if "components" in values:
        old, new = ", ".join(before.components) or "none", ", ".join(values["components"]) or "none"
        said.append(f"components {old} → {new}")
    return said


def _pulled_in(rt: Runtime, before: Incident, severity: Severity, now: datetime) -> datetime | None:
    """The sooner promise a shorter cadence asks for, if it is sooner than the one standing."""
    if before.next_update_at is None:
        return None
    due = now + rt.policy.policy.for_severity(severity).cadence
    return due if due < before.next_update_at else None


def change_incident(
    rt: Runtime,
    incident_id: int,
    who: Identity,
    *,
    reason: str,
    severity: Severity | None = None,
    title: str | None = None,
    components: list[str] | None = None,
    impact: dict[str, ComponentImpact] | None = None,
    override_reason: str | None = None,
) -> Incident:
    """Change what is given (``None``: unchanged) and apply the policy at once (module docstring)."""
    why = reason.strip()
    if not why:
        raise InvalidInput("reason: say why it changes (it is recorded on the timeline)")
    # The same rules as opening one: a title of 3 to 200 characters, components cleaned.
    checked = IncidentDraft(title=title if title is not None else "unchanged", components=components or [])
    now = rt.clock.now()
    with rt.engine.connect() as conn:
        before = queries.get_incident(conn, incident_id)
    if before.status is IncidentStatus.RESOLVED:
        raise InvalidInput(f"incident {incident_id} is resolved: reopen it first")
    if before.kind not in INCIDENT_KINDS:
        raise InvalidInput(f"incident {incident_id} is a maintenance window: use `tocsin maintenance`")
    values: dict[str, Any] = {}
    if severity is not None and severity is not before.severity:
        values["severity"] = severity.value
    if title is not None and checked.title != before.title:
        values["title"] = checked.title
    if components is not None and checked.components != before.components:
        values["components"] = checked.components
    if not values and not impact:
        raise InvalidInput(f"incident {incident_id}: nothing to change")
    if "title" in values or "components" in values:
        findings = guardrails.incident_findings(
            rt,
            values.get("title", before.title),
            values.get("components", before.components),
            before.severity,
        )
        guardrails.refuse_unless_overridden(findings, override_reason)
    said = _what_changed(before, values)
    pulled = _pulled_in(rt, before, Severity(values.get("severity", before.severity)), now)
    if pulled is not None:
        values.update(next_update_at=pulled, promise_reminded_at=None)
        said.append(f"next update now due by {hhmm(pulled)} (the {values['severity']} cadence)")
    if impact:
        said.append("impact " + ", ".join(f"{name}: {level.value}" for name, level in impact.items()))
    with rt.engine.begin() as conn:
        queries.get_incident(conn, incident_id, lock=True)
        if values:
            conn.execute(
                update(incidents).where(incidents.c.id == incident_id).values(**values, updated_at=now)
            )
        if impact:
            record_impact(conn, incident_id, impact, now, "manual", who.name)
        reasons = [why]
        if (override_reason or "").strip() and ("title" in values or "components" in values):
            reasons.append(f"guardrails overridden: {(override_reason or '').strip()}")
        record_event(conn, incident_id, "changed", now, actor=who.name, reason="; ".join([*said, *reasons]))
        return queries.get_incident(conn, incident_id)
