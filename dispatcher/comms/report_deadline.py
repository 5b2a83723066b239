"""The post-incident report's deadline, set when an incident resolves (in the resolution's transaction).

The deadline is the resolution's own promise ("a full report by <date>", ``Update.report_by``), which
``publish`` fills from the severity's ``report_within`` when the author gave none. The tick reminds the
owner before it and flags the incident when it passes (``dispatcher.comms.reports.watch_reports``).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Connection, update

from dispatcher.comms.lifecycle import record_event
from dispatcher.domain.crisis import INCIDENT_KINDS
from dispatcher.domain.models import Incident, IncidentStatus, Update, UpdateDraft
from dispatcher.domain.policy import SeverityPolicy
from dispatcher.store.schema import incidents


def promised_report(
    draft: UpdateDraft, incident: Incident, rules: SeverityPolicy, goes_out: datetime
) -> datetime | None:
    """When a resolution promises the report: the author's date, else the severity's deadline."""
    if draft.status is not IncidentStatus.RESOLVED or incident.kind not in INCIDENT_KINDS:
        return None
    if draft.report_by is not None:
        return draft.report_by
    within: timedelta | None = rules.report_within
    return goes_out + within if within else None


def set_report_due(
    conn: Connection, upd: Update, incident: Incident, now: datetime, actor: str | None
) -> None:
    """The incident now owes its report by the resolution's promise (nothing when it made none)."""
    if upd.report_by is None:
        return
    conn.execute(
        update(incidents)
        .where(incidents.c.id == incident.id)
        .values(report_due_at=upd.report_by, report_reminded_at=None, report_overdue_at=None)
    )
    record_event(
        conn,
        incident.id,
        "report_due",
        now,
        actor=actor,
        update_id=upd.id,
        reason=f"post-incident report promised by {upd.report_by:%Y-%m-%d %H:%M} UTC",
    )
