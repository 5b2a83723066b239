"""Resolving an incident, by any path, tells everyone who was told about it.

``resolve`` is what ``tocsin incident resolve``, ``tocsin incident status --to resolved``, the API's
status change and the console's resolve form all call. It never moves an incident to resolved
silently: it publishes a resolution update (the policy's pre-approved text, ``resolution.message``, or
the person's own words) to the audience customers last heard from (staff only when customers were
never told), and releasing it:

- closes the open promise ("next update by 14:30" is kept, or recorded broken) and the incident's
  promise;
- sends it to every address told about the incident on the channels it was told on, opt-outs respected
  (``dispatcher.comms.everyone_told``), and to the status page when customers were told there;
- records the move on the timeline with who and why. A forced resolve (before the monitoring hold)
  needs its reason; the reason goes on the timeline and in staff's copy, never to customers.

Someone's own resolution text is an ordinary update: guardrails, and approval when the severity asks for
it (then the incident resolves when it is approved). A forced resolve sends the approved text, so four
eyes are never skipped by forcing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from dispatcher.comms.lifecycle import plan_transition
from dispatcher.comms.publish import PUBLISHED_STATES, needs_approval, publish
from dispatcher.domain.errors import InvalidInput
from dispatcher.domain.identity import Identity
from dispatcher.domain.models import Audience, Incident, IncidentStatus, Update, UpdateDraft, UpdateState
from dispatcher.domain.texts import resolution_text
from dispatcher.engine.runtime import Runtime
from dispatcher.engine.task_queue import TaskQueue
from dispatcher.store import queries
from dispatcher.store.schema import updates


@dataclass(frozen=True)
class Resolution:
    incident: Incident
    """The incident after resolving (still open when the resolution waits for approval)."""
    update: Update
    """The resolution update."""

    @property
    def waiting(self) -> bool:
        return self.update.state is UpdateState.PENDING_APPROVAL


def _audience(rt: Runtime, incident_id: int) -> Audience:
    """The audience customers last heard from about the incident; staff only when customers never did."""
    with rt.engine.connect() as conn:
        last = conn.execute(
            select(updates.c.audience)
            .where(
                updates.c.incident_id == incident_id,
                updates.c.audience != Audience.INTERNAL.value,
                updates.c.state.in_(PUBLISHED_STATES),
            )
            .order_by(updates.c.id.desc())
            .limit(1)
        ).scalar_one_or_none()
    return Audience.INTERNAL if last is None else Audience(last)


def _note(who: Identity, reason: str | None, forced: bool) -> str | None:
    why = (reason or "").strip()
    if forced:
        return f"Resolved by {who.name} before the monitoring hold had passed (forced): {why}"
    return f"Resolved by {who.name}: {why}" if why else None


def resolve(
    rt: Runtime,
    incident_id: int,
    who: Identity,
    queue: TaskQueue,
    *,
    reason: str | None = None,
    force: bool = False,
    message: str | None = None,
    override_reason: str | None = None,
    report_by: datetime | None = None,
) -> Resolution:
    """Resolve the incident and tell everyone who was told about it (see the module docstring)."""
    now = rt.clock.now()
    with rt.engine.connect() as conn:
        incident = queries.get_incident(conn, incident_id)
    if incident.kind == "maintenance":
        raise InvalidInput(
            f"incident {incident_id} is a maintenance window: `tocsin maintenance finish {incident_id}`"
        )
    if incident.status is IncidentStatus.RESOLVED:
        raise InvalidInput(f"incident {incident_id} is already resolved")
    change = plan_transition(
        rt.policy.policy, incident, IncidentStatus.RESOLVED, now, force=force, reason=reason
    )
    assert change is not None
    audience = _audience(rt, incident_id)
    own_words = bool((message or "").strip())
    rules = rt.policy.policy.for_incident(incident.severity, incident.kind)
    if own_words and change.forced and needs_approval(rules, "update", audience):
        raise InvalidInput(
            f"message: {incident.severity.value} incidents' own texts wait for approval, and a forced "
            "resolve does not wait: resolve without --message (the approved resolution text goes out), "
            "or publish your text with --status resolved once the monitoring hold has passed"
        )
    draft = UpdateDraft(
        incident_id=incident_id,
        status=IncidentStatus.RESOLVED,
        message=(message or "").strip() or resolution_text(rt.policy.policy, incident, "en"),
        audience=audience,
        author=who.name,
        author_token_id=who.token_id,
        kind="update" if own_words else "resolution",
        internal_note=_note(who, reason, change.forced),
        override_reason=override_reason,
        report_by=report_by,
    )
    published = publish(rt, draft, queue, force_reason=(reason or "").strip() if change.forced else None)
    with rt.engine.connect() as conn:
        return Resolution(queries.get_incident(conn, incident_id), published.update)
