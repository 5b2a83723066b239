"""The status site snapshot, built from the database for the ``statuspage`` channel.

``channels/`` knows nothing of the database, so the dispatcher reads what the public may see and hands
the status page adapter one ``StatusSnapshot`` (in ``Message.json_body``); the adapter renders and
publishes the site from it. What the public may see:

* only **published public** updates (audience ``public``, state pending or fanned out): never internal
  updates, never internal notes, never updates still scheduled, awaiting approval or rejected;
* an incident or maintenance window appears once it has at least one such update, with the status and
  severity its latest public update gave it (an internal update, a status moved by hand or a severity
  changed since never change what the page says until customers are told);
* open incidents; maintenance that is scheduled or in progress; and the history of the last
  ``history_days`` (90 by default): resolved incidents and finished or cancelled maintenance;
* components: ``[providers.statuspage] components`` in the configured order, then every other component
  a shown incident names. A component shows the worst state an open incident or a maintenance in
  progress gives it: the impact the incident's latest public update (or a person) set for that
  component (``component_impacts``), else what the incident's severity implies.

The snapshot is built when the page is published (not when the update was written), so a retried or
late publish shows the newest state, never an older one.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, cast, get_args

from sqlalchemy import or_, select

from channels.base import ChannelKind, Message
from channels.statuspage.model import (
    COMPONENT_STATUS_ORDER,
    ComponentState,
    ComponentStatus,
    Indicator,
    MaintenanceStage,
    OverallStatus,
    PublicIncident,
    PublicUpdate,
    StatusSnapshot,
)
from dispatcher.domain.errors import ConfigurationError
from dispatcher.domain.models import Audience, IncidentStatus, UpdateState
from dispatcher.engine.runtime import Runtime
from dispatcher.store.schema import component_impacts, incidents, updates

DEFAULT_HISTORY_DAYS = 90
PUBLISHED_STATES = (UpdateState.PENDING.value, UpdateState.FANNED_OUT.value)
"""Updates in these states have been published; the others are not (yet) public."""

_SEVERITY_COMPONENT: dict[str, ComponentStatus] = {
    "minor": "degraded_performance",
    "major": "partial_outage",
    "critical": "major_outage",
}
_INDICATOR_ORDER: tuple[Indicator, ...] = ("none", "maintenance", "minor", "major", "critical")
_DESCRIPTIONS: dict[Indicator, str] = {
    "none": "All systems operational",
    "maintenance": "Maintenance in progress",
    "minor": "Minor service disruption",
    "major": "Partial outage",
    "critical": "Major outage",
}
_STAGES: frozenset[str] = frozenset(get_args(MaintenanceStage))
_FINISHED_STAGES = frozenset({"completed", "cancelled"})


def _site_options(rt: Runtime) -> tuple[list[str], int]:
    """(configured components, history days) from the status page provider's options."""
    provider = rt.providers_for(ChannelKind.STATUSPAGE)[0]
    options = rt.settings.provider_options(provider)
    components = options.get("components", [])
    if not isinstance(components, list) or not all(isinstance(c, str) for c in components):
        raise ConfigurationError(f"providers.{provider}.components: must be a list of component names")
    days = options.get("history_days", DEFAULT_HISTORY_DAYS)
    if not isinstance(days, int) or isinstance(days, bool) or days < 1:
        raise ConfigurationError(f"providers.{provider}.history_days: must be a whole number of days >= 1")
    return [c.strip() for c in components if c.strip()], days


