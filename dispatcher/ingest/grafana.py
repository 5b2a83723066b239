"""Grafana unified alerting's webhook contact point (payload ``version`` "1").

It follows Alertmanager's shape (``groupKey``, ``status``, ``alerts`` with fingerprints) and adds
``title``, ``state``, ``message`` and, per alert, ``values``, ``dashboardURL``, ``panelURL`` and
``silenceURL``.
"""

from __future__ import annotations

from pydantic import Field

from dispatcher.domain.policy import MonitoringPolicy
from dispatcher.ingest.alerts import AlertGroup, clip_title
from dispatcher.ingest.payload import WebhookAlert, WebhookPayload


class GrafanaAlert(WebhookAlert):
    values: dict[str, float | None] | None = None
    silence_url: str = Field(default="", alias="silenceURL")
    dashboard_url: str = Field(default="", alias="dashboardURL")
    panel_url: str = Field(default="", alias="panelURL")

    def link(self) -> str | None:
        return self.panel_url or self.dashboard_url or self.generator_url or None


class GrafanaPayload(WebhookPayload[GrafanaAlert]):
    """The documented webhook body; unknown fields are ignored."""

    version: str = "1"
    org_id: int | None = Field(default=None, alias="orgId")
    title: str = ""
    state: str = ""
    message: str = ""


def to_group(payload: GrafanaPayload, monitoring: MonitoringPolicy) -> AlertGroup:
    first = payload.alerts[0]
    return payload.group(
        "grafana",
        monitoring,
        title=clip_title(
            payload.common_annotations.get("summary"),
            payload.common_labels.get("alertname"),
            first.annotations.get("summary"),
            first.labels.get("alertname"),
            payload.title,
        ),
        link=first.dashboard_url or first.panel_url or payload.external_url or None,
        detail=None,
    )
