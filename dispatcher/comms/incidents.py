"""Open and read incidents. Status changes, reopening and the timeline are in
``dispatcher.comms.lifecycle``."""

from __future__ import annotations

from sqlalchemy import select

from dispatcher.comms import guardrails
from dispatcher.comms.lifecycle import Opened, open_or_reopen
from dispatcher.domain.models import Incident, IncidentDraft
from dispatcher.engine.runtime import Runtime
from dispatcher.store import queries
from dispatcher.store.schema import incidents


def open_by_person(
    rt: Runtime, draft: IncidentDraft, actor: str | None = None, override_reason: str | None = None
) -> Opened:
    """Open an incident a person names (CLI, API, console): its title and components go out in every
    message, so the guardrails' leak rules check them first (``GuardrailsBlocked`` unless a reason is
    given to go ahead, which the timeline records). Monitoring opens through ``open_or_reopen``: its
    titles are checked when a public update would carry them."""
    findings = guardrails.incident_findings(rt, draft.title, draft.components, draft.severity)
    guardrails.refuse_unless_overridden(findings, override_reason)
    reason = None
    if guardrails.errors(findings):
        reason = f"guardrails overridden: {(override_reason or '').strip()}"
    return open_or_reopen(rt, draft, actor=actor, reason=reason)


def open_incident(
    rt: Runtime, draft: IncidentDraft, actor: str | None = None, override_reason: str | None = None
) -> Incident:
    """Open an incident (investigating); the same title resolved within the policy's flap window is
    reopened instead (see ``dispatcher.comms.lifecycle.open_or_reopen``). Title and components are
    checked as in ``open_by_person``."""
    return open_by_person(rt, draft, actor, override_reason).incident


def get_incident(rt: Runtime, incident_id: int) -> Incident:
    """The incident (``NotFound`` when there is none), read on a connection of its own."""
    with rt.engine.connect() as conn:
        return queries.get_incident(conn, incident_id)


def list_incidents(rt: Runtime, limit: int = 50) -> list[Incident]:
    with rt.engine.connect() as conn:
        return queries.list_incidents(conn, select(incidents).order_by(incidents.c.id.desc()).limit(limit))
