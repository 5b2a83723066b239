"""The one read path for incidents and updates: a row becomes a model here and nowhere else.

Every function takes a connection: the use case that calls it decides the transaction (a read on its
own, or a step inside a ``begin()`` that also writes), as in a unit of work.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import Connection, Select, select

from dispatcher.domain.errors import NotFound
from dispatcher.domain.models import Incident, Update
from dispatcher.store.schema import incidents, updates


def incident_from_row(row: Mapping[Any, Any]) -> Incident:
    return Incident.model_validate(dict(row))


def update_from_row(row: Mapping[Any, Any]) -> Update:
    return Update.model_validate(dict(row))


def get_incident(conn: Connection, incident_id: int, *, lock: bool = False) -> Incident:
    """The incident; ``lock`` holds its row (PostgreSQL ``FOR UPDATE``) until the transaction ends.
    ``NotFound`` when there is none."""
    query = select(incidents).where(incidents.c.id == incident_id)
    if lock:
        query = query.with_for_update()
    row = conn.execute(query).mappings().first()
    if row is None:
        raise NotFound(f"no incident {incident_id}")
    return incident_from_row(row)


def find_incident(conn: Connection, query: Select[Any]) -> Incident | None:
    """The first incident ``query`` (a ``select(incidents)…``) finds, if any."""
    row = conn.execute(query).mappings().first()
    return None if row is None else incident_from_row(row)


def list_incidents(conn: Connection, query: Select[Any]) -> list[Incident]:
    return [incident_from_row(r) for r in conn.execute(query).mappings()]


def get_update(conn: Connection, update_id: int) -> Update:
    """The update; ``NotFound`` when there is none."""
    row = conn.execute(select(updates).where(updates.c.id == update_id)).mappings().first()
    if row is None:
        raise NotFound(f"no update {update_id}")
    return update_from_row(row)


def find_update(conn: Connection, query: Select[Any]) -> Update | None:
    """The first update ``query`` (a ``select(updates)…``) finds, if any."""
    row = conn.execute(query).mappings().first()
    return None if row is None else update_from_row(row)


def list_updates(conn: Connection, query: Select[Any]) -> list[Update]:
    return [update_from_row(r) for r in conn.execute(query).mappings()]


def updates_of(rows: Iterable[Mapping[Any, Any]]) -> list[Update]:
    """Rows already fetched (an ``UPDATE … RETURNING``) as updates."""
    return [update_from_row(r) for r in rows]
