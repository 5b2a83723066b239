"""The webhook body Alertmanager and Grafana share, and how it becomes an ``AlertGroup``.

Grafana's webhook contact point follows Alertmanager's shape (``groupKey``, ``status``, common labels
and annotations, ``alerts`` with fingerprints and times); each source's module adds its own fields and
picks the group's title, link and detail.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Generic, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from dispatcher.domain.policy import MonitoringPolicy
from dispatcher.ingest.alerts import (
    AlertGroup,
    AlertLine,
    AlertStatus,
    Source,
    alert_material,
    components_from_labels,
    severity_from_labels,
)


def _integral(value: object) -> object:
    """JSON's 5.0 is the integer 5 (as JSON Schema reads it); payloads are parsed strictly otherwise."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


JsonInt = Annotated[int, BeforeValidator(_integral)]


def _iso(moment: datetime | None) -> str:
    return "" if moment is None else moment.isoformat()


class WebhookAlert(BaseModel):
    """One alert of the group; firing alerts carry a zero ``endsAt`` (``0001-01-01T00:00:00Z``)."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    status: AlertStatus
    labels: dict[str, str]
    annotations: dict[str, str] = Field(default_factory=dict)
    starts_at: datetime = Field(alias="startsAt")
    ends_at: datetime | None = Field(default=None, alias="endsAt")
    generator_url: str = Field(default="", alias="generatorURL")
    fingerprint: str = ""

    def identity(self) -> str:
        """The alert's fingerprint; without one (old senders), its sorted labels."""
        return self.fingerprint or ",".join(f"{k}={v}" for k, v in sorted(self.labels.items()))

    def link(self) -> str | None:
        """Where the on-call looks at this alert."""
        return self.generator_url or None

    def line(self) -> AlertLine:
        return AlertLine(
            name=self.labels.get("alertname", "alert"),
            status=self.status,
            summary=self.annotations.get("description") or self.annotations.get("summary"),
            starts_at=self.starts_at,
            link=self.link(),
        )


AlertT = TypeVar("AlertT", bound=WebhookAlert)


class WebhookPayload(BaseModel, Generic[AlertT]):
    """The fields both webhooks send; unknown fields (later versions) are ignored."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    version: str
    group_key: str = Field(alias="groupKey", min_length=1)
    truncated_alerts: JsonInt = Field(default=0, alias="truncatedAlerts", ge=0)
    status: AlertStatus
    receiver: str = ""
    group_labels: dict[str, str] = Field(default_factory=dict, alias="groupLabels")
    common_labels: dict[str, str] = Field(default_factory=dict, alias="commonLabels")
    common_annotations: dict[str, str] = Field(default_factory=dict, alias="commonAnnotations")
    external_url: str = Field(default="", alias="externalURL")
    alerts: list[AlertT] = Field(min_length=1)

    def group(
        self,
        source: Source,
        monitoring: MonitoringPolicy,
        *,
        title: str,
        link: str | None,
        detail: str | None,
    ) -> AlertGroup:
        """The normalised group: severity and components from the labels, one line per alert, and the
        dedupe material (groupKey, status, each alert's identity and times)."""
        each = [a.labels for a in self.alerts]
        return AlertGroup(
            source=source,
            key=self.group_key,
            status=self.status,
            title=title,
            severity=severity_from_labels(monitoring, self.common_labels, each),
            components=components_from_labels(self.common_labels, each),
            alerts=[a.line() for a in self.alerts],
            link=link,
            detail=detail,
            dedupe_material=alert_material(
                self.group_key,
                self.status,
                ((a.identity(), _iso(a.starts_at), _iso(a.ends_at)) for a in self.alerts),
            ),
        )
