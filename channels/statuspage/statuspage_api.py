"""The Statuspage-compatible public JSON: ``api/v2/*.json``, in the field names and shapes of Atlassian
Statuspage's public API, so aggregators, exporters and in-app status widgets read Tocsin's page as
they read any Statuspage page.

=======================================  =========================================================
file                                     holds
=======================================  =========================================================
``api/v2/summary.json``                  page, status, components, unresolved incidents, upcoming
                                         and active maintenance
``api/v2/status.json``                   page, status (the indicator and its description)
``api/v2/components.json``               page, components (groups are components with
                                         ``group: true`` listing their members' ids)
``api/v2/incidents.json``                page, the 50 newest incidents
``api/v2/incidents/unresolved.json``     page, open incidents
``api/v2/scheduled-maintenances.json``   page, the 50 newest maintenance windows
``.../scheduled-maintenances/upcoming``  page, maintenance not started yet
``.../scheduled-maintenances/active``    page, maintenance in progress
=======================================  =========================================================

Ids are strings, as Statuspage's are: the component's slug, the incident's and update's numbers.
Times are ISO 8601 with milliseconds in UTC. A cancelled maintenance window is left out (Statuspage
has no such state, and a reader must not take it for work that was done). ``docs/pages/status-json.md``
documents every field; ``docs/pages/statuspage-v2.schema.json`` describes the files (tests validate them).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from channels.statuspage.model import ComponentState, PublicIncident, PublicUpdate, StatusSnapshot

PREFIX = "api/v2/"
LIST_LIMIT = 50
"""Statuspage's incidents.json and scheduled-maintenances.json carry the 50 newest."""

DESCRIPTIONS = {
    "none": "All Systems Operational",
    "minor": "Minor Service Outage",
    "major": "Partial System Outage",
    "critical": "Major Service Outage",
    "maintenance": "Service Under Maintenance",
}
_MAINTENANCE_STATUS = {
    "scheduled": "scheduled",
    "reminded": "scheduled",
    "in_progress": "in_progress",
    "completed": "completed",
}
_MAINTENANCE_UPDATE = {"investigating": "scheduled", "identified": "scheduled", "monitoring": "in_progress"}


def stamp(value: datetime | None) -> str | None:
    """``2026-11-25T09:20:00.000Z`` (Statuspage writes milliseconds)."""
    if value is None:
        return None
    utc = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def _page(site: StatusSnapshot) -> dict[str, Any]:
    return {
        "id": site.page_id,
        "name": site.organisation,
        "url": site.site_url or "",
        "time_zone": site.time_zone,
        "updated_at": stamp(site.generated_at),
    }


def _status(site: StatusSnapshot) -> dict[str, str]:
    indicator = site.status.indicator
    return {"indicator": indicator, "description": DESCRIPTIONS[indicator]}


def _group_id(site: StatusSnapshot, group: str) -> str:
    return "group-" + next(
        (c.slug for c in site.components if c.group == group), group.lower().replace(" ", "-")
    )


def _component(site: StatusSnapshot, c: ComponentState) -> dict[str, Any]:
    created = stamp(c.created_at or site.generated_at)
    return {
        "id": c.slug,
        "name": c.name,
        "status": c.status,
        "created_at": created,
        "updated_at": stamp(c.updated_at or site.generated_at),
        "position": c.position + 1,
        "description": c.description,
        "showcase": True,
        "start_date": (created or "")[:10] or None,
        "group_id": _group_id(site, c.group) if c.group else None,
        "page_id": site.page_id,
        "group": False,
        "only_show_if_degraded": False,
    }


_ORDER = ("operational", "under_maintenance", "degraded_performance", "partial_outage", "major_outage")


def components(site: StatusSnapshot) -> list[dict[str, Any]]:
    """Every component, and each group as a component with ``group: true`` and its members' ids."""
    out = [_component(site, c) for c in site.components]
    groups: dict[str, list[ComponentState]] = {}
    for c in site.components:
        if c.group:
            groups.setdefault(c.group, []).append(c)
    for name, members in groups.items():
        first = min(members, key=lambda m: m.position)
        out.append(
            {
                **_component(site, first),
                "id": _group_id(site, name),
                "name": name,
                "status": max((m.status for m in members), key=_ORDER.index),
                "description": None,
                "group_id": None,
                "group": True,
                "components": [m.slug for m in members],
            }
        )
    out.sort(key=lambda c: (c["position"], not c["group"]))
    return out


