"""The first word: customers hear from us within the severity's budget, whatever else is going on.

Every open incident has a first-word budget (policy ``severity.<s>.first_word``; built in: critical
10 minutes, major 20, minor 60). The clock starts when the incident opens and stops when the first
update to customers is *released* (written and waiting for approval does not count: nobody was told).

- At the budget, its owner and staff are paged (an internal reminder, and the owner's own email), told
  how long it has been, whether an update waits for approval, and how to send the pre-approved first
  notice at once: ``tocsin incident first-notice ID``. When the policy says ``auto_first_notice``,
  Tocsin sends that notice itself instead of waiting for a person.
- At twice the budget, the policy's escalation contacts are paged too.

The **first notice** is the severity's pre-approved text (``severity.<s>.first_notice``, per locale:
"We are aware of a problem with {components} and are investigating. Next update by {next_update}."),
promising the next update one cadence later. Being approved in advance, it never waits for a second
person: four eyes never delay the first word. Its title and components still go through the
guardrails (they head every message).

How long the first word took is recorded when it is released (``incidents.first_word_at``, event
``first_word``) and exported as ``tocsin_time_to_first_public_update_seconds``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import ColumnElement, select, update

from dispatcher.comms.lifecycle import human, record_event
from dispatcher.comms.paging import page
from dispatcher.comms.publish import Published, publish
from dispatcher.domain.crisis import INCIDENT_KINDS
from dispatcher.domain.errors import InvalidInput, TocsinError
from dispatcher.domain.identity import SYSTEM, Identity
from dispatcher.domain.models import Audience, Incident, IncidentStatus, UpdateDraft, UpdateState
from dispatcher.domain.texts import first_notice_text, iso_z
from dispatcher.engine.runtime import Runtime
from dispatcher.engine.task_queue import TaskQueue
from dispatcher.store import queries
from dispatcher.store.queries import incident_from_row
from dispatcher.store.schema import incidents, updates

log = logging.getLogger(__name__)


@dataclass
class FirstWordReport:
    nudges: list[int] = field(default_factory=list)
    """Incidents whose owner and staff were paged at the budget."""
    escalations: list[int] = field(default_factory=list)
    """Incidents whose escalation contacts were paged at twice the budget."""
    notices: list[int] = field(default_factory=list)
    """First notices Tocsin sent by itself (``auto_first_notice``)."""
    errors: list[str] = field(default_factory=list)


def send_first_notice(
    rt: Runtime, incident_id: int, who: Identity, queue: TaskQueue, override_reason: str | None = None
) -> Published:
    """Release the severity's pre-approved first notice for the incident now (no approval needed)."""
    with rt.engine.connect() as conn:
        inc = queries.get_incident(conn, incident_id)
    if inc.kind not in INCIDENT_KINDS or inc.status is IncidentStatus.RESOLVED:
        raise InvalidInput(f"incident {incident_id} is {inc.status.value}: there is nothing to announce")
    key = f"first-notice:{incident_id}"
    with rt.engine.connect() as conn:
        earlier = queries.find_update(conn, select(updates).where(updates.c.idempotency_key == key))
    if earlier is not None:
        return Published(earlier, created=False)
    if inc.first_word_at is not None:
        raise InvalidInput(
            f"incident {incident_id}: customers were told already; publish an update (`tocsin publish`)"
        )
    promise = rt.clock.now() + rt.policy.policy.for_severity(inc.severity).cadence
    draft = UpdateDraft(
        incident_id=incident_id,
        status=inc.status if inc.status is not IncidentStatus.MONITORING else IncidentStatus.INVESTIGATING,
        message=first_notice_text(rt.policy.policy, inc, "en", promise),
        next_update_at=promise,
        audience=Audience.PUBLIC,
        author=who.name,
        author_token_id=who.token_id,
        kind="first_notice",
        idempotency_key=key,
        override_reason=override_reason,
    )
    return publish(rt, draft, queue)


def _waiting(rt: Runtime, incident_id: int) -> list[int]:
    with rt.engine.connect() as conn:
        return list(
            conn.execute(
                select(updates.c.id).where(
                    updates.c.incident_id == incident_id,
                    updates.c.state == UpdateState.PENDING_APPROVAL.value,
                    updates.c.audience != Audience.INTERNAL.value,
                )
            ).scalars()
        )


def _claim(rt: Runtime, inc: Incident, column: ColumnElement[object], now: datetime) -> bool:
    """Set ``column`` (a ``*_at`` of the incident) to now if it is still unset and no word went out."""
    with rt.engine.begin() as conn:
        return bool(
            conn.execute(
                update(incidents)
                .where(incidents.c.id == inc.id, column.is_(None), incidents.c.first_word_at.is_(None))
                .values({column.key: now})
            ).rowcount
        )


