"""What needs someone's attention about an incident, in words the console and the CLI both show."""

from __future__ import annotations

from datetime import datetime

from dispatcher.comms.lifecycle import human
from dispatcher.domain.crisis import DATA_FACT_LABELS, INCIDENT_KINDS, SECURITY, DataFacts
from dispatcher.domain.models import Incident, IncidentStatus
from dispatcher.engine.runtime import Runtime


def flags(rt: Runtime, inc: Incident) -> list[str]:
    """Escalated, no public word past the budget, promise overdue: each as one short sentence."""
    now = rt.clock.now()
    if inc.status is IncidentStatus.RESOLVED:
        return _report_flags(inc, now)
    found = []
    if inc.escalated_at is not None:
        found.append(
            f"escalated {human(now - inc.escalated_at)} ago: holding messages no longer keep the promise; "
            "the next public update must say something new"
        )
    budget = rt.policy.policy.first_word_budget(inc.severity)
    if (
        inc.kind in INCIDENT_KINDS
        and inc.first_word_at is None
        and budget.total_seconds() > 0
        and now - inc.opened_at >= budget
    ):
        found.append(
            f"no public word for {human(now - inc.opened_at)} (budget {human(budget)}): "
            f"`tocsin incident first-notice {inc.id}`"
        )
    if inc.kind == SECURITY and (missing := (inc.data_facts or DataFacts()).missing()):
        owed = ", ".join(DATA_FACT_LABELS[name] for name in missing)
        found.append(f"data facts owed before it goes public: {owed} (`tocsin incident facts {inc.id}`)")
    late = inc.next_update_at is not None and inc.next_update_at < now
    if late and inc.escalated_at is None and inc.kind in INCIDENT_KINDS:  # a window's schedule is its promise
        assert inc.next_update_at is not None
        found.append(f"the promised update is {human(now - inc.next_update_at)} late")
    return found


def _report_flags(inc: Incident, now: datetime) -> list[str]:
    """A resolved incident needs attention when its post-incident report is overdue (flagged by the
    tick, ``dispatcher.comms.reports``); once the report is out, the flag is cleared with it."""
    if inc.report_overdue_at is None or inc.report_due_at is None:
        return []
    return [
        f"the post-incident report is {human(now - inc.report_due_at)} overdue (due "
        f"{inc.report_due_at:%Y-%m-%d %H:%M} UTC): `tocsin incident report {inc.id} --file report.md`"
    ]
