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
* components: those defined in the database (``dispatcher.comms.components``) in page order, then
  ``[providers.statuspage] components`` not defined there, then every other component a shown incident
  names. A component shows the worst of: each open incident's impact on it (its latest recorded
  ``component_impacts`` row, issue 15's table; without one, what the incident's severity implies), a
  maintenance in progress naming it, and a status set by hand;
* each component's uptime bar over ``uptime_days`` (``dispatcher.domain.uptime``), from the same
  impact intervals and the statuses set by hand (``component_status_changes``).

Staff's internal site (``build_snapshot(internal=True)``) shows every published update, internal notes
included; it goes only to the ``internal-*`` targets (``INTERNAL_TARGETS``).

The snapshot is built when the page is published (not when the update was written), so a retried or
late publish shows the newest state, never an older one.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, cast, get_args

from sqlalchemy import Connection, or_, select

from channels.base import ChannelError, ChannelKind, Message, Outcome, Recipient
from channels.statuspage.model import (
    COMPONENT_STATUS_ORDER,
    ComponentState,
    ComponentStatus,
    DayIncident,
    Indicator,
    MaintenanceStage,
    OverallStatus,
    PublicIncident,
    PublicUpdate,
    SiteBundle,
    StatusSnapshot,
    UptimeDay,
)
from dispatcher.domain.components import slugify
from dispatcher.domain.errors import ConfigurationError
from dispatcher.domain.models import Audience, IncidentStatus, UpdateState
from dispatcher.domain.uptime import Interval, component_uptime, worse
from dispatcher.engine.runtime import Runtime
from dispatcher.store.schema import (
    component_impacts,
    component_status_changes,
    components,
    incidents,
    updates,
)

DEFAULT_HISTORY_DAYS = 90
DEFAULT_UPTIME_DAYS = 90
PUBLISHED_STATES = (UpdateState.PENDING.value, UpdateState.FANNED_OUT.value)
"""Updates in these states have been published; the others are not (yet) public."""
INTERNAL_TARGETS = ("internal-directory", "internal-s3")
"""Broadcast targets of staff's internal site (``internal_directory``, ``internal_s3_bucket``)."""

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
_LEVELS: frozenset[str] = frozenset(COMPONENT_STATUS_ORDER)


def _whole_days(provider: str, options: Mapping[str, Any], key: str, default: int) -> int:
    days = options.get(key, default)
    if not isinstance(days, int) or isinstance(days, bool) or days < 1:
        raise ConfigurationError(f"providers.{provider}.{key}: must be a whole number of days >= 1")
    return days


def _site_options(rt: Runtime) -> tuple[list[str], int, int, str]:
    """(configured components, history days, uptime days, page id) from the status page options."""
    provider = rt.providers_for(ChannelKind.STATUSPAGE)[0]
    options = rt.settings.provider_options(provider)
    configured = options.get("components", [])
    if not isinstance(configured, list) or not all(isinstance(c, str) for c in configured):
        raise ConfigurationError(f"providers.{provider}.components: must be a list of component names")
    history = _whole_days(provider, options, "history_days", DEFAULT_HISTORY_DAYS)
    uptime = _whole_days(provider, options, "uptime_days", DEFAULT_UPTIME_DAYS)
    page_id = str(options.get("page_id") or "").strip() or _page_id(rt.settings.organisation)
    return [c.strip() for c in configured if c.strip()], history, uptime, page_id


def _page_id(organisation: str) -> str:
    """A stable page id from the organisation's name (Statuspage's are 12 characters)."""
    return hashlib.sha256(organisation.encode()).hexdigest()[:12]


def internal_site_configured(rt: Runtime) -> bool:
    """Whether staff's internal status site has a target of its own."""
    return any(t in INTERNAL_TARGETS for t in rt.broadcast_targets(ChannelKind.STATUSPAGE))


def _shown_updates(internal: bool) -> Any:
    """Which updates a site shows: published public ones; staff's site shows every published one."""
    where = updates.c.state.in_(PUBLISHED_STATES)
    return where if internal else where & (updates.c.audience == Audience.PUBLIC.value)


