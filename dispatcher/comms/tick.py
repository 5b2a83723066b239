"""The periodic tick: every duty that time sets off, run once.

Schedules live in the database, never as long ETA tasks in Redis; this tick fires them. It is run by
Celery beat (``tocsin.tick``), by the embedded worker between deliveries, and by ``tocsin tick`` (from
cron, say). Every duty claims its work in the database before acting, so ticks that overlap (two
workers, a beat and a cron) do each thing once. One duty failing does not keep the others from running:
its error is logged with its traceback and returned in the report (``tocsin tick`` prints it, and exits
non-zero).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from dispatcher.comms.approval_nudges import nudge_approvals
from dispatcher.comms.first_word import watch_first_word
from dispatcher.comms.followups import enforce_promises
from dispatcher.comms.maintenance import advance_maintenance
from dispatcher.comms.publish import release_due
from dispatcher.comms.readiness import probes_due, readiness_round
from dispatcher.comms.reports import watch_reports
from dispatcher.engine.runtime import Runtime
from dispatcher.engine.task_queue import TaskQueue

log = logging.getLogger(__name__)


@dataclass
class TickReport:
    released: list[int] = field(default_factory=list)
    """Scheduled updates published because their time came."""
    maintenance: list[tuple[int, str]] = field(default_factory=list)
    """(maintenance id, stage it moved to)."""
    reminders: list[int] = field(default_factory=list)
    holdings: list[int] = field(default_factory=list)
    readiness: list[str] = field(default_factory=list)
    """Channels whose readiness changed this tick (``email: ready -> down``); staff were told."""
    escalations: list[int] = field(default_factory=list)
    """Incidents escalated because they drag on (holding messages no longer keep the promise)."""
    first_word: list[int] = field(default_factory=list)
    """Incidents whose owner and staff were paged for having no public word within the budget."""
    first_word_escalations: list[int] = field(default_factory=list)
    first_notices: list[int] = field(default_factory=list)
    """First notices sent by Tocsin itself (``auto_first_notice``)."""
    approval_nudges: list[int] = field(default_factory=list)
    """Updates whose approvers were paged for waiting too long."""
    report_reminders: list[int] = field(default_factory=list)
    """Incidents whose post-incident report is due soon (owner and staff reminded)."""
    reports_overdue: list[int] = field(default_factory=list)
    """Incidents whose post-incident report deadline passed (flagged, owner and senior approver paged)."""
    errors: list[str] = field(default_factory=list)

    @property
    def acted(self) -> bool:
        return bool(
            self.released
            or self.maintenance
            or self.reminders
            or self.holdings
            or self.readiness
            or self.escalations
            or self.first_word
            or self.first_word_escalations
            or self.approval_nudges
            or self.report_reminders
            or self.reports_overdue
        )

    def summary(self) -> str:
        return (
            f"released {len(self.released)} scheduled updates, {len(self.maintenance)} maintenance "
            f"stages, {len(self.reminders)} reminders, {len(self.holdings)} holding messages, "
            f"{len(self.escalations)} escalations, {len(self.first_word)} first-word alerts "
            f"({len(self.first_notices)} first notices sent), {len(self.approval_nudges)} approval nudges"
            + (f", {len(self.report_reminders)} report reminders" if self.report_reminders else "")
            + (f", {len(self.reports_overdue)} reports overdue" if self.reports_overdue else "")
            + (f"; readiness: {', '.join(self.readiness)}" if self.readiness else "")
            + (f"; {len(self.errors)} errors" if self.errors else "")
        )


def _release(rt: Runtime, queue: TaskQueue, report: TickReport) -> None:
    report.released.extend(release_due(rt, queue))


def _maintenance(rt: Runtime, queue: TaskQueue, report: TickReport) -> None:
    done = advance_maintenance(rt, queue)
    report.maintenance.extend(done.stages)
    report.errors.extend(done.errors)


def _promises(rt: Runtime, queue: TaskQueue, report: TickReport) -> None:
    done = enforce_promises(rt, queue)
    report.reminders.extend(done.reminders)
    report.holdings.extend(done.holdings)
    report.escalations.extend(done.escalations)
    report.errors.extend(done.errors)


def _first_word(rt: Runtime, queue: TaskQueue, report: TickReport) -> None:
    done = watch_first_word(rt, queue)
    report.first_word.extend(done.nudges)
    report.first_word_escalations.extend(done.escalations)
    report.first_notices.extend(done.notices)
    report.errors.extend(done.errors)


def _approvals(rt: Runtime, queue: TaskQueue, report: TickReport) -> None:
    # The first-word page of this tick already named the updates waiting on its incidents.
    done = nudge_approvals(rt, queue, paged_already=set(report.first_word))
    report.approval_nudges.extend(done.nudged)
    report.errors.extend(done.errors)


def _reports(rt: Runtime, queue: TaskQueue, report: TickReport) -> None:
    done = watch_reports(rt, queue)
    report.report_reminders.extend(done.reminded)
    report.reports_overdue.extend(done.overdue)
    report.errors.extend(done.errors)


def _readiness(rt: Runtime, queue: TaskQueue, report: TickReport) -> None:
    """Every ``readiness.probe_every`` seconds: probe every provider, tell staff of what changed."""
    if not probes_due(rt):
        return
    done = readiness_round(rt, queue)
    report.readiness.extend(f"{c.channel.value}: {c.before} -> {c.after}" for c in done.changes)
    report.errors.extend(f"readiness: {error}" for error in done.errors)


DUTIES: list[tuple[str, Callable[[Runtime, TaskQueue, TickReport], None]]] = [
    ("scheduled updates", _release),
    # Maintenance before promises: a window that ends resolves its incident before anything reminds.
    ("maintenance", _maintenance),
    ("first word", _first_word),
    ("approval nudges", _approvals),
    ("next-update promises", _promises),
    ("post-incident reports", _reports),
    # Last: probes wait on the network; the duties above must not wait for them.
    ("channel readiness", _readiness),
]


def run_tick(rt: Runtime, queue: TaskQueue) -> TickReport:
    """Run every periodic duty once, as of ``rt.clock.now()``."""
    report = TickReport()
    for name, duty in DUTIES:
        try:
            duty(rt, queue, report)
        except Exception as exc:  # one broken duty must not starve the others; it is logged loudly
            log.exception("tick: %s failed", name)
            report.errors.append(f"{name}: {type(exc).__name__}: {exc}")
    return report