def _public_updates(rt: Runtime, cutoff: datetime) -> tuple[list[Mapping[Any, Any]], dict[int, list[Any]]]:
    """Incidents worth a look (open, or touched since ``cutoff``) that have published public updates,
    and those updates per incident, newest first."""
    public = (
        select(updates.c.incident_id)
        .where(updates.c.audience == Audience.PUBLIC.value)
        .where(updates.c.state.in_(PUBLISHED_STATES))
    )
    with rt.engine.connect() as conn:
        rows: list[Mapping[Any, Any]] = list(
            conn.execute(
                select(incidents)
                .where(incidents.c.id.in_(public))
                .where(
                    or_(
                        incidents.c.status != IncidentStatus.RESOLVED.value,
                        incidents.c.updated_at >= cutoff,
                        incidents.c.resolved_at >= cutoff,
                        incidents.c.ends_at >= cutoff,
                    )
                )
            ).mappings()
        )
        by_incident: dict[int, list[Any]] = defaultdict(list)
        ids = [r["id"] for r in rows]
        for chunk in _chunks(ids, 500):
            found = conn.execute(
                # Only the public columns: the internal note is never even read.
                select(
                    updates.c.id,
                    updates.c.incident_id,
                    updates.c.status,
                    updates.c.message,
                    updates.c.published_at,
                    updates.c.next_update_at,
                    updates.c.kind,
                    updates.c.severity,
                )
                .where(updates.c.incident_id.in_(chunk))
                .where(updates.c.audience == Audience.PUBLIC.value)
                .where(updates.c.state.in_(PUBLISHED_STATES))
                .order_by(updates.c.published_at.desc(), updates.c.id.desc())
            )
            for u in found:
                by_incident[u.incident_id].append(u)
    return rows, by_incident


def _impacts(
    rt: Runtime, incident_ids: Sequence[int], now: datetime
) -> dict[int, dict[str, ComponentStatus]]:
    """Per incident, each component's latest impact in effect now."""
    found: dict[int, dict[str, ComponentStatus]] = defaultdict(dict)
    with rt.engine.connect() as conn:
        for chunk in _chunks(list(incident_ids), 500):
            rows = conn.execute(
                select(
                    component_impacts.c.incident_id, component_impacts.c.component, component_impacts.c.impact
                )
                .where(component_impacts.c.incident_id.in_(chunk), component_impacts.c.effective_at <= now)
                .order_by(component_impacts.c.effective_at, component_impacts.c.id)
            )
            for incident_id, component, impact in rows:
                if impact in COMPONENT_STATUS_ORDER:
                    found[incident_id][component] = cast(ComponentStatus, impact)
    return found


