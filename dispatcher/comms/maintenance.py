"""Scheduled maintenance: a planned window announced ahead, reminded, started and ended by Tocsin.

A maintenance is an incident of kind ``maintenance`` with ``starts_at``/``ends_at`` and a stage:

======================  ==================================================  ===============  =========
stage                   when                                                incident status  promise
======================  ==================================================  ===============  =========
``scheduled``           on scheduling: a public notice with the window      ``identified``   none
``reminded``            ``maintenance.reminder_before`` ahead of the start  ``identified``   none
``in_progress``         at ``starts_at``                                    ``monitoring``   ends_at
``completed``           at ``ends_at``: the incident is resolved            ``resolved``     none
``cancelled``           ``tocsin maintenance cancel`` before the start      ``resolved``     none
======================  ==================================================  ===============  =========

Statuses: the work is known and planned (``identified``); while it runs the team watches it
(``monitoring``, which also starts any resolve hold at the start of the window); the end of the window
resolves it. Completion is the schedule's doing, not a person's judgement, so it is not subject to the
resolve hold. No reminder is sent when the maintenance was scheduled already inside the reminder window
(the scheduling notice was the reminder). Every stage is claimed with a conditional UPDATE before its
notice is published (idempotency key ``maintenance:<id>:<stage>``), so two ticks act once; the promise
of the next-update follow-ups does not apply to maintenance (its schedule is its promise).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from sqlalchemy import delete, select, update

from dispatcher.comms import guardrails
from dispatcher.comms.lifecycle import insert_incident, record_event
from dispatcher.comms.publish import publish
from dispatcher.domain.errors import InvalidInput, NotFound, TocsinError
from dispatcher.domain.models import Incident, IncidentStatus, Severity, UpdateDraft
from dispatcher.domain.texts import OPEN_STAGES, maintenance_notice, when
from dispatcher.engine.runtime import Runtime
from dispatcher.engine.task_queue import TaskQueue
from dispatcher.store import queries
from dispatcher.store.queries import incident_from_row
from dispatcher.store.schema import incident_events, incidents

__all__ = [
    "MaintenanceDraft",
    "MaintenanceReport",
    "advance_maintenance",
    "cancel_maintenance",
    "list_maintenance",
    "schedule_maintenance",
]

log = logging.getLogger(__name__)

KIND = "maintenance"
AUTHOR = "tocsin"
_STATUS = {
    "scheduled": IncidentStatus.IDENTIFIED,
    "reminded": IncidentStatus.IDENTIFIED,
    "in_progress": IncidentStatus.MONITORING,
    "completed": IncidentStatus.RESOLVED,
    "cancelled": IncidentStatus.RESOLVED,
}


class MaintenanceDraft(BaseModel):
    """What scheduling a maintenance window takes. Times are aware datetimes (UTC or any offset)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    title: str = Field(min_length=3, max_length=200)
    starts_at: datetime
    ends_at: datetime
    components: list[str] = Field(default_factory=list)
    message: str | None = Field(default=None, min_length=1, max_length=3000)
    """The announcement; the window is added to it. None: a standard text."""
    severity: Severity = Severity.MINOR
    """Who hears of it: subscribers whose minimum severity is at most this."""
    override_reason: str | None = Field(default=None, max_length=1000)
    """Why guardrail errors in the title, components or message are overridden (recorded)."""

    @field_validator("starts_at", "ends_at")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("give a time zone (e.g. 2026-11-26T02:00Z)")
        return value

    @field_validator("components")
    @classmethod
    def _clean_components(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(c.strip() for c in value if c.strip()))

    @model_validator(mode="after")
    def _end_after_start(self) -> MaintenanceDraft:
        if self.ends_at <= self.starts_at:
            raise ValueError(f"end ({when(self.ends_at)}) must be after start ({when(self.starts_at)})")
        return self


@dataclass
class MaintenanceReport:
    stages: list[tuple[int, str]] = field(default_factory=list)
    """(maintenance id, stage it moved to), in the order they happened."""
    errors: list[str] = field(default_factory=list)


# --- reading -------------------------------------------------------------------------------------


def _get(rt: Runtime, maintenance_id: int) -> Incident:
    with rt.engine.connect() as conn:
        found = queries.find_incident(
            conn, select(incidents).where(incidents.c.id == maintenance_id, incidents.c.kind == KIND)
        )
    if found is None:
        raise NotFound(f"no maintenance {maintenance_id}")
    return found


def list_maintenance(rt: Runtime, include_finished: bool = True, limit: int = 100) -> list[Incident]:
    """Maintenance windows, the latest start first."""
    query = select(incidents).where(incidents.c.kind == KIND)
    if not include_finished:
        query = query.where(incidents.c.maintenance_stage.in_(OPEN_STAGES))
    with rt.engine.connect() as conn:
        rows = conn.execute(query.order_by(incidents.c.starts_at.desc()).limit(limit)).mappings()
        return [incident_from_row(r) for r in rows]


# --- publishing a stage --------------------------------------------------------------------------


def _claim(rt: Runtime, inc: Incident, to_stage: str) -> bool:
    with rt.engine.begin() as conn:
        return bool(
            conn.execute(
                update(incidents)
                .where(incidents.c.id == inc.id, incidents.c.maintenance_stage == inc.maintenance_stage)
                .values(maintenance_stage=to_stage)
            ).rowcount
        )


