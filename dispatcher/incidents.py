"""Open and read incidents."""

from __future__ import annotations

from sqlalchemy import insert, select

from dispatcher.errors import NotFound
from dispatcher.models import Incident, IncidentDraft, IncidentStatus
from dispatcher.runtime import Runtime
from dispatcher.store.schema import incidents


def open_incident(rt: Runtime, draft: IncidentDraft) -> Incident:
    now = rt.clock.now()
    with rt.engine.begin() as conn:
        new_id = conn.execute(
            insert(incidents)
            .values(
                title=draft.title,
                status=IncidentStatus.INVESTIGATING.value,
                severity=draft.severity.value,
                components=draft.components,
                opened_at=now,
                updated_at=now,
            )
            .returning(incidents.c.id)
        ).scalar_one()
    return get_incident(rt, new_id)


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
