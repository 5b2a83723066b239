"""Open and read incidents. Status changes, reopening and the timeline are in
``dispatcher.comms.lifecycle``."""

from __future__ import annotations

from sqlalchemy import select

from dispatcher.comms.lifecycle import open_or_reopen
from dispatcher.domain.errors import NotFound
from dispatcher.domain.models import Incident, IncidentDraft
from dispatcher.engine.runtime import Runtime
from dispatcher.store.schema import incidents


def open_incident(rt: Runtime, draft: IncidentDraft, actor: str | None = None) -> Incident:
    """Open an incident (investigating); the same title resolved within the policy's flap window is
    reopened instead (see ``dispatcher.comms.lifecycle.open_or_reopen``)."""
    return open_or_reopen(rt, draft, actor=actor).incident


def get_incident(rt: Runtime, incident_id: int) -> Incident:
    with rt.engine.connect() as conn:
        row = conn.execute(select(incidents).where(incidents.c.id == incident_id)).mappings().first()
    if row is None:
        raise NotFound(f"no incident {incident_id}")
    return Incident.model_validate(dict(row))


def list_incidents(rt: Runtime, limit: int = 50) -> list[Incident]:
    with rt.engine.connect() as conn:
        rows = conn.execute(select(incidents).order_by(incidents.c.id.desc()).limit(limit)).mappings()
        return [Incident.model_validate(dict(r)) for r in rows]
