"""The domain's nouns (see DESIGN.md "Words"), as pydantic models.

These are what the CLI and the API accept and show; the store maps them to tables.
"""

from __future__ import annotations

import enum
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator

from channels.base import ChannelKind

__all__ = [
    "Audience",
    "ChannelKind",
    "ContactPoint",
    "Delivery",
    "DeliveryState",
    "Incident",
    "IncidentDraft",
    "IncidentStatus",
    "Severity",
    "Subscriber",
    "Update",
    "UpdateDraft",
    "UpdateState",
]


class IncidentStatus(enum.StrEnum):
    INVESTIGATING = "investigating"
    IDENTIFIED = "identified"
    MONITORING = "monitoring"
    RESOLVED = "resolved"


class Severity(enum.StrEnum):
    MINOR = "minor"
    MAJOR = "major"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return list(Severity).index(self)


class Audience(enum.StrEnum):
    PUBLIC = "public"
    INTERNAL = "internal"


class UpdateState(enum.StrEnum):
    """Where an update is in its own life: persisted, then its delivery rows written."""

    SCHEDULED = "scheduled"
    """Waiting for its ``scheduled_for`` time; the periodic tick publishes it then."""
    PENDING_APPROVAL = "pending_approval"
    """Waiting for a second person to approve it (severity policy)."""
    REJECTED = "rejected"
    PENDING = "pending"
    FANNED_OUT = "fanned_out"


class DeliveryState(enum.StrEnum):
    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    SUPPRESSED = "suppressed"
    SUPERSEDED = "superseded"

    @property
    def is_final(self) -> bool:
        return self not in (DeliveryState.QUEUED, DeliveryState.SENDING)


class Incident(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    title: str
    status: IncidentStatus
    severity: Severity
    components: list[str]
    opened_at: datetime
    updated_at: datetime
    kind: str = "incident"
    """"incident", or "maintenance" (a scheduled window)."""
    owner: str | None = None
    monitoring_since: datetime | None = None
    resolved_at: datetime | None = None
    reopened_count: int = 0
    next_update_at: datetime | None = None
    """The promise standing now: the next public update is due by then."""
    promise_reminded_at: datetime | None = None
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    maintenance_stage: str | None = None
    source: str | None = None
    external_key: str | None = None


class IncidentDraft(BaseModel):
    """What opening an incident takes."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    title: str = Field(min_length=3, max_length=200)
    severity: Severity = Severity.MAJOR
    components: list[str] = Field(default_factory=list)

    @field_validator("components")
    @classmethod
    def _clean_components(cls, value: list[str]) -> list[str]:
        cleaned = [c.strip() for c in value if c.strip()]
        return list(dict.fromkeys(cleaned))


class UpdateDraft(BaseModel):
    """What publishing an update takes. Validated before anything is written."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    incident_id: int
    status: IncidentStatus
    message: str = Field(min_length=1, max_length=4000)
    next_update_at: datetime | None = None
    audience: Audience = Audience.PUBLIC
    channels: list[ChannelKind] | None = None
    """Restrict to these channels; None means every configured channel the audience uses."""
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=200)
    author: str | None = Field(default=None, max_length=200)
    """Who wrote it (a person, or "monitoring:alertmanager"); approval needs a different person."""
    kind: str = Field(default="update", pattern="^(update|holding|reminder|maintenance)$")
    """"update" is written by someone; the others are written by Tocsin from approved texts."""
    internal_note: str | None = Field(default=None, max_length=4000)
    """Shown to the internal audience only; never rendered for the public."""
    override_reason: str | None = Field(default=None, max_length=1000)
    """Why guardrail errors are overridden (recorded with the update)."""
    publish_at: datetime | None = None
    """Publish later: the update waits in the database and the periodic tick sends it then."""


class Update(BaseModel):
    """A published statement about an incident. Immutable: nothing changes it once published."""

    model_config = ConfigDict(from_attributes=True, frozen=True)

    id: int
    incident_id: int
    status: IncidentStatus
    message: str
    next_update_at: datetime | None
    audience: Audience
    channels: list[ChannelKind]
    idempotency_key: str | None
    state: UpdateState
    published_at: datetime
    kind: str = "update"
    """"update", "holding" (no news yet, sent by Tocsin), "reminder" or "maintenance"."""
    author: str | None = None
    severity: str | None = None
    policy_version: str | None = None
    internal_note: str | None = None
    override_reason: str | None = None
    scheduled_for: datetime | None = None
    approved_by: str | None = None
    approved_at: datetime | None = None
    rejected_by: str | None = None
    rejected_reason: str | None = None
    promise_state: str | None = None


class ContactPoint(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    channel: ChannelKind
    address: str
    secret: str | None = Field(default=None, repr=False)
    opted_out: bool = False


class Subscriber(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int | None = None
    external_id: str | None = None
    name: str | None = None
    locale: str = "en"
    components: list[str] = Field(default_factory=list)
    """Components this subscriber follows; empty means all."""
    min_severity: Severity = Severity.MINOR
    internal: bool = False
    """Staff and support: they get internal updates as well as public ones."""
    contact_points: list[ContactPoint] = Field(default_factory=list)


class Delivery(BaseModel):
    """One (update, channel, address) row of the ledger."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    update_id: int
    channel: ChannelKind
    address: str
    subscriber_id: int | None
    state: DeliveryState
    attempts: int
    provider: str | None
    provider_message_id: str | None
    last_error: str | None
    batch: int
    next_attempt_at: datetime | None
    updated_at: datetime
