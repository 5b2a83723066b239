"""An alert group, normalised from any monitoring source: what it says, and what ingesting it did.

Pure data and the rules for reading labels (severity, components, a title); the sources
(``alertmanager``, ``grafana``, ``generic``) build it, ``common.ingest`` acts on it and ``notices``
words what it did.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict

from dispatcher.domain.models import Severity
from dispatcher.domain.policy import MonitoringPolicy

Source = Literal["alertmanager", "grafana", "generic"]
AlertStatus = Literal["firing", "resolved"]

COMPONENT_LABELS = ("component", "service")
"""Labels whose values name the affected components, first found wins per alert."""
MAX_KEY_LENGTH = 300
"""``incidents.external_key`` is this long; longer group keys are stored as their digest."""
MAX_TITLE_LENGTH = 200


class AlertLine(BaseModel):
    """One alert of a group, as the on-call reads it."""

    model_config = ConfigDict(frozen=True)

    name: str
    status: AlertStatus
    summary: str | None = None
    starts_at: datetime | None = None
    link: str | None = None


class AlertGroup(BaseModel):
    """A source's payload, normalised: one group of alerts that is one incident."""

    model_config = ConfigDict(frozen=True)

    source: Source
    key: str
    """The source's id for the group (Alertmanager/Grafana ``groupKey``, the generic ``key``)."""
    status: AlertStatus
    title: str
    severity: Severity
    components: list[str]
    alerts: list[AlertLine]
    link: str | None = None
    """Where the on-call looks further (Alertmanager's externalURL, a Grafana dashboard)."""
    detail: str | None = None
    """Free text from the source (Grafana's message, the generic body's message)."""
    dedupe_material: str
    """What makes two deliveries the same (e.g. groupKey, status, each alert's fingerprint and times)."""

    @property
    def actor(self) -> str:
        return f"monitoring:{self.source}"

    @property
    def external_key(self) -> str:
        if len(self.key) <= MAX_KEY_LENGTH:
            return self.key
        return "sha256:" + hashlib.sha256(self.key.encode()).hexdigest()

    def dedupe_key(self) -> str:
        return hashlib.sha256(self.dedupe_material.encode()).hexdigest()


def alert_material(key: str, status: str, alerts: Iterable[tuple[str, str, str]]) -> str:
    """The dedupe material of a group: its key and status, then each alert's (fingerprint, startsAt,
    endsAt), sorted so the order monitoring lists them in does not matter."""
    lines = sorted("|".join(parts) for parts in alerts)
    return "\n".join([key, status, *lines])


def severity_from_labels(
    monitoring: MonitoringPolicy, common: Mapping[str, str], each: Iterable[Mapping[str, str]]
) -> Severity:
    """The group's common severity label, else the highest among its alerts, else the default."""
    label = monitoring.severity_label

    def mapped(value: str | None) -> Severity | None:
        return None if value is None else monitoring.severity_map.get(value.strip().lower())

    found = mapped(common.get(label))
    if found is not None:
        return found
    seen = [s for s in (mapped(labels.get(label)) for labels in each) if s is not None]
    return max(seen, key=lambda s: s.rank) if seen else monitoring.default_severity


def components_from_labels(common: Mapping[str, str], each: Iterable[Mapping[str, str]]) -> list[str]:
    """Components named by the common labels, else by each alert's labels (in order, no repeats)."""
    for name in COMPONENT_LABELS:
        if common.get(name, "").strip():
            return [common[name].strip()]
    found: list[str] = []
    for labels in each:
        for name in COMPONENT_LABELS:
            value = labels.get(name, "").strip()
            if value:
                found.append(value)
                break
    return list(dict.fromkeys(found))


def clip_title(*candidates: str | None) -> str:
    """The first non-empty candidate, fitted to an incident title (3 to 200 characters)."""
    for text in candidates:
        cleaned = " ".join((text or "").split())
        if cleaned:
            if len(cleaned) > MAX_TITLE_LENGTH:
                cleaned = cleaned[: MAX_TITLE_LENGTH - 1] + "…"
            return cleaned if len(cleaned) >= 3 else f"Alert {cleaned}"
    return "Monitoring alert"


Action = Literal["opened", "reopened", "escalated", "changed", "monitoring", "unchanged", "ignored", "repeat"]
