"""A draft of an update: prepared by one person, edited by others, published by whoever sends it.

A draft keeps everything an update takes except when it goes out: its promise is a duration counted
from the moment it is sent (a draft may wait an hour before someone sends it; "next update by 14:30"
written at 13:00 would be stale by then).
"""

from __future__ import annotations

import enum
from datetime import datetime, timedelta

from pydantic import BaseModel, ConfigDict, Field, field_validator

from channels.base import ChannelKind
from dispatcher.domain.crisis import ImpactStatement
from dispatcher.domain.models import Audience, ComponentImpact, IncidentStatus
from dispatcher.domain.update_texts import LocaleText


class DraftState(enum.StrEnum):
    OPEN = "open"
    PUBLISHED = "published"
    DISCARDED = "discarded"


class DraftContent(BaseModel):
    """What a draft says; every field can be edited until it is published."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    status: IncidentStatus
    message: str = Field(min_length=1, max_length=4000)
    texts: dict[str, LocaleText] | None = None
    next_update_in: timedelta | None = None
    """The promise, counted from when the draft is published; none: no promise."""
    audience: Audience = Audience.PUBLIC
    channels: list[ChannelKind] | None = None
    internal_note: str | None = Field(default=None, max_length=4000)
    impact: dict[str, ComponentImpact] | None = None
    """How each named component is hit as of the update (the status page shows it)."""
    template: str | None = Field(default=None, max_length=100)
    template_vars: dict[str, str] | None = None
    impact_statement: ImpactStatement | None = None
    """Who is affected, what does not work, since when, what to do meanwhile (as on an update)."""
    signer: str | None = Field(default=None, max_length=50)
    """Who signs it: a signatory's short name in the policy (``ceo``); checked when saved and again
    when sent (the policy may have changed in between)."""
    report_by: datetime | None = None
    """A resolution's promise of "a full report by" this time (as on an update): a fixed date, not
    counted from sending; checked when saved (resolving, with a zone, in the future) and again when sent."""

    @field_validator("impact_statement")
    @classmethod
    def _no_empty_statement(cls, value: ImpactStatement | None) -> ImpactStatement | None:
        """An empty statement is none, as on an update."""
        return None if value is None or value.is_empty else value

    @field_validator("signer")
    @classmethod
    def _blank_is_no_signer(cls, value: str | None) -> str | None:
        return value or None


class Draft(DraftContent):
    """A saved draft."""

    model_config = ConfigDict(from_attributes=True, extra="ignore")

    id: int
    incident_id: int
    state: DraftState
    author: str | None = None
    """Who prepared it."""
    updated_by: str | None = None
    created_at: datetime
    updated_at: datetime
    version: int
    """Bumped by every edit: an edit made against an older version is refused."""
    published_update_id: int | None = None
    published_by: str | None = None
