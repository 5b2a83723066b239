"""Prometheus Alertmanager's webhook (payload version 4): one notification per alert group.

https://prometheus.io/docs/alerting/latest/configuration/#webhook_config — the group's ``groupKey``
names the incident; ``status`` is ``firing`` while any alert of the group fires, ``resolved`` when all
have stopped. Firing alerts carry a zero ``endsAt`` (``0001-01-01T00:00:00Z``).
"""

from __future__ import annotations

from typing import Literal

from dispatcher.domain.policy import MonitoringPolicy
from dispatcher.ingest.alerts import AlertGroup, clip_title
from dispatcher.ingest.payload import WebhookAlert, WebhookPayload

AlertmanagerAlert = WebhookAlert
"""An Alertmanager alert is the shared webhook alert, with nothing added."""


class AlertmanagerPayload(WebhookPayload[AlertmanagerAlert]):
    """The documented webhook body; unknown fields (later versions) are ignored."""

    version: Literal["4"]


def to_group(payload: AlertmanagerPayload, monitoring: MonitoringPolicy) -> AlertGroup:
    alertname = payload.common_labels.get("alertname") or payload.group_labels.get("alertname")
    first = payload.alerts[0]
    return payload.group(
        "alertmanager",
        monitoring,
        title=clip_title(
            payload.common_annotations.get("summary"),
            alertname,
            first.annotations.get("summary"),
            first.labels.get("alertname"),
        ),
        link=payload.external_url or None,
        detail=(
            f"({payload.truncated_alerts} more alerts were left out by Alertmanager.)"
            if payload.truncated_alerts
            else None
        ),
    )
