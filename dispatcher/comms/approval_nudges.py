"""Updates waiting for approval do not wait unnoticed: after ``escalation.approval_nudge_after``
(10 minutes by default) staff, the senior approver and the escalation contacts are paged once per
update, with the command that approves it. Until someone approves it, nobody has been told."""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import dataclass, field

from sqlalchemy import select, update

from dispatcher.comms.lifecycle import human, record_event
from dispatcher.comms.paging import page
from dispatcher.domain.errors import TocsinError
from dispatcher.domain.models import Update, UpdateState
from dispatcher.engine.runtime import Runtime
from dispatcher.engine.task_queue import TaskQueue
from dispatcher.store import queries
from dispatcher.store.queries import update_from_row
from dispatcher.store.schema import updates

log = logging.getLogger(__name__)


@dataclass
class NudgeReport:
    nudged: list[int] = field(default_factory=list)
    """Updates whose approvers were paged."""
    errors: list[str] = field(default_factory=list)


def _text(upd: Update, waited: str) -> str:
    return (
        f"WAITING FOR APPROVAL: update {upd.id} on incident #{upd.incident_id} ({upd.severity or '-'}), "
        f"written by {upd.author or 'unknown'}, has waited {waited}; customers have not been told. "
        f"Someone other than its author: `tocsin approve {upd.id}` (or reject it with a reason)."
    )


def nudge_approvals(rt: Runtime, queue: TaskQueue, paged_already: Collection[int] = ()) -> NudgeReport:
    """Page the approvers of every update that has waited too long (once per update).

    ``paged_already``: incidents whose page in this same tick named their waiting updates (the
    first-word watchdog's); a second page now would overtake it at the same addresses."""
    now = rt.clock.now()
    after = rt.policy.policy.escalation.approval_nudge_after
    report = NudgeReport()
    with rt.engine.connect() as conn:
        waiting = [
            update_from_row(r)
            for r in conn.execute(
                select(updates)
                .where(
                    updates.c.state == UpdateState.PENDING_APPROVAL.value,
                    updates.c.approval_nudged_at.is_(None),
                    updates.c.published_at <= now - after,
                )
                .order_by(updates.c.id)
            ).mappings()
        ]
    escalation = rt.policy.policy.escalation
    for upd in waiting:
        with rt.engine.begin() as conn:
            claimed = conn.execute(
                update(updates)
                .where(updates.c.id == upd.id, updates.c.approval_nudged_at.is_(None))
                .values(approval_nudged_at=now)
            ).rowcount
            incident = queries.get_incident(conn, upd.incident_id)
        if not claimed:
            continue
        if upd.incident_id in paged_already:
            report.nudged.append(upd.id)
            continue
        text = _text(upd, human(now - upd.published_at))
        try:
            paged = page(
                rt,
                queue,
                incident,
                text,
                f"approval:{upd.id}",
                [escalation.senior_approver, *escalation.contacts],
            )
        except TocsinError as exc:
            log.warning("update %s: the approval nudge failed: %s", upd.id, exc)
            report.errors.append(f"update {upd.id}: {exc}")
            continue
        with rt.engine.begin() as conn:
            record_event(
                conn, upd.incident_id, "approval_nudged", now, actor="tocsin", reason=text, update_id=paged.id
            )
        report.nudged.append(upd.id)
    return report
