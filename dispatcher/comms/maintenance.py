"""Scheduled maintenance: a planned window announced ahead, reminded, started, changed and ended.

A maintenance is an incident of kind ``maintenance`` with ``starts_at``/``ends_at`` and a stage:

======================  ==================================================  ===============  =========
stage                   when                                                incident status  promise
======================  ==================================================  ===============  =========
``scheduled``           on scheduling (or rescheduling): a public notice    ``identified``   none
``reminded``            ``maintenance.reminder_before`` ahead of the start  ``identified``   none
``in_progress``         at ``starts_at``                                    ``monitoring``   ends_at
``completed``           ``maintenance.completion_grace`` after ``ends_at``  ``resolved``     none
                        (15 minutes), or when someone finishes it
``cancelled``           ``tocsin maintenance cancel`` before the start      ``resolved``     none
======================  ==================================================  ===============  =========

Statuses: the work is known and planned (``identified``); while it runs the team watches it
(``monitoring``); the end of the window resolves it. Completion is the schedule's doing, not a person's
judgement, so it is not subject to the resolve hold.

Windows change, and each change is told to the window's audience:

- **reschedule** (before the start): a new window; the stage goes back to ``scheduled`` so the reminder
  comes before the new start;
- **extend** (before it ends, or while it overruns within the grace): a later end; while it runs the
  notice promises the new end;
- **finish** (while it runs, or overruns): completed now, early or late.

Completion waits for the end of the window plus ``completion_grace``: work that overruns is not called
complete by the clock while the team is still on it; staff are told when the window's end passes
(extend it, or finish it). Every move is claimed with a conditional UPDATE that also checks the window's
times, so a tick never completes a window whose extension has just been made, and two ticks act once.
The notice of a move keeps the window's promise when it comes within the grace (the completion comes
one tick after it ends: never a broken promise for that). Text a person writes goes through the
guardrails. The next-update follow-ups do not apply to maintenance (its schedule is its promise).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import delete, select, update

from dispatcher.comms import guardrails
from dispatcher.comms.lifecycle import insert_incident, record_event
from dispatcher.comms.paging import page
from dispatcher.comms.publish import publish
from dispatcher.domain.errors import InvalidInput, NotFound, TocsinError
from dispatcher.domain.identity import SYSTEM, Identity
from dispatcher.domain.models import Incident, IncidentStatus, Severity, UpdateDraft
from dispatcher.domain.texts import CHANGES, OPEN_STAGES, hhmm, iso_z, maintenance_notice, when
from dispatcher.domain.written_time import WrittenTime
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
    "extend_maintenance",
    "finish_maintenance",
    "get_maintenance",
    "list_maintenance",
    "reschedule_maintenance",
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
    starts_at: WrittenTime
    ends_at: WrittenTime
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


def get_maintenance(rt: Runtime, maintenance_id: int) -> Incident:
    """The maintenance window (``NotFound`` when there is none)."""
    return _get(rt, maintenance_id)


def list_maintenance(rt: Runtime, include_finished: bool = True, limit: int = 100) -> list[Incident]:
    """Maintenance windows, the latest start first."""
    query = select(incidents).where(incidents.c.kind == KIND)
    if not include_finished:
        query = query.where(incidents.c.maintenance_stage.in_(OPEN_STAGES))
    with rt.engine.connect() as conn:
        rows = conn.execute(query.order_by(incidents.c.starts_at.desc()).limit(limit)).mappings()
        return [incident_from_row(r) for r in rows]


# --- publishing a stage --------------------------------------------------------------------------


def _move(rt: Runtime, inc: Incident, **values: object) -> bool:
    """Set ``values`` if the window is still as ``inc`` saw it (stage and times): of two people, or a
    person and a tick, one wins and the other is told."""
    with rt.engine.begin() as conn:
        return bool(
            conn.execute(
                update(incidents)
                .where(
                    incidents.c.id == inc.id,
                    incidents.c.maintenance_stage == inc.maintenance_stage,
                    incidents.c.starts_at == inc.starts_at,
                    incidents.c.ends_at == inc.ends_at,
                )
                .values(**values)
            ).rowcount
        )


def _move_back(rt: Runtime, inc: Incident, **values: object) -> None:
    """Undo a ``_move`` whose notice could not be published (where the move still holds)."""
    with rt.engine.begin() as conn:
        conn.execute(
            update(incidents)
            .where(incidents.c.id == inc.id, *(incidents.c[k] == v for k, v in values.items()))
            .values(maintenance_stage=inc.maintenance_stage, starts_at=inc.starts_at, ends_at=inc.ends_at)
        )


def _claim(rt: Runtime, inc: Incident, to_stage: str) -> bool:
    return _move(rt, inc, maintenance_stage=to_stage)


def _unclaim(rt: Runtime, inc: Incident, claimed: str) -> None:
    """Give a claimed stage back when its notice could not be published."""
    _move_back(rt, inc, maintenance_stage=claimed)


def _announce(
    rt: Runtime,
    queue: TaskQueue,
    inc: Incident,
    notice: str,
    message: str | None = None,
    who: Identity = SYSTEM,
    override_reason: str | None = None,
) -> int:
    """Publish the notice (``notice``: a stage, or ``rescheduled``/``extended``) for the window as
    ``inc`` holds it now (already moved); returns the update id."""
    stage = inc.maintenance_stage or "scheduled"
    status = _STATUS[stage] if notice in CHANGES else _STATUS[notice]
    running = notice == "in_progress" or (notice in CHANGES and stage == "in_progress")
    window = f"{iso_z(inc.starts_at)}/{iso_z(inc.ends_at)}" if inc.starts_at and inc.ends_at else ""
    key = f"maintenance:{inc.id}:{notice}" + (f":{window}" if notice in CHANGES else "")
    draft = UpdateDraft(
        incident_id=inc.id,
        status=status,
        message=maintenance_notice(inc, notice, message),
        next_update_at=inc.ends_at if running else None,
        author=who.name,
        author_token_id=who.token_id,
        kind=KIND,
        idempotency_key=key,
        override_reason=override_reason,
    )
    published = publish(rt, draft, queue).update
    reasons = {"completed": "maintenance window ended", "finished": "finished by hand"}
    with rt.engine.begin() as conn:
        record_event(
            conn,
            inc.id,
            f"maintenance_{notice}",
            rt.clock.now(),
            actor=who.name,
            reason=reasons.get(notice) if who is SYSTEM else (message or reasons.get(notice)),
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


def schedule_maintenance(
    rt: Runtime, queue: TaskQueue, draft: MaintenanceDraft, who: Identity = SYSTEM
) -> Incident:
    """Create the maintenance and publish its notice. Nothing is kept if the notice cannot be published."""
    now = rt.clock.now()
    if draft.starts_at <= now:
        raise InvalidInput(f"start: {when(draft.starts_at)} is not in the future (now {when(now)})")
    # Checked here, not by the model: two well-formed times in the wrong order are a refusal of what
    # the request asks (the API's 409), like a start already past, not a malformed request.
    if draft.ends_at <= draft.starts_at:
        raise InvalidInput(f"end: {when(draft.ends_at)} must be after start ({when(draft.starts_at)})")
    _check_text(rt, draft.title, draft.components, draft.message, draft.override_reason, draft.severity)
    with rt.engine.begin() as conn:
        new_id = insert_incident(
            conn,
            title=draft.title,
            severity=draft.severity,
            components=draft.components,
            status=IncidentStatus.IDENTIFIED,
            at=now,
            actor=who.name,
            reason="maintenance scheduled",
            kind=KIND,
            starts_at=draft.starts_at,
            ends_at=draft.ends_at,
            maintenance_stage="scheduled",
        )
    inc = _get(rt, new_id)
    try:
        _announce(rt, queue, inc, "scheduled", draft.message, who, draft.override_reason)
    except TocsinError:
        with rt.engine.begin() as conn:  # e.g. no channel enabled: leave nothing half-made
            conn.execute(delete(incident_events).where(incident_events.c.incident_id == new_id))
            conn.execute(delete(incidents).where(incidents.c.id == new_id))
        raise
    return _get(rt, new_id)


def cancel_maintenance(
    rt: Runtime, queue: TaskQueue, maintenance_id: int, who: Identity = SYSTEM
) -> Incident:
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
        _announce(rt, queue, _get(rt, maintenance_id), "cancelled", who=who)
    except TocsinError:
        _unclaim(rt, inc, "cancelled")
        raise
    return _get(rt, maintenance_id)


def _changed(
    rt: Runtime,
    queue: TaskQueue,
    inc: Incident,
    notice: str,
    who: Identity,
    message: str | None,
    override_reason: str | None,
    **values: object,
) -> Incident:
    """Move the window (``values``) and tell its audience; undone when the notice cannot go out."""
    _check_text(rt, inc.title, inc.components, message, override_reason, inc.severity)
    if not _move(rt, inc, **values):
        raise InvalidInput(f"maintenance {inc.id} changed meanwhile; look again (`tocsin maintenance list`)")
    try:
        _announce(rt, queue, _get(rt, inc.id), notice, message, who, override_reason)
    except TocsinError:
        _move_back(rt, inc, **values)
        raise
    return _get(rt, inc.id)


def reschedule_maintenance(
    rt: Runtime,
    queue: TaskQueue,
    maintenance_id: int,
    starts_at: datetime,
    ends_at: datetime,
    who: Identity = SYSTEM,
    message: str | None = None,
    override_reason: str | None = None,
) -> Incident:
    """Move a window that has not started to a new one; its audience is told, reminded again later."""
    inc = _get(rt, maintenance_id)
    window = MaintenanceDraft(title=inc.title, starts_at=starts_at, ends_at=ends_at)  # the same checks
    if inc.maintenance_stage not in ("scheduled", "reminded"):
        raise InvalidInput(
            f"maintenance {maintenance_id} is {inc.maintenance_stage}: only a window that has not started "
            "can be rescheduled (extend or finish a running one)"
        )
    now = rt.clock.now()
    if window.starts_at <= now:
        raise InvalidInput(f"start: {when(window.starts_at)} is not in the future (now {when(now)})")
    if (window.starts_at, window.ends_at) == (inc.starts_at, inc.ends_at):
        raise InvalidInput(f"maintenance {maintenance_id} already has that window")
    return _changed(
        rt,
        queue,
        inc,
        "rescheduled",
        who,
        message,
        override_reason,
        starts_at=window.starts_at,
        ends_at=window.ends_at,
        maintenance_stage="scheduled",
    )


def extend_maintenance(
    rt: Runtime,
    queue: TaskQueue,
    maintenance_id: int,
    ends_at: datetime,
    who: Identity = SYSTEM,
    message: str | None = None,
    override_reason: str | None = None,
) -> Incident:
    """Make an open window end later (also while it overruns, within the grace); its audience is told,
    and while it runs the new end is its promise."""
    inc = _get(rt, maintenance_id)
    if inc.maintenance_stage not in OPEN_STAGES:
        raise InvalidInput(f"maintenance {maintenance_id} is {inc.maintenance_stage}: it cannot be extended")
    assert inc.ends_at is not None
    if ends_at.tzinfo is None:
        raise InvalidInput("end: give a time zone (e.g. 2026-11-26T05:00Z)")
    if ends_at <= inc.ends_at:
        raise InvalidInput(f"end: {when(ends_at)} is not after the window's end ({when(inc.ends_at)})")
    if ends_at <= rt.clock.now():
        raise InvalidInput(f"end: {when(ends_at)} is not in the future")
    return _changed(rt, queue, inc, "extended", who, message, override_reason, ends_at=ends_at)


def finish_maintenance(
    rt: Runtime,
    queue: TaskQueue,
    maintenance_id: int,
    who: Identity = SYSTEM,
    message: str | None = None,
    override_reason: str | None = None,
) -> Incident:
    """Call a running (or overrunning) window complete now; its audience is told."""
    inc = _get(rt, maintenance_id)
    if inc.maintenance_stage != "in_progress":
        hint = (
            " (cancel one that has not started)" if inc.maintenance_stage in ("scheduled", "reminded") else ""
        )
        raise InvalidInput(
            f"maintenance {maintenance_id} is {inc.maintenance_stage}: it is not running{hint}"
        )
    _check_text(rt, inc.title, inc.components, message, override_reason, inc.severity)
    if not _claim(rt, inc, "completed"):
        raise InvalidInput(f"maintenance {maintenance_id} changed meanwhile; look again")
    try:
        done = _get(rt, maintenance_id)
        text = message if message else None
        _announce(rt, queue, done, "completed", text, who, override_reason)
    except TocsinError:
        _unclaim(rt, inc, "completed")
        raise
    return _get(rt, maintenance_id)


def _next_stage(rt: Runtime, inc: Incident, now: datetime) -> str | None:
    assert inc.starts_at is not None and inc.ends_at is not None
    rules = rt.policy.policy.maintenance
    if now >= inc.ends_at + rules.completion_grace:
        return "completed"
    if now >= inc.starts_at:
        return "in_progress" if inc.maintenance_stage in ("scheduled", "reminded") else None
    remind_at = inc.starts_at - rules.reminder_before
    # updated_at is when its window was last announced (scheduled, or rescheduled): no reminder when
    # that was already inside the reminder window (the announcement was the reminder).
    if inc.maintenance_stage == "scheduled" and now >= remind_at and inc.updated_at < remind_at:
        return "reminded"
    return None


def _overrun(rt: Runtime, queue: TaskQueue, inc: Incident, now: datetime) -> int | None:
    """Tell staff once that a running window has passed its end: extend it or finish it."""
    assert inc.ends_at is not None
    if inc.maintenance_stage != "in_progress" or now < inc.ends_at:
        return None
    complete_at = inc.ends_at + rt.policy.policy.maintenance.completion_grace
    text = (
        f"MAINTENANCE OVERRUN: maintenance #{inc.id} '{inc.title}' was due to end at {hhmm(inc.ends_at)}. "
        f"It is announced complete at {hhmm(complete_at)} unless you extend it "
        f"(`tocsin maintenance extend {inc.id} --end …`) or finish it now "
        f"(`tocsin maintenance finish {inc.id}`)."
    )
    upd = page(rt, queue, inc, text, f"maintenance:{inc.id}:overrun:{iso_z(inc.ends_at)}", [])
    return upd.id


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
        if stage is None:
            try:
                _overrun(rt, queue, inc, now)
            except TocsinError as exc:
                report.errors.append(f"maintenance {inc.id}: {exc}")
            continue
        if not _claim(rt, inc, stage):
            continue
        try:
            _announce(rt, queue, _get(rt, inc.id), stage)
        except TocsinError as exc:
            _unclaim(rt, inc, stage)  # the next tick tries again
            log.warning("maintenance %s: %s notice failed: %s", inc.id, stage, exc)
            report.errors.append(f"maintenance {inc.id}: {exc}")
            continue
        report.stages.append((inc.id, stage))
    return report