def _chunks(items: Sequence[int], size: int) -> Iterable[Sequence[int]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _stage(row: Mapping[Any, Any], public_status: str, now: datetime) -> MaintenanceStage:
    """A maintenance window's stage: as recorded; from its times when none is recorded."""
    stored = row["maintenance_stage"]
    if stored in _STAGES:
        return cast(MaintenanceStage, stored)
    if public_status == IncidentStatus.RESOLVED.value or row["status"] == IncidentStatus.RESOLVED.value:
        return "completed"
    starts, ends = row["starts_at"], row["ends_at"]
    if ends is not None and now >= ends:
        return "completed"
    if starts is not None and now >= starts:
        return "in_progress"
    return "scheduled"


def _public_incident(
    row: Mapping[Any, Any], timeline: list[Any], now: datetime, impact: Mapping[str, ComponentStatus]
) -> PublicIncident:
    latest = timeline[0]
    is_maintenance = row["kind"] == "maintenance"
    # Only what customers were told: the latest public update's status and severity.
    resolved = latest.status == IncidentStatus.RESOLVED.value
    severity = latest.severity if latest.severity in _SEVERITY_COMPONENT else row["severity"]
    stage = _stage(row, latest.status, now) if is_maintenance else None
    finished = stage in _FINISHED_STAGES if is_maintenance else resolved
    resolved_at = (row["resolved_at"] or latest.published_at) if finished else None
    return PublicIncident(
        id=row["id"],
        kind="maintenance" if is_maintenance else "incident",
        title=row["title"],
        status=IncidentStatus.RESOLVED.value if resolved else latest.status,
        severity=severity,
        components=list(dict.fromkeys([*(row["components"] or []), *impact])),
        opened_at=row["opened_at"],
        updated_at=latest.published_at,
        resolved_at=resolved_at,
        next_update_at=None if finished else latest.next_update_at,
        starts_at=row["starts_at"],
        ends_at=row["ends_at"],
        maintenance_stage=stage,
        path=f"incidents/{row['id']}.html",
        updates=[
            PublicUpdate(
                id=u.id, status=u.status, message=u.message, published_at=u.published_at, kind=u.kind
            )
            for u in timeline
        ],
    )


def _is_finished(item: PublicIncident) -> bool:
    if item.kind == "maintenance":
        return item.maintenance_stage in _FINISHED_STAGES
    return item.status == IncidentStatus.RESOLVED.value


def _components(
    configured: list[str],
    open_items: list[PublicIncident],
    shown: list[PublicIncident],
    impacts: Mapping[int, Mapping[str, ComponentStatus]],
) -> list[ComponentState]:
    names = list(dict.fromkeys([*configured, *sorted({c for i in shown for c in i.components})]))
    worst: dict[str, ComponentStatus] = dict.fromkeys(names, "operational")
    for item in open_items:
        if item.kind == "maintenance" and item.maintenance_stage != "in_progress":
            continue
        for name in item.components:
            state: ComponentStatus
            if item.kind == "maintenance":
                state = "under_maintenance"
            else:
                state = impacts.get(item.id, {}).get(name) or _SEVERITY_COMPONENT[item.severity]
            if COMPONENT_STATUS_ORDER.index(state) > COMPONENT_STATUS_ORDER.index(worst[name]):
                worst[name] = state
    return [ComponentState(name=n, status=worst[n]) for n in names]


def _overall(open_incidents: list[PublicIncident], maintenance: list[PublicIncident]) -> OverallStatus:
    levels: list[Indicator] = ["none"]
    levels += [cast(Indicator, i.severity) for i in open_incidents]
    if any(m.maintenance_stage == "in_progress" for m in maintenance):
        levels.append("maintenance")
    indicator = max(levels, key=_INDICATOR_ORDER.index)
    return OverallStatus(indicator=indicator, description=_DESCRIPTIONS[indicator])


def build_snapshot(rt: Runtime) -> StatusSnapshot:
    """What the status site shows now (see the module docstring)."""
    configured, history_days = _site_options(rt)
    now = rt.clock.now()
    cutoff = now - timedelta(days=history_days)
    rows, timelines = _public_updates(rt, cutoff)
    impacts = _impacts(rt, [r["id"] for r in rows], now)
    open_incidents: list[PublicIncident] = []
    maintenance: list[PublicIncident] = []
    history: list[PublicIncident] = []
    for row in rows:
        timeline = timelines.get(row["id"])
        if not timeline:
            continue
        item = _public_incident(row, timeline, now, impacts.get(row["id"], {}))
        if _is_finished(item):
            assert item.resolved_at is not None
            if item.resolved_at >= cutoff:
                history.append(item)
        elif item.kind == "maintenance":
            maintenance.append(item)
        else:
            open_incidents.append(item)
    open_incidents.sort(key=lambda i: (i.opened_at, i.id), reverse=True)
    maintenance.sort(key=lambda i: (i.starts_at or i.opened_at, i.id))
    history.sort(key=lambda i: (i.resolved_at or i.updated_at, i.id), reverse=True)
    shown = [*open_incidents, *maintenance, *history]
    update_ids = [u.id for item in shown for u in item.updates]
    return StatusSnapshot(
        organisation=rt.settings.organisation,
        site_url=rt.settings.status_page_url,
        generated_at=now,
        last_update_id=max(update_ids) if update_ids else None,
        history_days=history_days,
        status=_overall(open_incidents, maintenance),
        components=_components(configured, [*open_incidents, *maintenance], shown, impacts),
        incidents=open_incidents,
        maintenance=maintenance,
        history=history,
    )


def status_site_message(rt: Runtime, update_id: int) -> Message:
    """The ``statuspage`` message for ``update_id``: the whole site's snapshot, built now."""
    with rt.engine.connect() as conn:
        row = conn.execute(
            select(incidents.c.id, incidents.c.title)
            .join(updates, updates.c.incident_id == incidents.c.id)
            .where(updates.c.id == update_id)
        ).one()
    snapshot = build_snapshot(rt)
    opened = len(snapshot.incidents)
    return Message(
        kind=ChannelKind.STATUSPAGE,
        update_id=update_id,
        incident_id=row.id,
        subject=row.title,
        text=f"{snapshot.status.description}; {opened} open incident{'s' if opened != 1 else ''}",
        json_body=snapshot.model_dump_json(),
    )