def _unclaim(rt: Runtime, inc: Incident, claimed: str) -> None:
    """Give a claimed stage back when its notice could not be published."""
    with rt.engine.begin() as conn:
        conn.execute(
            update(incidents)
            .where(incidents.c.id == inc.id, incidents.c.maintenance_stage == claimed)
            .values(maintenance_stage=inc.maintenance_stage)
        )


def _announce(rt: Runtime, queue: TaskQueue, inc: Incident, stage: str, message: str | None = None) -> int:
    """Publish the notice of ``stage`` (already claimed); returns the update id."""
    promise = inc.ends_at if stage == "in_progress" else None
    draft = UpdateDraft(
        incident_id=inc.id,
        status=_STATUS[stage],
        message=maintenance_notice(inc, stage, message),
        next_update_at=promise,
        author=AUTHOR,
        kind=KIND,
        idempotency_key=f"maintenance:{inc.id}:{stage}",
    )
    published = publish(rt, draft, queue).update
    with rt.engine.begin() as conn:
        record_event(
            conn,
            inc.id,
            f"maintenance_{stage}",
            rt.clock.now(),
            actor=AUTHOR,
            reason="maintenance window ended" if stage == "completed" else None,
            update_id=published.id,
        )
    return published.id


def _check_text(
    rt: Runtime,
    title: str,
    components: list[str],
    message: str | None,
    override_reason: str | None,
    severity: Severity,
) -> None:
    """A person wrote these words: the guardrails check them like any public text (no leaks, no vague
    timing), before anything is written."""
    probe = Incident(
        id=0,
        title=title,
        status=IncidentStatus.IDENTIFIED,
        severity=severity,
        components=components,
        opened_at=rt.clock.now(),
        updated_at=rt.clock.now(),
        kind=KIND,
    )
    findings = guardrails.maintenance_findings(rt, probe, message, title, components)
    guardrails.refuse_unless_overridden(findings, override_reason)


def schedule_maintenance(rt: Runtime, queue: TaskQueue, draft: MaintenanceDraft) -> Incident:
    """Create the maintenance and publish its notice. Nothing is kept if the notice cannot be published."""
    now = rt.clock.now()
    if draft.starts_at <= now:
        raise InvalidInput(f"start: {when(draft.starts_at)} is not in the future (now {when(now)})")
    _check_text(rt, draft.title, draft.components, draft.message, draft.override_reason, draft.severity)
    with rt.engine.begin() as conn:
        new_id = insert_incident(
            conn,
            title=draft.title,
            severity=draft.severity,
            components=draft.components,
            status=IncidentStatus.IDENTIFIED,
            at=now,
            actor=AUTHOR,
            reason="maintenance scheduled",
            kind=KIND,
            starts_at=draft.starts_at,
            ends_at=draft.ends_at,
            maintenance_stage="scheduled",
        )
    inc = _get(rt, new_id)
    try:
        _announce(rt, queue, inc, "scheduled", draft.message)
    except TocsinError:
        with rt.engine.begin() as conn:  # e.g. no channel enabled: leave nothing half-made
            conn.execute(delete(incident_events).where(incident_events.c.incident_id == new_id))
            conn.execute(delete(incidents).where(incidents.c.id == new_id))
        raise
    return _get(rt, new_id)


def cancel_maintenance(rt: Runtime, queue: TaskQueue, maintenance_id: int) -> Incident:
    """Call off a maintenance that has not started; its audience is told."""
    inc = _get(rt, maintenance_id)
    if inc.maintenance_stage not in ("scheduled", "reminded"):
        raise InvalidInput(
            f"maintenance {maintenance_id} is {inc.maintenance_stage}: only a maintenance that has not "
            "started can be cancelled"
        )
    if not _claim(rt, inc, "cancelled"):
        raise InvalidInput(f"maintenance {maintenance_id} changed meanwhile; look again")
    try:
        _announce(rt, queue, inc, "cancelled")
    except TocsinError:
        _unclaim(rt, inc, "cancelled")
        raise
    return _get(rt, maintenance_id)


def _next_stage(rt: Runtime, inc: Incident, now: datetime) -> str | None:
    assert inc.starts_at is not None and inc.ends_at is not None
    if now >= inc.ends_at:
        return "completed"
    if now >= inc.starts_at:
        return "in_progress" if inc.maintenance_stage in ("scheduled", "reminded") else None
    remind_at = inc.starts_at - rt.policy.policy.maintenance.reminder_before
    if inc.maintenance_stage == "scheduled" and now >= remind_at and inc.opened_at < remind_at:
        return "reminded"
    return None


def advance_maintenance(rt: Runtime, queue: TaskQueue) -> MaintenanceReport:
    """Move every open maintenance to the stage its clock says, announcing each move once."""
    now = rt.clock.now()
    report = MaintenanceReport()
    with rt.engine.connect() as conn:
        rows = conn.execute(
            select(incidents)
            .where(incidents.c.kind == KIND, incidents.c.maintenance_stage.in_(OPEN_STAGES))
            .order_by(incidents.c.starts_at, incidents.c.id)
        ).mappings()
        open_ones = [incident_from_row(r) for r in rows]
    for inc in open_ones:
        stage = _next_stage(rt, inc, now)
        if stage is None or not _claim(rt, inc, stage):
            continue
        try:
            _announce(rt, queue, inc, stage)
        except TocsinError as exc:
            _unclaim(rt, inc, stage)  # the next tick tries again
            log.warning("maintenance %s: %s notice failed: %s", inc.id, stage, exc)
            report.errors.append(f"maintenance {inc.id}: {exc}")
            continue
        report.stages.append((inc.id, stage))
    return report