def _nudge_text(inc: Incident, waited: str, budget: str, waiting: list[int], sent: int | None) -> str:
    parts = [
        f"NO PUBLIC WORD: incident #{inc.id} '{inc.title}' ({inc.severity.value}) opened {waited} ago and "
        f"customers have not been told (first-word budget: {budget})."
    ]
    if sent is not None:
        parts.append(f"Tocsin sent the pre-approved first notice (update {sent}).")
    if waiting:
        listed = ", ".join(str(i) for i in waiting)
        parts.append(f"Update(s) {listed} wait for approval: `tocsin approve {waiting[0]}`.")
    if sent is None:
        parts.append(f"Send the pre-approved first notice now: `tocsin incident first-notice {inc.id}`.")
    if inc.owner:
        parts.append(f"Owner: {inc.owner}.")
    return " ".join(parts)


def _nudge(rt: Runtime, queue: TaskQueue, inc: Incident, now: datetime, report: FirstWordReport) -> None:
    if not _claim(rt, inc, incidents.c.first_word_nudged_at, now):
        return
    rules = rt.policy.policy.for_severity(inc.severity)
    sent: int | None = None
    if rules.auto_first_notice:
        try:
            sent = send_first_notice(rt, inc.id, SYSTEM, queue).update.id
            report.notices.append(sent)
        except TocsinError as exc:  # e.g. the title leaks: a person must word it; say so loudly
            log.error("incident %s: the automatic first notice was not sent: %s", inc.id, exc)
            report.errors.append(f"incident {inc.id}: first notice not sent: {exc}")
    budget = rt.policy.policy.first_word_budget(inc.severity)
    waiting = _waiting(rt, inc.id)
    text = _nudge_text(inc, human(now - inc.opened_at), human(budget), waiting, sent)
    escalation = rt.policy.policy.escalation
    # Updates waiting for approval: this page is their approvers' nudge too.
    approvers = [escalation.senior_approver, *escalation.contacts] if waiting else []
    upd = page(rt, queue, inc, text, f"first-word:{inc.id}", [inc.owner, *approvers])
    with rt.engine.begin() as conn:
        record_event(conn, inc.id, "first_word_overdue", now, actor="tocsin", reason=text, update_id=upd.id)
    report.nudges.append(inc.id)


def _escalate(rt: Runtime, queue: TaskQueue, inc: Incident, now: datetime, report: FirstWordReport) -> None:
    if not _claim(rt, inc, incidents.c.first_word_escalated_at, now):
        return
    escalation = rt.policy.policy.escalation
    text = (
        f"ESCALATED: incident #{inc.id} '{inc.title}' ({inc.severity.value}) has had no public word for "
        f"{human(now - inc.opened_at)}, twice its first-word budget. Send the pre-approved first notice: "
        f"`tocsin incident first-notice {inc.id}`."
    )
    people = [inc.owner, escalation.senior_approver, *escalation.contacts]
    upd = page(rt, queue, inc, text, f"first-word-escalated:{inc.id}:{iso_z(now)}", people)
    with rt.engine.begin() as conn:
        record_event(conn, inc.id, "first_word_escalated", now, actor="tocsin", reason=text, update_id=upd.id)
    report.escalations.append(inc.id)


def watch_first_word(rt: Runtime, queue: TaskQueue) -> FirstWordReport:
    """Page whoever must hear of incidents still without a public word (see the module docstring)."""
    now = rt.clock.now()
    report = FirstWordReport()
    with rt.engine.connect() as conn:
        silent = [
            incident_from_row(r)
            for r in conn.execute(
                select(incidents)
                .where(
                    incidents.c.kind.in_(INCIDENT_KINDS),
                    incidents.c.status != IncidentStatus.RESOLVED.value,
                    incidents.c.first_word_at.is_(None),
                    incidents.c.first_word_escalated_at.is_(None),
                )
                .order_by(incidents.c.opened_at, incidents.c.id)
            ).mappings()
        ]
    for inc in silent:
        budget = rt.policy.policy.first_word_budget(inc.severity)
        if budget.total_seconds() <= 0 or now - inc.opened_at < budget:
            continue
        try:
            if inc.first_word_nudged_at is None:
                _nudge(rt, queue, inc, now, report)
            if now - inc.opened_at >= 2 * budget:
                _escalate(rt, queue, inc, now, report)
        except TocsinError as exc:
            log.warning("incident %s: first-word watchdog failed: %s", inc.id, exc)
            report.errors.append(f"incident {inc.id}: {exc}")
    return report
