"""The post-incident report: published for a resolved incident, shown under it on the status page (and
in ``status.json`` and the feed), and announced to everyone who was told about the incident.

- ``publish_report`` checks the report's words with the guardrails' leak rules (an error blocks it
  unless an override reason is given, recorded with the report), stores it, and writes a short notice
  (an update of kind ``report``, with the report's link) to every address told about the incident on
  the channels it was told on, opt-outs respected (``dispatcher.comms.everyone_told``): not to the
  audience as it is now, which may hold people who never heard of the incident.
- ``watch_reports`` (a duty of the tick) reminds the owner and staff ``report.remind_before`` ahead of
  the deadline (``Incident.report_due_at``), and flags the incident when the deadline passes with no
  report: on the timeline, in the console and ``tocsin incident show``, and by paging the owner and
  the senior approver.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from datetime import datetime

from sqlalchemy import Connection, insert, select, update

from dispatcher.comms import guardrails
from dispatcher.comms.everyone_told import submit_closure, write_closure_rows
from dispatcher.comms.lifecycle import human, record_event
from dispatcher.comms.paging import page
from dispatcher.domain.crisis import INCIDENT_KINDS, PostIncidentReport, report_notice_text
from dispatcher.domain.errors import InvalidInput, NotFound, TocsinError
from dispatcher.domain.guardrail_rules import Finding
from dispatcher.domain.identity import Identity
from dispatcher.domain.models import Audience, Incident, IncidentStatus, UpdateState
from dispatcher.engine.runtime import Runtime
from dispatcher.engine.task_queue import TaskQueue
from dispatcher.store.queries import get_incident, incident_from_row, update_from_row
from dispatcher.store.schema import deliveries, incident_reports, incidents, updates

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PublishedReport:
    incident_id: int
    report: PostIncidentReport
    published_at: datetime
    author: str | None
    link: str | None
    """Where the report is read (the incident's status page, ``#report``); None without a status page."""
    notice_update_id: int | None = None
    told: int = 0
    """Addresses the notice was written for (everyone told about the incident)."""
    on_time: bool | None = None
    """Published by its deadline (None: no deadline was owed)."""


def report_link(rt: Runtime, incident_id: int) -> str | None:
    base = rt.settings.status_page_url
    return f"{base.rstrip('/')}/incidents/{incident_id}.html#report" if base else None


def get_report(rt: Runtime, incident_id: int) -> PublishedReport:
    """The incident's report (``NotFound`` when none was published)."""
    with rt.engine.connect() as conn:
        row = (
            conn.execute(select(incident_reports).where(incident_reports.c.incident_id == incident_id))
            .mappings()
            .first()
        )
    if row is None:
        raise NotFound(f"incident {incident_id} has no post-incident report yet")
    return PublishedReport(
        incident_id=incident_id,
        report=PostIncidentReport(**{k: row[k] for k in PostIncidentReport.model_fields}),
        published_at=row["published_at"],
        author=row["author"],
        link=report_link(rt, incident_id),
        notice_update_id=row["notice_update_id"],
    )


def _check(rt: Runtime, incident: Incident, report: PostIncidentReport, override_reason: str | None) -> None:
    base = guardrails.base_draft(rt, "", incident, IncidentStatus.RESOLVED, rt.clock.now())
    found: list[Finding] = []
    for name, text in report.texts().items():
        found += guardrails.check(replace(base, text=text), True, guardrails.LEAK_RULES, name)
    guardrails.refuse_unless_overridden(found, override_reason)


def publish_report(
    rt: Runtime,
    incident_id: int,
    report: PostIncidentReport,
    who: Identity,
    queue: TaskQueue,
    override_reason: str | None = None,
) -> PublishedReport:
    """Publish the report of a resolved incident and announce it to everyone told (module docstring)."""
    now = rt.clock.now()
    with rt.engine.connect() as conn:
        incident = get_incident(conn, incident_id)
    if incident.kind not in INCIDENT_KINDS:
        raise InvalidInput(f"incident {incident_id} is a {incident.kind} window: it has no report")
    if incident.status is not IncidentStatus.RESOLVED:
        raise InvalidInput(
            f"incident {incident_id} is {incident.status.value}: a report explains an incident once it is "
            f"resolved (`tocsin incident resolve {incident_id}`)"
        )
    _check(rt, incident, report, override_reason)
    link = report_link(rt, incident_id)
    with rt.engine.begin() as conn:
        incident = get_incident(conn, incident_id, lock=True)
        exists = conn.execute(
            select(incident_reports.c.id).where(incident_reports.c.incident_id == incident_id)
        ).first()
        if exists is not None:
            raise InvalidInput(
                f"incident {incident_id} already has its report: `tocsin incident report {incident_id}`"
            )
        notice_id, told = _notice(conn, rt, incident, link, who, now)
        conn.execute(
            insert(incident_reports).values(
                incident_id=incident_id,
                **report.model_dump(),
                published_at=now,
                author=who.name,
                override_reason=(override_reason or "").strip() or None,
                notice_update_id=notice_id,
            )
        )
        # The report is out: the incident no longer needs attention for it (the timeline keeps the miss).
        conn.execute(update(incidents).where(incidents.c.id == incident_id).values(report_overdue_at=None))
        on_time = None if incident.report_due_at is None else now <= incident.report_due_at
        kept = {None: "", True: " (by its deadline)", False: " (after its deadline)"}[on_time]
        record_event(
            conn,
            incident_id,
            "report_published",
            now,
            actor=who.name,
            update_id=notice_id,
            reason=f"post-incident report published{kept}; the notice goes to {told} address(es) told",
        )
    if notice_id is not None:
        submit_closure(rt, queue, [notice_id])
    return PublishedReport(incident_id, report, now, who.name, link, notice_id, told, on_time)


def _notice(
    conn: Connection, rt: Runtime, incident: Incident, link: str | None, who: Identity, now: datetime
) -> tuple[int | None, int]:
    """Write the notice for everyone told (none when nobody was); (its id, addresses)."""
    text = report_notice_text("en", incident.title, link or "It is on our status page.")
    row = (
        conn.execute(
            insert(updates)
            .values(
                incident_id=incident.id,
                status=IncidentStatus.RESOLVED.value,
                message=text,
                audience=Audience.PUBLIC.value,
                channels=[],
                state=UpdateState.FANNED_OUT.value,
                published_at=now,
                fanned_out_at=now,
                kind="report",
                author=who.name,
                author_token_id=who.token_id,
                severity=incident.severity.value,
                policy_version=rt.policy.version,
            )
            .returning(*updates.c)
        )
        .mappings()
        .one()
    )
    notice = update_from_row(row)
    count, unreachable = write_closure_rows(conn, rt, notice, incident, now)
    channels = conn.execute(
        select(deliveries.c.channel).where(deliveries.c.update_id == notice.id).distinct()
    ).scalars()
    conn.execute(update(updates).where(updates.c.id == notice.id).values(channels=sorted(channels)))
    if unreachable:
        log.error("incident %s: channels %s are off: no report notice there", incident.id, unreachable)
        record_event(
            conn,
            incident.id,
            "report_unreachable",
            now,
            actor=who.name,
            update_id=notice.id,
            reason=f"channel(s) {', '.join(unreachable)} are off: people told there miss the report notice",
        )
    return notice.id, count


@dataclass
class ReportWatch:
    reminded: list[int] = field(default_factory=list)
    overdue: list[int] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def _owing(conn: Connection) -> list[Incident]:
    """Resolved incidents that owe a report none was published for."""
    published = select(incident_reports.c.incident_id)
    rows = conn.execute(
        select(incidents).where(
            incidents.c.status == IncidentStatus.RESOLVED.value,
            incidents.c.report_due_at.is_not(None),
            incidents.c.report_overdue_at.is_(None),
            incidents.c.id.not_in(published),
        )
    ).mappings()
    return [incident_from_row(r) for r in rows]


def _claim(rt: Runtime, incident_id: int, column: str, now: datetime) -> bool:
    """Set ``column`` once (several ticks may run at once): True for the tick that set it."""
    with rt.engine.begin() as conn:
        found = conn.execute(
            update(incidents)
            .where(incidents.c.id == incident_id, incidents.c[column].is_(None))
            .values({column: now})
        ).rowcount
    return bool(found)


def watch_reports(rt: Runtime, queue: TaskQueue) -> ReportWatch:
    """Remind before each report deadline, flag and page when it passes (see the module docstring)."""
    now = rt.clock.now()
    done = ReportWatch()
    with rt.engine.connect() as conn:
        owing = _owing(conn)
    before = rt.policy.policy.report.remind_before
    for inc in owing:
        due = inc.report_due_at
        assert due is not None
        try:
            if now >= due and _claim(rt, inc.id, "report_overdue_at", now):
                _overdue(rt, queue, inc, now)
                done.overdue.append(inc.id)
            elif now < due and now >= due - before and _claim(rt, inc.id, "report_reminded_at", now):
                _remind(rt, queue, inc, now)
                done.reminded.append(inc.id)
        except TocsinError as exc:  # loud: the tick prints it and exits non-zero
            log.error("incident %s: the report reminder was not sent: %s", inc.id, exc)
            done.errors.append(f"incident {inc.id}: report reminder not sent: {exc}")
    return done


def _remind(rt: Runtime, queue: TaskQueue, inc: Incident, now: datetime) -> None:
    due = inc.report_due_at
    assert due is not None
    text = (
        f"REPORT DUE: the post-incident report of incident #{inc.id} '{inc.title}' is due by "
        f"{due:%Y-%m-%d %H:%M} UTC (in {human(due - now)}). Publish it: "
        f"`tocsin incident report {inc.id} --file report.md`."
        + (f" Owner: {inc.owner}." if inc.owner else "")
    )
    upd = page(rt, queue, inc, text, f"report-due:{inc.id}", [inc.owner])
    with rt.engine.begin() as conn:
        record_event(conn, inc.id, "report_reminder", now, actor="tocsin", reason=text, update_id=upd.id)


def _overdue(rt: Runtime, queue: TaskQueue, inc: Incident, now: datetime) -> None:
    due = inc.report_due_at
    assert due is not None
    text = (
        f"REPORT OVERDUE: the post-incident report of incident #{inc.id} '{inc.title}' was due by "
        f"{due:%Y-%m-%d %H:%M} UTC and is not published: customers were promised it. Publish it: "
        f"`tocsin incident report {inc.id} --file report.md`."
    )
    escalation = rt.policy.policy.escalation
    upd = page(rt, queue, inc, text, f"report-overdue:{inc.id}", [inc.owner, escalation.senior_approver])
    with rt.engine.begin() as conn:
        record_event(conn, inc.id, "report_overdue", now, actor="tocsin", reason=text, update_id=upd.id)
