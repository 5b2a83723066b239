"""What needs someone's attention about an incident, in words the console and the CLI both show."""

from __future__ import annotations

from dispatcher.comms.lifecycle import human
from dispatcher.domain.crisis import DATA_FACT_LABELS, INCIDENT_KINDS, SECURITY, DataFacts
from dispatcher.domain.models import Incident, IncidentStatus
from dispatcher.engine.runtime import Runtime


def flags(rt: Runtime, inc: Incident) -> list[str]:
    """Escalated, no public word past the budget, promise overdue: each as one short sentence."""
    if inc.status is IncidentStatus.RESOLVED:
        return []
    now = rt.clock.now()
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
