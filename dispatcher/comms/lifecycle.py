"""The incident lifecycle: investigating → identified → monitoring → resolved, and reopening.

Rules (checked before anything is written):

- Any move between the three open statuses is allowed (a fix that did not hold goes back from
  ``monitoring`` to ``investigating``); entering ``monitoring`` starts ``monitoring_since``.
- Resolving needs the incident to have been in ``monitoring`` for its severity's ``resolve_hold``
  (policy). A hold of zero lets it be resolved from any open status. ``force`` with a reason skips the
  hold; the reason is recorded (event ``forced_resolve``). Maintenance windows have no hold.
- A resolved incident only leaves ``resolved`` by being reopened (``reopen``, or ``open_or_reopen``
  when the same thing breaks again within ``policy.lifecycle.flap_window``).

Every change is an ``incident_events`` row; ``timeline`` merges them with the incident's updates.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from pydantic import BaseModel
from sqlalchemy import Connection, insert, select, update

from dispatcher.domain.errors import InvalidInput
from dispatcher.domain.models import Incident, IncidentDraft, IncidentStatus, Severity, Update
from dispatcher.domain.policy import Policy
from dispatcher.engine.runtime import Runtime
from dispatcher.store.queries import get_incident, incident_from_row, update_from_row
from dispatcher.store.schema import incident_events, incidents, updates

OPEN_STATUSES = (IncidentStatus.INVESTIGATING, IncidentStatus.IDENTIFIED, IncidentStatus.MONITORING)


def human(span: timedelta) -> str:
    """``1h05m``, ``18m``, ``45s``: how long, as a person reads it (rounded up to the second)."""
    seconds = max(0, int(-(-span.total_seconds() // 1)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m" if not secs else f"{minutes}m{secs:02d}s"
    return f"{secs}s"


@dataclass(frozen=True)
class Transition:
    """An allowed status change, checked against the rules but not yet written."""

    incident_id: int
    from_status: IncidentStatus
    to_status: IncidentStatus
    forced: bool = False


def plan_transition(
    policy: Policy,
    incident: Incident,
    to: IncidentStatus,
    at: datetime,
    *,
    force: bool = False,
    reason: str | None = None,
) -> Transition | None:
    """The change from ``incident.status`` to ``to`` at time ``at``; None when there is nothing to change.

    Raises ``InvalidInput`` saying why a change is not allowed (and, for a hold, how long is left)."""
    if to is incident.status:
        return None
    if incident.status is IncidentStatus.RESOLVED:
        raise InvalidInput(
            f"incident {incident.id} is resolved: reopen it first "
            f"(`tocsin incident reopen {incident.id} --reason …`)"
        )
    if to is not IncidentStatus.RESOLVED or incident.kind == "maintenance":
        return Transition(incident.id, incident.status, to)
    hold = policy.for_severity(incident.severity).resolve_hold
    if hold <= timedelta(0):
        return Transition(incident.id, incident.status, to)
    severity = incident.severity.value
    if incident.status is IncidentStatus.MONITORING and incident.monitoring_since is not None:
        watched = at - incident.monitoring_since
        if watched >= hold:
            return Transition(incident.id, incident.status, to)
        problem = (
            f"incident {incident.id} has been monitoring for {human(watched)}; {severity} incidents "
            f"are monitored for {human(hold)} before they are resolved: {human(hold - watched)} left"
        )
    else:
        problem = (
            f"incident {incident.id} is {incident.status.value}: move it to monitoring first; "
            f"{severity} incidents are monitored for {human(hold)} before they are resolved"
        )
    if not force:
        raise InvalidInput(f"{problem} (or force it with a reason)")
    if not (reason or "").strip():
        raise InvalidInput(f"reason: forcing a resolve needs a reason ({problem})")
    return Transition(incident.id, incident.status, to, forced=True)


def record_event(
    conn: Connection,
    incident_id: int,
    kind: str,
    at: datetime,
    *,
    actor: str | None = None,
    from_status: IncidentStatus | None = None,
    to_status: IncidentStatus | None = None,
    reason: str | None = None,
    update_id: int | None = None,
) -> None:
    conn.execute(
        insert(incident_events).values(
            incident_id=incident_id,
            at=at,
            kind=kind,
            actor=actor,
            from_status=None if from_status is None else from_status.value,
            to_status=None if to_status is None else to_status.value,
            reason=reason,
            update_id=update_id,
        )
    )


def apply_transition(
    conn: Connection,
    change: Transition,
    at: datetime,
    *,
    actor: str | None,
    reason: str | None = None,
    update_id: int | None = None,
) -> None:
    """Write a planned change and its event, in the caller's transaction.

    The row is only changed if its status is still the one the plan was made from, so two people
    moving the same incident at once cannot both win."""
    values: dict[str, object] = {"status": change.to_status.value, "updated_at": at}
    if change.to_status is IncidentStatus.MONITORING:
        values["monitoring_since"] = at
    elif change.to_status is IncidentStatus.RESOLVED:
        values.update(resolved_at=at, next_update_at=None, promise_reminded_at=None)
    else:
        values["monitoring_since"] = None
    found = conn.execute(
        update(incidents)
        .where(incidents.c.id == change.incident_id, incidents.c.status == change.from_status.value)
        .values(**values)
    ).rowcount
    if not found:
        raise InvalidInput(
            f"incident {change.incident_id} changed while this was being saved; look again "
            f"(`tocsin incident show {change.incident_id}`)"
        )
    record_event(
        conn,
        change.incident_id,
        "forced_resolve" if change.forced else "status",
        at,
        actor=actor,
        from_status=change.from_status,
        to_status=change.to_status,
        reason=(reason or "").strip() or None,
        update_id=update_id,
    )


def insert_incident(
    conn: Connection,
    *,
    title: str,
    severity: Severity,
    components: list[str],
    status: IncidentStatus,
    at: datetime,
    actor: str | None,
    reason: str | None = None,
    **columns: object,
) -> int:
    """Insert a new incident in ``status`` and record that it opened (event ``opened``); its id.

    ``columns`` are further ``incidents`` values: the owner and monitoring's key, or a maintenance
    window's kind, times and stage."""
    new_id: int = conn.execute(
        insert(incidents)
        .values(
            title=title,
            status=status.value,
            severity=severity.value,
            components=components,
            opened_at=at,
            updated_at=at,
            **columns,
        )
        .returning(incidents.c.id)
    ).scalar_one()
    record_event(conn, new_id, "opened", at, actor=actor, to_status=status, reason=reason)
    return new_id


