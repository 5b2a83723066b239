"""The domain's nouns (see DESIGN.md "Words"), as pydantic models.

These are what the CLI and the API accept and show; the store maps them to tables.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from channels.base import ChannelKind
from dispatcher.domain.quiet_hours import check_clock_time, check_timezone
from dispatcher.domain.text_safety import refuse_control_characters
from dispatcher.domain.update_texts import LocaleText
from dispatcher.domain.vocabulary import (
    AUDIENCE_NAME_PATTERN,
    Audience,
    ComponentImpact,
    DeliveryState,
    IncidentStatus,
    Severity,
    UpdateState,
)

__all__ = [
    "AUDIENCE_NAME_PATTERN",
    "Audience",
    "ChannelKind",
    "ClockTime",
    "ComponentImpact",
    "ContactPoint",
    "Delivery",
    "DeliveryState",
    "Incident",
    "IncidentDraft",
    "IncidentStatus",
    "Severity",
    "Subscriber",
    "TimeZoneName",
    "Update",
    "UpdateDraft",
    "UpdateState",
    "check_quiet_window",
]


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
    first_word_at: datetime | None = None
    """When customers were first told (the first public update released); None: not yet."""
    first_word_nudged_at: datetime | None = None
    first_word_escalated_at: datetime | None = None
    holding_streak: int = 0
    """Holding messages sent in a row since the last real public update."""
    escalated_at: datetime | None = None
    """Flagged as dragging on (too many holding messages, or too long without news): the next public
    update must be a real one."""


class IncidentDraft(BaseModel):
    """What opening an incident takes."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    title: str = Field(min_length=3, max_length=200)
    severity: Severity = Severity.MAJOR
    components: list[str] = Field(default_factory=list)
    owner: str | None = Field(default=None, max_length=200)
    """Who answers for the incident (the comms owner reminded when an update is due)."""

    @field_validator("components")
    @classmethod
    def _clean_components(cls, value: list[str]) -> list[str]:
        cleaned = [c.strip() for c in value if c.strip()]
        return list(dict.fromkeys(cleaned))

    @field_validator("title", "owner", "components")
    @classmethod
    def _no_control_characters(cls, value: str | list[str] | None) -> str | list[str] | None:
        for text in [value] if isinstance(value, str) else value or []:
            refuse_control_characters(text)
        return value


class UpdateDraft(BaseModel):
    """What publishing an update takes. Validated before anything is written."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    incident_id: int
    status: IncidentStatus
    message: str = Field(min_length=1, max_length=4000)
    next_update_at: datetime | None = None
    audience: Audience = Audience.PUBLIC
    """public, internal, or the name of a segment in the policy (``policy.segments``)."""
    channels: list[ChannelKind] | None = None
    """Restrict to these channels; None means every configured channel the audience uses."""
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=200)
    author: str | None = Field(default=None, max_length=200)
    """Who wrote it (a person, or "monitoring:alertmanager"); approval needs a different person."""
    kind: str = Field(
        default="update", pattern="^(update|holding|reminder|maintenance|first_notice|resolution)$"
    )
    """"update" is written by someone; the others are written by Tocsin from approved texts."""
    internal_note: str | None = Field(default=None, max_length=4000)
    """Shown to the internal audience only; never rendered for the public."""
    override_reason: str | None = Field(default=None, max_length=1000)
    """Why guardrail errors are overridden (recorded with the update)."""
    publish_at: datetime | None = None
    """Publish later: the update waits in the database and the periodic tick sends it then."""
    texts: dict[str, LocaleText] | None = None
    """The words in other languages, and short or long texts per channel
    (``dispatcher.domain.update_texts``)."""
    template: str | None = Field(default=None, max_length=100)
    """The message template it was written from (``dispatcher.domain.message_templates``)."""
    template_vars: dict[str, str] | None = None
    """The values the template was filled with: a pre-approved template used as written needs no approval."""
    author_token_id: int | None = None
    """The API token that proved who the author is (None: a name nobody proved, e.g. monitoring)."""
    impact: dict[str, ComponentImpact] | None = None
    """How each named component is hit as of this update (the status page shows it)."""

    @field_validator("impact")
    @classmethod
    def _clean_impact(cls, value: dict[str, ComponentImpact] | None) -> dict[str, ComponentImpact] | None:
        if value is None:
            return None
        cleaned = {name.strip(): level for name, level in value.items() if name.strip()}
        return cleaned or None

    @field_validator("message", "idempotency_key", "author", "internal_note", "override_reason")
    @classmethod
    def _no_control_characters(cls, value: str | None) -> str | None:
        return None if value is None else refuse_control_characters(value)


class Update(BaseModel):
    """A published statement about an incident. Immutable: nothing changes it once published."""

    model_config = ConfigDict(from_attributes=True, frozen=True)

    id: int
    incident_id: int
    status: IncidentStatus
    message: str
    next_update_at: datetime | None
    audience: Audience
    """public, internal, or a segment name."""
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
    texts: dict[str, LocaleText] | None = None
    template: str | None = None
    author_token_id: int | None = None
    approver_token_id: int | None = None
    approval_nudged_at: datetime | None = None
    impact: dict[str, ComponentImpact] | None = None


class ContactPoint(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    channel: ChannelKind
    address: str
    secret: str | None = Field(default=None, repr=False)
    opted_out: bool = False
    confirmed: bool = True
    """False for a self-service signup until its double opt-in link is followed: never sent updates."""


ClockTime = Annotated[str, AfterValidator(check_clock_time)]
"""A time of day, HH:MM on a 24-hour clock (``7:00`` becomes ``07:00``)."""

TimeZoneName = Annotated[str, StringConstraints(max_length=60), AfterValidator(check_timezone)]
"""An IANA time zone name (``Europe/Paris``, ``UTC``)."""


def check_quiet_window(start: str | None, end: str | None, *, by_field: bool = False) -> None:
    """Quiet hours are whole: both ends or neither, and not the same time (``ValueError`` otherwise).

    ``by_field``: the message names the ends as the API's fields, ``quiet_start`` and ``quiet_end``."""
    if (start is None) != (end is None):
        if by_field:
            raise ValueError("quiet hours need both quiet_start and quiet_end")
        raise ValueError("quiet hours need both a start and an end (e.g. 22:00 and 07:00)")
    if start is not None and start == end:
        ends = "quiet_start and quiet_end" if by_field else "start and end"
        raise ValueError(f"quiet hours: {ends} are the same time")


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
    """Staff and support: they get internal updates as well as public ones (and get each first)."""
    contact_points: list[ContactPoint] = Field(default_factory=list)
    region: str | None = Field(default=None, max_length=50)
    plan: str | None = Field(default=None, max_length=50)
    tags: list[str] = Field(default_factory=list)
    channels: list[ChannelKind] | None = None
    """Only these channels; None: every channel the subscriber has a contact point on."""
    quiet_start: ClockTime | None = None
    """Quiet hours ("22:00" to "07:00", in ``timezone``): non-critical updates wait until they end."""
    quiet_end: ClockTime | None = None
    timezone: TimeZoneName | None = None
    """IANA zone name (``Europe/Paris``) the quiet hours are in; default UTC."""

    @field_validator("tags")
    @classmethod
    def _clean_tags(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(t.strip() for t in value if t.strip()))

    @model_validator(mode="after")
    def _quiet_hours_whole(self) -> Subscriber:
        check_quiet_window(self.quiet_start, self.quiet_end)
        return self


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
