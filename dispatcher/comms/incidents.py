"""Open and read incidents. Status changes, reopening and the timeline are in
``dispatcher.comms.lifecycle``."""

from __future__ import annotations

from sqlalchemy import select

from dispatcher.comms.lifecycle import open_or_reopen
from dispatcher.domain.models import Incident, IncidentDraft
from dispatcher.engine.runtime import Runtime
from dispatcher.store import queries
from dispatcher.store.schema import incidents


def open_incident(rt: Runtime, draft: IncidentDraft, actor: str | None = None) -> Incident:
    """Open an incident (investigating); the same title resolved within the policy's flap window is
    reopened instead (see ``dispatcher.comms.lifecycle.open_or_reopen``)."""
    return open_or_reopen(rt, draft, actor=actor).incident


def get_incident(rt: Runtime, incident_id: int) -> Incident:
    """The incident (``NotFound`` when there is none), read on a connection of its own."""
    with rt.engine.connect() as conn:
        return queries.get_incident(conn, incident_id)


def list_incidents(rt: Runtime, limit: int = 50) -> list[Incident]:
    with rt.engine.connect() as conn:
        return queries.list_incidents(conn, select(incidents).order_by(incidents.c.id.desc()).limit(limit))