def _public_updates(
    conn: Connection, cutoff: datetime, internal: bool = False
) -> tuple[list[Mapping[Any, Any]], dict[int, list[Any]]]:
    """Incidents worth a look (open, or touched since ``cutoff``) that have updates the site shows,
    and those updates per incident, newest first."""
    shown = _shown_updates(internal)
    public = select(updates.c.incident_id).where(shown)
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
    # The internal note is read only for staff's site: the public one never even reads it.
    columns = [
        updates.c.id,
        updates.c.incident_id,
        updates.c.status,
        updates.c.message,
        updates.c.published_at,
        updates.c.next_update_at,
        updates.c.kind,
        updates.c.audience,
        updates.c.severity,
    ]
    if internal:
        columns.append(updates.c.internal_note)
    by_incident: dict[int, list[Any]] = defaultdict(list)
    ids = [r["id"] for r in rows]
    for chunk in _chunks(ids, 500):
        found = conn.execute(
            select(*columns)
            .where(updates.c.incident_id.in_(chunk))
            .where(shown)
            .order_by(updates.c.published_at.desc(), updates.c.id.desc())
        )
        for u in found:
            by_incident[u.incident_id].append(u)
    return rows, by_incident


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


def _update(u: Any, internal: bool) -> PublicUpdate:
    return PublicUpdate(
        id=u.id,
        status=u.status,
        message=u.message,
        published_at=u.published_at,
        kind=u.kind,
        audience=u.audience if internal else "public",
        internal_note=u.internal_note if internal else None,
    )


def _public_incident(
    row: Mapping[Any, Any],
    timeline: list[Any],
    now: datetime,
    impacts: Mapping[str, ComponentStatus],
    internal: bool = False,
) -> PublicIncident:
    latest = timeline[0]
    is_maintenance = row["kind"] == "maintenance"
    # Only what customers were told: the latest published update's status and severity (a status moved
    # by hand, or a severity changed since, shows once an update tells people).
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
        components=list(row["components"] or []),
        opened_at=row["opened_at"],
        updated_at=latest.published_at,
        resolved_at=resolved_at,
        next_update_at=None if finished else latest.next_update_at,
        starts_at=row["starts_at"],
        ends_at=row["ends_at"],
        maintenance_stage=stage,
        path=f"incidents/{row['id']}.html",
        updates=[_update(u, internal) for u in timeline],
        impacts=dict(impacts) if not finished else dict.fromkeys(impacts, "operational"),
    )


def _is_finished(item: PublicIncident) -> bool:
    if item.kind == "maintenance":
        return item.maintenance_stage in _FINISHED_STAGES
    return item.status == IncidentStatus.RESOLVED.value


# --- per-component impact and uptime ---------------------------------------------------------------


def _recorded_impacts(conn: Connection, incident_ids: Sequence[int], now: datetime) -> dict[int, list[Any]]:
    """Incident id -> its recorded per-component impact rows in effect by ``now`` (issue 15's table),
    oldest first."""
    found: dict[int, list[Any]] = defaultdict(list)
    for chunk in _chunks(list(incident_ids), 500):
        for r in conn.execute(
            select(
                component_impacts.c.incident_id,
                component_impacts.c.component,
                component_impacts.c.impact,
                component_impacts.c.effective_at,
            )
            .where(component_impacts.c.incident_id.in_(chunk), component_impacts.c.effective_at <= now)
            .order_by(component_impacts.c.effective_at, component_impacts.c.id)
        ):
            if r.impact in _LEVELS:
                found[r.incident_id].append(r)
    return found


def _incident_intervals(row: Mapping[Any, Any], recorded: list[Any], now: datetime) -> list[Interval]:
    """How an incident hit each component, as intervals: from its recorded impact rows; without any,
    every component it names at the level its severity gives, from opening to resolution."""
    end = row["resolved_at"] if row["status"] == IncidentStatus.RESOLVED.value else None
    if row["kind"] == "maintenance":
        if row["maintenance_stage"] == "cancelled" or row["starts_at"] is None or row["starts_at"] > now:
            return []
        until = row["resolved_at"] or row["ends_at"] if end is not None else None
        return [
            Interval(c, "under_maintenance", row["starts_at"], until, row["id"])
            for c in row["components"] or []
        ]
    if not recorded:
        level = _SEVERITY_COMPONENT.get(row["severity"], "partial_outage")
        return [Interval(c, level, row["opened_at"], end, row["id"]) for c in row["components"] or []]
    per_component: dict[str, list[Any]] = defaultdict(list)
    for r in recorded:
        per_component[r.component].append(r)
    out: list[Interval] = []
    for name, changes in per_component.items():
        for this, following in zip(changes, [*changes[1:], None], strict=True):
            stop = following.effective_at if following is not None else end
            if this.impact != "operational" and (stop is None or stop > this.effective_at):
                out.append(Interval(name, this.impact, this.effective_at, stop, row["id"]))
    return out