def _affected(site: StatusSnapshot, item: PublicIncident) -> list[dict[str, Any]]:
    by_name = {c.name: c for c in site.components}
    return [_component(site, by_name[n]) for n in item.components if n in by_name]


def _update(item: PublicIncident, u: PublicUpdate, maintenance: bool) -> dict[str, Any]:
    status: str = u.status
    if maintenance:
        status = "completed" if u.status == "resolved" else _MAINTENANCE_UPDATE.get(u.status, "scheduled")
    affected = (
        [{"code": name, "name": name, "new_status": level} for name, level in item.impacts.items()]
        if u is item.updates[0] and item.impacts
        else None
    )
    return {
        "id": str(u.id),
        "status": status,
        "body": u.message,
        "incident_id": str(item.id),
        "created_at": stamp(u.published_at),
        "updated_at": stamp(u.published_at),
        "display_at": stamp(u.published_at),
        "affected_components": affected,
    }


def _when(item: PublicIncident, status: str) -> str | None:
    """When the incident first reached ``status`` (oldest update saying so)."""
    times = [u.published_at for u in item.updates if u.status == status]
    return stamp(min(times)) if times else None


def incident(site: StatusSnapshot, item: PublicIncident) -> dict[str, Any]:
    """One incident (or, with its schedule, a maintenance window) in Statuspage's shape."""
    maintenance = item.kind == "maintenance"
    body: dict[str, Any] = {
        "id": str(item.id),
        "name": item.title,
        "status": _MAINTENANCE_STATUS.get(item.maintenance_stage or "", "scheduled")
        if maintenance
        else item.status,
        "created_at": stamp(item.opened_at),
        "updated_at": stamp(item.updated_at),
        "monitoring_at": None if maintenance else _when(item, "monitoring"),
        "resolved_at": stamp(item.resolved_at),
        "impact": "maintenance" if maintenance else item.severity,
        "shortlink": (site.site_url.rstrip("/") + "/" + item.path) if site.site_url else item.path,
        "started_at": stamp(item.starts_at if maintenance and item.starts_at else item.opened_at),
        "page_id": site.page_id,
        "incident_updates": [_update(item, u, maintenance) for u in item.updates],
        "components": _affected(site, item),
    }
    if maintenance:
        body["scheduled_for"] = stamp(item.starts_at)
        body["scheduled_until"] = stamp(item.ends_at)
    return body


def _incidents(site: StatusSnapshot) -> list[PublicIncident]:
    found = [*site.incidents, *(h for h in site.history if h.kind == "incident")]
    return sorted(found, key=lambda i: (i.opened_at, i.id), reverse=True)


def _maintenance(site: StatusSnapshot) -> list[PublicIncident]:
    found = [*site.maintenance, *(h for h in site.history if h.kind == "maintenance")]
    kept = [m for m in found if m.maintenance_stage != "cancelled"]
    return sorted(kept, key=lambda m: (m.starts_at or m.opened_at, m.id), reverse=True)


def documents(site: StatusSnapshot) -> dict[str, dict[str, Any]]:
    """Every Statuspage-compatible file: path under the site root -> document."""
    page, status = _page(site), _status(site)
    parts = components(site)
    unresolved = [incident(site, i) for i in site.incidents]
    upcoming = [
        incident(site, m) for m in site.maintenance if m.maintenance_stage in ("scheduled", "reminded")
    ]
    active = [incident(site, m) for m in site.maintenance if m.maintenance_stage == "in_progress"]
    return {
        PREFIX + "summary.json": {
            "page": page,
            "status": status,
            "components": parts,
            "incidents": unresolved,
            "scheduled_maintenances": [*active, *upcoming],
        },
        PREFIX + "status.json": {"page": page, "status": status},
        PREFIX + "components.json": {"page": page, "components": parts},
        PREFIX + "incidents.json": {
            "page": page,
            "incidents": [incident(site, i) for i in _incidents(site)[:LIST_LIMIT]],
        },
        PREFIX + "incidents/unresolved.json": {"page": page, "incidents": unresolved},
        PREFIX + "scheduled-maintenances.json": {
            "page": page,
            "scheduled_maintenances": [incident(site, m) for m in _maintenance(site)[:LIST_LIMIT]],
        },
        PREFIX + "scheduled-maintenances/upcoming.json": {"page": page, "scheduled_maintenances": upcoming},
        PREFIX + "scheduled-maintenances/active.json": {"page": page, "scheduled_maintenances": active},
    }


def files(site: StatusSnapshot) -> dict[str, bytes]:
    return {
        path: (json.dumps(doc, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
        for path, doc in documents(site).items()
    }
