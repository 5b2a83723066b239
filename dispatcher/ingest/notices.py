"""The texts monitoring publishes: the on-call's internal notice and, when the policy allows, the public
update.

Public texts name the affected components, never the alert's own wording (alert names and summaries are
written for engineers), say sorry, and give the next update as a clock time: the guardrails' rules.
"""

from __future__ import annotations

from datetime import datetime

from dispatcher.domain.models import Incident, IncidentStatus
from dispatcher.ingest.alerts import Action, AlertGroup

RECOVERY_REASON = "monitoring reports recovery; confirm before announcing"
FIRING_AGAIN_REASON = "monitoring reports the problem again"
PUBLIC_NEEDS_A_PERSON = (
    "Nothing was published to customers: monitoring may not publish by itself "
    "(policy monitoring.may_publish_public = false); a person publishes the public update."
)
NO_PUBLIC_CHANGE = "No public update: the incident's public status did not change."
MAX_ALERT_LINES = 10

_HEADLINES = {
    "opened": "FIRING: incident {id} opened",
    "reopened": "FIRING AGAIN: incident {id} reopened (it broke again within the flap window after closing)",
    "escalated": "FIRING AGAIN: incident {id} is back to investigating (" + FIRING_AGAIN_REASON + ")",
    "changed": "UPDATE: the alerts of incident {id} changed",
    "monitoring": "RECOVERED: " + RECOVERY_REASON + " (incident {id} is now monitoring, not resolved)",
}


def _clock(at: datetime) -> str:
    return at.strftime("%H:%M UTC")


def public_sent(update_id: int, next_at: datetime) -> str:
    return (
        f"Published to customers automatically as update {update_id}; "
        f"next update promised by {_clock(next_at)}."
    )


def public_waiting(update_id: int) -> str:
    return (
        f"Monitoring's public update {update_id} waits for a person's approval (severity policy); "
        "customers have not been told yet."
    )


def public_blocked() -> str:
    return "Monitoring's public update was NOT published (see the note); a person must publish it."


def internal_text(group: AlertGroup, incident: Incident, action: Action, public_note: str) -> str:
    """The notice itself, in Tocsin's own words only (so the guardrails never stop the on-call's page):
    what happened to which incident, and what customers were told."""
    return (
        f"[{group.actor}] " + _HEADLINES[action].format(id=incident.id) + ". "
        f"Severity {incident.severity.value}, status {incident.status.value}. {public_note}"
    )


def internal_note(group: AlertGroup, incident: Incident, problems: list[str]) -> str:
    """Monitoring's own words, quoted for the on-call (internal notes are never shown to the public and
    are not held to the public-text guardrails): title, alerts, where to look."""
    lines = [f"Alert: {group.title}"]
    if incident.components:
        lines.append(f"Components: {', '.join(incident.components)}")
    firing = [a for a in group.alerts if a.status == "firing"]
    shown = firing if group.status == "firing" else group.alerts
    word = "firing" if group.status == "firing" else "stopped"
    lines.append(f"{len(shown)} alert(s) {word}:")
    for alert in shown[:MAX_ALERT_LINES]:
        text = f"- {alert.name}"
        if alert.summary:
            text += f": {alert.summary}"
        if alert.starts_at is not None:
            text += f" (since {alert.starts_at.strftime('%Y-%m-%d %H:%M UTC')})"
        if alert.link:
            text += f" {alert.link}"
        lines.append(text)
    if len(shown) > MAX_ALERT_LINES:
        lines.append(f"- and {len(shown) - MAX_ALERT_LINES} more")
    if group.detail:
        lines.append(group.detail.strip()[:1000])
    if group.link:
        lines.append(f"Source: {group.link}")
    lines.extend(problems)
    return "\n".join(lines)[:4000]


def _affected(incident: Incident) -> str:
    return ", ".join(incident.components) if incident.components else "some of our services"


def public_text(incident: Incident, status: IncidentStatus, next_at: datetime) -> str:
    """Words only: every channel's layout states the promise (``next_at``) in each reader's time."""
    if status is IncidentStatus.MONITORING:
        return (
            f"Our monitoring shows {_affected(incident)} working normally again. We are watching closely "
            f"before we call this resolved. We are sorry for the disruption."
        )
    return f"We are investigating a problem affecting {_affected(incident)}. We are sorry for the disruption."
