"""The status site snapshot: what the dispatcher hands the status page adapter, and ``status.json``.

The dispatcher builds one ``StatusSnapshot`` from the database (public updates only) and puts it in the
``Message.json_body``; the adapter renders the HTML pages and the Atom feed from it and publishes it as
``status.json``. The document is described for readers in ``docs/pages/status-json.md`` and by the JSON
Schema ``docs/pages/status.schema.json``: change the three together.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

SCHEMA_VERSION: Literal[1] = 1

ComponentStatus = Literal[
    "operational", "under_maintenance", "degraded_performance", "partial_outage", "major_outage"
]
"""From best to worst: a component shows the worst state any open incident or maintenance gives it."""

COMPONENT_STATUS_ORDER: tuple[ComponentStatus, ...] = (
    "operational",
    "under_maintenance",
    "degraded_performance",
    "partial_outage",
    "major_outage",
)

Indicator = Literal["none", "maintenance", "minor", "major", "critical"]
IncidentStatusName = Literal["investigating", "identified", "monitoring", "resolved"]
SeverityName = Literal["minor", "major", "critical"]
MaintenanceStage = Literal["scheduled", "reminded", "in_progress", "completed", "cancelled"]


def _utc(value: datetime) -> datetime:
    """Naive times are taken to be UTC already; aware ones are converted."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


UtcTime = Annotated[datetime, AfterValidator(_utc)]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class PublicUpdate(_Frozen):
    """One published public update (never an internal one, never an internal note)."""

    id: int
    status: IncidentStatusName
    message: str
    published_at: UtcTime
    kind: str = "update"
    """"update", "holding" (no news yet), "maintenance"…"""
    audience: str = "public"
    """Always "public" on the public site; the internal site also shows "internal" updates."""
    internal_note: str | None = None
    """Staff's note on the update: only ever set on the internal site."""
    signer: str | None = None
    """Who signed it: "Jane Doe, Chief Executive" (a senior voice), or None."""
    impact: dict[str, str | None] | None = None
    """Its impact statement: ``who``, ``not_working``, ``since`` (ISO time), ``workaround``, as given."""


class PublicReport(_Frozen):
    """A resolved incident's post-incident report: what happened, its impact from when to when, why,
    what was done, and what will keep it from happening again."""

    summary: str
    impact: str
    root_cause: str
    actions_taken: str
    prevention: str
    published_at: UtcTime
    impact_from: UtcTime
    """When the incident opened."""
    impact_until: UtcTime | None = None
    """When it was resolved."""


class PublicIncident(_Frozen):
    """An incident or a maintenance window as the public sees it: its public timeline, newest first."""

    id: int
    kind: Literal["incident", "maintenance"] = "incident"
    title: str
    status: IncidentStatusName
    """The status its latest public update gave it."""
    severity: SeverityName
    components: list[str] = Field(default_factory=list)
    opened_at: UtcTime
    updated_at: UtcTime
    """When its latest public update was published."""
    resolved_at: UtcTime | None = None
    next_update_at: UtcTime | None = None
    """The next update promised by then (open incidents only)."""
    starts_at: UtcTime | None = None
    ends_at: UtcTime | None = None
    maintenance_stage: MaintenanceStage | None = None
    path: str = Field(pattern=r"^incidents/[0-9]+\.html$")
    """The incident's page, relative to the site root: ``incidents/<id>.html``."""
    updates: list[PublicUpdate] = Field(min_length=1)
    impacts: dict[str, ComponentStatus] = Field(default_factory=dict)
    """How each affected component is hit as of the latest update (operational once it is over)."""
    report: PublicReport | None = None
    """The post-incident report, once published (resolved incidents only)."""
    data_facts: dict[str, str | None] | None = None
    """A security incident's data facts (``data_affected``, ``data_not_affected``, ``customer_actions``,
    ``company_actions``): shown first on its page."""


class DayIncident(_Frozen):
    """An incident that touched a component on a given day (for the day's detail)."""

    id: int
    title: str
    path: str


class UptimeDay(_Frozen):
    """One UTC day of a component's history bar."""

    date: date
    uptime: float | None
    """0 to 1, weighted as docs/pages/statuspage.md says; None: no data (the component did not exist yet)."""
    worst: ComponentStatus = "operational"
    incidents: list[DayIncident] = Field(default_factory=list)


class ComponentState(_Frozen):
    name: str
    status: ComponentStatus
    slug: str = ""
    """Names the component's page, badge and feed (``components/<slug>.html``); stable across renames."""
    group: str | None = None
    description: str | None = None
    position: int = 0
    created_at: UtcTime | None = None
    updated_at: UtcTime | None = None
    uptime: float | None = None
    """Over the ``uptime_days`` of the history bar; None when no day was counted."""
    days: list[UptimeDay] = Field(default_factory=list)
    """The history bar, oldest day first, ending today."""


class OverallStatus(_Frozen):
    indicator: Indicator
    description: str


class StatusSnapshot(_Frozen):
    """Everything the status site shows, as of ``generated_at``. Serialised as ``status.json``."""

    schema_version: Literal[1] = SCHEMA_VERSION
    organisation: str
    site_url: str | None = None
    """Where the site is served (``status_page_url``); links in the feed are absolute when set."""
    generated_at: UtcTime
    last_update_id: int | None = None
    """The newest public update the snapshot includes."""
    history_days: int = Field(default=90, ge=1)
    uptime_days: int = Field(default=90, ge=1)
    """How many days each component's history bar covers."""
    page_id: str = ""
    """A stable id for the page (the ``page.id`` of the Statuspage-compatible files)."""
    time_zone: str = "Etc/UTC"
    subscribe_url: str | None = None
    """The self-service subscribe form (served by ``tocsin api`` at ``public_url``), linked from the page."""
    audience: Literal["public", "internal"] = "public"
    """"internal": staff's site, with internal updates and notes; never published to the public target."""
    status: OverallStatus
    components: list[ComponentState] = Field(default_factory=list)
    incidents: list[PublicIncident] = Field(default_factory=list)
    """Open incidents, newest first."""
    maintenance: list[PublicIncident] = Field(default_factory=list)
    """Scheduled and in-progress maintenance, soonest first."""
    history: list[PublicIncident] = Field(default_factory=list)
    """Resolved incidents and finished (or cancelled) maintenance of the last ``history_days``, newest
    first."""

    def everything(self) -> list[PublicIncident]:
        """Every incident and maintenance the site has a page for."""
        return [*self.incidents, *self.maintenance, *self.history]


class SiteBundle(_Frozen):
    """What the dispatcher hands the adapter: the public site, and staff's internal site when an
    internal target is configured. The adapter publishes each only to its own targets."""

    public: StatusSnapshot
    internal: StatusSnapshot | None = None
