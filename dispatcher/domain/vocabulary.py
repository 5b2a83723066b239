"""The domain's closed vocabularies: incident statuses, severities, audiences, component impacts, update
and delivery states.

Plain enums with no pydantic, so what only needs the words (the ``tocsin`` command line, building its
help) imports them without the models. ``dispatcher.domain.models`` re-exports every one of them.
"""

from __future__ import annotations

import enum
import re

__all__ = [
    "AUDIENCE_NAME_PATTERN",
    "Audience",
    "ComponentImpact",
    "DeliveryState",
    "IncidentStatus",
    "Severity",
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
    """Who an update goes to: ``public``, ``internal``, or a segment named in the policy.

    ``Audience("eu-customers")`` is a *segment* audience: a value of this enum that is not one of the
    two built-in members (``is_segment``), so every ``update.audience is Audience.PUBLIC`` test and
    every ``.value`` keeps working. Whether the policy defines the segment is checked when publishing
    (``dispatcher.domain.audiences.check_audience``).
    """

    PUBLIC = "public"
    INTERNAL = "internal"

    @property
    def is_segment(self) -> bool:
        return self not in (Audience.PUBLIC, Audience.INTERNAL)

    @classmethod
    def _missing_(cls, value: object) -> Audience | None:
        if not isinstance(value, str):
            return None
        name = value.strip()
        for member in cls:
            if member.value == name.lower():
                return member
        if not AUDIENCE_NAME_PATTERN.match(name):
            return None
        segment = str.__new__(cls, name)
        segment._name_ = name
        segment._value_ = name
        found: Audience = cls._value2member_map_.setdefault(name, segment)  # type: ignore[assignment]
        return found


AUDIENCE_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,49}$")
"""What a segment name may look like (the ``updates.audience`` column is 50 characters)."""


class ComponentImpact(enum.StrEnum):
    """How badly an update says one component is hit; the status page shows it per component."""

    OPERATIONAL = "operational"
    DEGRADED_PERFORMANCE = "degraded_performance"
    PARTIAL_OUTAGE = "partial_outage"
    MAJOR_OUTAGE = "major_outage"

    @classmethod
    def _missing_(cls, value: object) -> ComponentImpact | None:
        # People type "degraded", "partial outage", "Major-Outage": accept the plain words.
        if not isinstance(value, str):
            return None
        words = "_".join(value.strip().lower().replace("-", " ").split())
        aliases = {"degraded": "degraded_performance", "partial": "partial_outage", "major": "major_outage"}
        words = aliases.get(words, words)
        return next((member for member in cls if member.value == words), None)


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