def _current_impacts(recorded: list[Any], row: Mapping[Any, Any]) -> dict[str, ComponentStatus]:
    """Component -> impact as of now: the latest recorded row per component, or the severity's level."""
    if row["kind"] == "maintenance":
        return {}
    if not recorded:
        level = _SEVERITY_COMPONENT.get(row["severity"], "partial_outage")
        return dict.fromkeys(row["components"] or [], level)
    latest: dict[str, ComponentStatus] = {}
    for r in recorded:
        latest[r.component] = cast(ComponentStatus, r.impact)
    return latest


def _manual_intervals(conn: Connection) -> list[Interval]:
    """Statuses people set by hand, each until the next one of the same component."""
    rows = conn.execute(
        select(
            component_status_changes.c.component,
            component_status_changes.c.status,
            component_status_changes.c.effective_at,
        ).order_by(component_status_changes.c.effective_at, component_status_changes.c.id)
    ).all()
    per_component: dict[str, list[Any]] = defaultdict(list)
    for r in rows:
        per_component[r.component].append(r)
    out: list[Interval] = []
    for name, changes in per_component.items():
        for this, following in zip(changes, [*changes[1:], None], strict=True):
            if this.status != "operational" and this.status in _LEVELS:
                out.append(
                    Interval(
                        name, this.status, this.effective_at, following.effective_at if following else None
                    )
                )
    return out


def _configured_components(conn: Connection) -> list[Mapping[Any, Any]]:
    return list(
        conn.execute(select(components).order_by(components.c.position, components.c.name)).mappings()
    )


def _components(
    defined: list[Mapping[Any, Any]],
    configured: list[str],
    items: list[PublicIncident],
    intervals: list[Interval],
    now: datetime,
    uptime_days: int,
) -> list[ComponentState]:
    """Components in page order (defined ones by position, then the configuration's list, then any
    other an incident names), each with its status now and its uptime history."""
    by_name: dict[str, ComponentState] = {}
    for r in defined:
        by_name[r["name"]] = ComponentState(
            name=r["name"],
            status=cast(ComponentStatus, r["status"]) if r["status"] in _LEVELS else "operational",
            slug=r["slug"],
            group=r["group_name"],
            description=r["description"],
            position=r["position"],
            created_at=r["created_at"],
            updated_at=r["updated_at"],
        )
    extra = [*configured, *sorted({c for i in items for c in i.components})]
    slugs = {c.slug for c in by_name.values()}
    for name in extra:
        if name in by_name:
            continue
        slug = slugify(name)
        while slug in slugs:
            slug += "-x"
        slugs.add(slug)
        by_name[name] = ComponentState(name=name, status="operational", slug=slug, position=len(by_name))
    titles = {i.id: (i.title, i.path) for i in items}
    out: list[ComponentState] = []
    for state in by_name.values():
        status = state.status
        for item in items:
            if _is_finished(item):
                continue
            if item.kind == "maintenance":
                if item.maintenance_stage == "in_progress" and state.name in item.components:
                    status = cast(ComponentStatus, worse(status, "under_maintenance"))
            elif state.name in item.impacts:
                status = cast(ComponentStatus, worse(status, item.impacts[state.name]))
        history = component_uptime(state.name, intervals, now, uptime_days, since=state.created_at)
        days = [
            UptimeDay(
                date=d.day,
                uptime=d.uptime,
                worst=cast(ComponentStatus, d.worst),
                incidents=[
                    DayIncident(id=i, title=titles[i][0], path=titles[i][1])
                    for i in d.incident_ids
                    if i in titles
                ],
            )
            for d in history.days
        ]
        out.append(state.model_copy(update={"status": status, "uptime": history.uptime, "days": days}))
    return out


def _overall(
    open_incidents: list[PublicIncident], maintenance: list[PublicIncident], by_hand_set: list[str]
) -> OverallStatus:
    levels: list[Indicator] = ["none"]
    levels += [cast(Indicator, i.severity) for i in open_incidents]
    if any(m.maintenance_stage == "in_progress" for m in maintenance):
        levels.append("maintenance")
    # A status set by hand between incidents shows in the banner too.
    by_hand: dict[str, Indicator] = {
        "degraded_performance": "minor",
        "partial_outage": "major",
        "major_outage": "critical",
        "under_maintenance": "maintenance",
    }
    levels += [by_hand[status] for status in by_hand_set if status in by_hand]
    indicator = max(levels, key=_INDICATOR_ORDER.index)
    return OverallStatus(indicator=indicator, description=_DESCRIPTIONS[indicator])