def change_status(
    rt: Runtime,
    incident_id: int,
    to: IncidentStatus,
    actor: str | None,
    reason: str | None = None,
    force: bool = False,
) -> Incident:
    """Move the incident to ``to`` by hand (no update is published); the event says who and why.

    Resolving is not a quiet move: everyone told must hear the end (``dispatcher.comms.closure``)."""
    if to is IncidentStatus.RESOLVED:
        raise InvalidInput(
            f"status: resolving incident {incident_id} tells everyone who was told about it; "
            f"use `tocsin incident resolve {incident_id}` (dispatcher.comms.closure.resolve)"
        )
    now = rt.clock.now()
    with rt.engine.begin() as conn:
        incident = get_incident(conn, incident_id, lock=True)
        change = plan_transition(rt.policy.policy, incident, to, now, force=force, reason=reason)
        if change is None:
            raise InvalidInput(f"incident {incident_id} is already {to.value}")
        apply_transition(conn, change, now, actor=actor, reason=reason)
        return get_incident(conn, incident_id)


def _reopen(conn: Connection, incident: Incident, at: datetime, actor: str | None, reason: str) -> Incident:
    conn.execute(
        update(incidents)
        .where(incidents.c.id == incident.id)
        .values(
            status=IncidentStatus.INVESTIGATING.value,
            reopened_count=incidents.c.reopened_count + 1,
            resolved_at=None,
            monitoring_since=None,
            updated_at=at,
        )
    )
    record_event(
        conn,
        incident.id,
        "reopened",
        at,
        actor=actor,
        from_status=incident.status,
        to_status=IncidentStatus.INVESTIGATING,
        reason=reason,
    )
    return get_incident(conn, incident.id)


def reopen(rt: Runtime, incident_id: int, actor: str | None, reason: str) -> Incident:
    """Reopen a resolved incident (back to investigating); a reason is required and recorded."""
    if not reason.strip():
        raise InvalidInput("reason: say why the incident is reopened")
    now = rt.clock.now()
    with rt.engine.begin() as conn:
        incident = get_incident(conn, incident_id, lock=True)
        if incident.status is not IncidentStatus.RESOLVED:
            raise InvalidInput(f"incident {incident_id} is {incident.status.value}, not resolved")
        return _reopen(conn, incident, now, actor, reason.strip())


@dataclass(frozen=True)
class Opened:
    incident: Incident
    action: Literal["opened", "reopened", "existing"]
    """``existing``: an open incident already carries this (source, external_key)."""


