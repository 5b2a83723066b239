"""Security and data incidents: the facts their readers are owed before anything else.

A ``security`` incident (opened so, or an incident found to be a breach) carries ``DataFacts``: what data
may be affected, what is not, what customers should do, what the company is doing. Until all four are
given, the guardrail ``data-facts-missing`` blocks every public update of it (an override reason is
recorded with the update); once given, every channel shows them first.
"""

from __future__ import annotations

from sqlalchemy import update

from dispatcher.comms.lifecycle import record_event
from dispatcher.domain.crisis import DATA_FACT_LABELS, SECURITY, DataFacts
from dispatcher.domain.errors import InvalidInput
from dispatcher.domain.models import Incident, IncidentStatus
from dispatcher.engine.runtime import Runtime
from dispatcher.store.queries import get_incident
from dispatcher.store.schema import incidents


def set_data_facts(rt: Runtime, incident_id: int, given: DataFacts, actor: str | None) -> Incident:
    """Record the facts ``given`` (each one replaces what was said before; the rest stay).

    An ordinary incident found to be a breach becomes a ``security`` incident here (on its timeline);
    a maintenance window or a resolved incident is refused."""
    if not given.texts():
        raise InvalidInput("data facts: give at least one (" + ", ".join(DATA_FACT_LABELS.values()) + ")")
    now = rt.clock.now()
    with rt.engine.begin() as conn:
        before = get_incident(conn, incident_id, lock=True)
        if before.kind not in ("incident", SECURITY):
            raise InvalidInput(f"incident {incident_id} is a {before.kind} window: it has no data facts")
        if before.status is IncidentStatus.RESOLVED:
            raise InvalidInput(f"incident {incident_id} is resolved: reopen it first")
        facts = (before.data_facts or DataFacts()).merged(given)
        conn.execute(
            update(incidents)
            .where(incidents.c.id == incident_id)
            .values(kind=SECURITY, data_facts=facts.model_dump(exclude_none=True), updated_at=now)
        )
        if before.kind != SECURITY:
            record_event(conn, incident_id, "kind", now, actor=actor, reason="now a security incident")
        missing = facts.missing()
        owed = "; still missing: " + ", ".join(DATA_FACT_LABELS[m] for m in missing) if missing else ""
        named = ", ".join(DATA_FACT_LABELS[name.split(".", 1)[1]] for name in given.texts())
        record_event(conn, incident_id, "data_facts", now, actor=actor, reason=f"set {named}{owed}")
        return get_incident(conn, incident_id)