def build_snapshot(rt: Runtime, internal: bool = False) -> StatusSnapshot:
    """What the status site shows now (see the module docstring); ``internal``: staff's site, with
    internal updates and notes."""
    configured, history_days, uptime_days, page_id = _site_options(rt)
    now = rt.clock.now()
    cutoff = now - timedelta(days=history_days)
    looked_back = now - timedelta(days=max(history_days, uptime_days + 1))
    with rt.engine.connect() as conn:
        rows, timelines = _public_updates(conn, looked_back, internal)
        rows = [r for r in rows if timelines.get(r["id"])]
        recorded = _recorded_impacts(conn, [r["id"] for r in rows], now)
        intervals = _manual_intervals(conn)
        defined = _configured_components(conn)
    open_incidents: list[PublicIncident] = []
    maintenance: list[PublicIncident] = []
    history: list[PublicIncident] = []
    everything: list[PublicIncident] = []
    for row in rows:
        item = _public_incident(
            row, timelines[row["id"]], now, _current_impacts(recorded[row["id"]], row), internal
        )
        intervals += _incident_intervals(row, recorded[row["id"]], now)
        everything.append(item)
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
    parts = _components(defined, configured, everything, intervals, now, uptime_days)
    return StatusSnapshot(
        organisation=rt.settings.organisation,
        site_url=rt.settings.status_page_url,
        generated_at=now,
        last_update_id=max(update_ids) if update_ids else None,
        history_days=history_days,
        uptime_days=uptime_days,
        page_id=page_id,
        # Statuspage's own name for UTC in its files; the page shows times in this zone, with UTC.
        time_zone="Etc/UTC" if rt.settings.timezone == "UTC" else rt.settings.timezone,
        audience="internal" if internal else "public",
        subscribe_url=(rt.settings.public_url.rstrip("/") + "/subscribe") if rt.settings.public_url else None,
        status=_overall(open_incidents, maintenance, [r["status"] for r in defined]),
        components=parts,
        incidents=open_incidents,
        maintenance=maintenance,
        history=history,
    )


def build_bundle(rt: Runtime) -> SiteBundle:
    """The public site, and staff's internal site when it has a target."""
    internal = build_snapshot(rt, internal=True) if internal_site_configured(rt) else None
    return SiteBundle(public=build_snapshot(rt), internal=internal)


def status_site_message(rt: Runtime, update_id: int) -> Message:
    """The ``statuspage`` message for ``update_id``: the sites' snapshots, built now."""
    with rt.engine.connect() as conn:
        row = conn.execute(
            select(incidents.c.id, incidents.c.title)
            .join(updates, updates.c.incident_id == incidents.c.id)
            .where(updates.c.id == update_id)
        ).one()
    return site_message(rt, update_id, row.id, row.title)


def site_message(rt: Runtime, update_id: int, incident_id: int, subject: str) -> Message:
    bundle = build_bundle(rt)
    snapshot = bundle.public
    opened = len(snapshot.incidents)
    return Message(
        kind=ChannelKind.STATUSPAGE,
        update_id=update_id,
        incident_id=incident_id,
        subject=subject,
        text=f"{snapshot.status.description}; {opened} open incident{'s' if opened != 1 else ''}",
        json_body=bundle.model_dump_json(),
    )


def republish_site(rt: Runtime) -> dict[str, str | None]:
    """Rebuild and publish the status sites now, outside any update (a component's status set by
    hand, a component added or reordered). Destination -> None when published, else what went wrong.

    Empty when the status page channel is off. The next update's publish (through the ledger, with
    its retries) carries the same state, so a destination that failed here catches up then."""
    if not rt.settings.channels[ChannelKind.STATUSPAGE].enabled:
        return {}
    targets = rt.broadcast_targets(ChannelKind.STATUSPAGE)
    # Delivery ids <= 0: out of the ledger (see channels.base.Recipient).
    recipients = [Recipient(delivery_id=-n, address=t) for n, t in enumerate(targets)]
    try:
        adapter = rt.adapter(rt.providers_for(ChannelKind.STATUSPAGE)[0])
        results = adapter.send(site_message(rt, 0, 0, "Component status"), recipients)
    except (ChannelError, ConfigurationError) as exc:
        return dict.fromkeys(targets, str(exc))
    return {
        target: None if result.outcome is Outcome.SENT else (result.error or result.outcome.value)
        for target, result in zip(targets, results, strict=True)
    }