def open_or_reopen(
    rt: Runtime,
    draft: IncidentDraft,
    *,
    source: str | None = None,
    external_key: str | None = None,
    actor: str | None = None,
    reason: str | None = None,
) -> Opened:
    """Open an incident, unless the same thing is already open or broke again soon after resolving.

    With ``source`` and ``external_key`` (monitoring's id for the alert), an open incident with that key
    is returned as it is. A resolved incident with that key, or else with the same title, resolved
    within ``policy.lifecycle.flap_window`` is reopened (status investigating, ``reopened_count`` + 1,
    event ``reopened``) instead of a new one being opened; the reopened incident takes the key. A key
    held by an incident resolved longer ago moves to the new incident (keys are unique per source)."""
    now = rt.clock.now()
    window = rt.policy.policy.lifecycle.flap_window
    keyed = source is not None and external_key is not None
    with rt.engine.begin() as conn:
        if keyed:
            same_key = (
                conn.execute(
                    select(incidents)
                    .where(incidents.c.source == source, incidents.c.external_key == external_key)
                    .with_for_update()
                )
                .mappings()
                .first()
            )
            if same_key is not None:
                holder = incident_from_row(same_key)
                if holder.status is not IncidentStatus.RESOLVED:
                    return Opened(holder, "existing")
                if _within(holder, now, window):
                    why = f"{source} alert {external_key} fired again within {human(window)} of resolving"
                    return Opened(_reopen(conn, holder, now, actor, why), "reopened")
                conn.execute(update(incidents).where(incidents.c.id == holder.id).values(external_key=None))
        flapped = (
            conn.execute(
                select(incidents)
                .where(
                    incidents.c.title == draft.title,
                    incidents.c.kind == draft.kind,
                    incidents.c.status == IncidentStatus.RESOLVED.value,
                    incidents.c.resolved_at >= now - window,
                )
                .order_by(incidents.c.resolved_at.desc())
                .limit(1)
                .with_for_update()
            )
            .mappings()
            .first()
        )
        if flapped is not None:
            earlier = incident_from_row(flapped)
            if keyed:  # the alert's key now names this incident (no other incident holds it)
                conn.execute(
                    update(incidents)
                    .where(incidents.c.id == earlier.id)
                    .values(source=source, external_key=external_key)
                )
            why = f"{draft.title!r} broke again within {human(window)} of resolving"
            return Opened(_reopen(conn, earlier, now, actor, why), "reopened")
        new_id = insert_incident(
            conn,
            title=draft.title,
            severity=draft.severity,
            components=draft.components,
            status=IncidentStatus.INVESTIGATING,
            at=now,
            actor=actor,
            reason=reason,
            owner=draft.owner,
            kind=draft.kind,
            data_facts=draft.data_facts.model_dump(exclude_none=True) if draft.data_facts else None,
            source=source if keyed else None,
            external_key=external_key if keyed else None,
        )
        return Opened(get_incident(conn, new_id), "opened")


def _within(incident: Incident, now: datetime, window: timedelta) -> bool:
    return incident.resolved_at is not None and now - incident.resolved_at <= window


def set_owner(rt: Runtime, incident_id: int, owner: str | None, actor: str | None) -> Incident:
    """Give the incident an owner (None: nobody); the event records who changed it."""
    cleaned = (owner or "").strip() or None
    if cleaned is not None and len(cleaned) > 200:
        raise InvalidInput("owner: at most 200 characters")
    now = rt.clock.now()
    with rt.engine.begin() as conn:
        before = get_incident(conn, incident_id, lock=True)
        conn.execute(
            update(incidents).where(incidents.c.id == incident_id).values(owner=cleaned, updated_at=now)
        )
        record_event(
            conn,
            incident_id,
            "owner",
            now,
            actor=actor,
            reason=f"owner: {before.owner or 'nobody'} → {cleaned or 'nobody'}",
        )
        return get_incident(conn, incident_id)


class TimelineEntry(BaseModel):
    """One line of an incident's history: an event (status change, approval, …) or an update."""

    at: datetime
    kind: str
    """The event's kind (opened, status, forced_resolve, reopened, approved, …), or ``update``."""
    actor: str | None = None
    from_status: IncidentStatus | None = None
    to_status: IncidentStatus | None = None
    reason: str | None = None
    update_id: int | None = None
    update: Update | None = None


def timeline(rt: Runtime, incident_id: int) -> list[TimelineEntry]:
    """The incident's events and updates, oldest first (an update at its ``published_at``)."""
    with rt.engine.connect() as conn:
        get_incident(conn, incident_id)
        events = conn.execute(
            select(incident_events).where(incident_events.c.incident_id == incident_id)
        ).mappings()
        entries = [
            (
                (row["at"], 0, row["id"]),
                TimelineEntry(
                    at=row["at"],
                    kind=row["kind"],
                    actor=row["actor"],
                    from_status=row["from_status"],
                    to_status=row["to_status"],
                    reason=row["reason"],
                    update_id=row["update_id"],
                ),
            )
            for row in events
        ]
        for row in conn.execute(select(updates).where(updates.c.incident_id == incident_id)).mappings():
            upd = update_from_row(row)
            entries.append(
                (
                    (upd.published_at, 1, upd.id),
                    TimelineEntry(
                        at=upd.published_at, kind="update", actor=upd.author, update_id=upd.id, update=upd
                    ),
                )
            )
    return [entry for _, entry in sorted(entries, key=lambda e: e[0])]
