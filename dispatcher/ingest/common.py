"""What every monitoring source shares: the normalised ``AlertGroup`` and what ingesting one does.

A group is one incident (``incidents.source`` + ``external_key``). Ingesting it:

- a delivery seen before (same source and dedupe key) changes nothing and sends nothing;
- ``firing`` opens the incident, reopens it when it broke again within the flap window, or sends it
  back from ``monitoring`` to ``investigating``; the on-call (internal audience) is told at once;
- ``resolved`` moves an open incident to ``monitoring``, never to ``resolved``: a person confirms;
- the public hears from monitoring only when the policy's ``monitoring.may_publish_public`` is true.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeVar

import tenacity
from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError, OperationalError

from dispatcher.comms.lifecycle import change_status, open_or_reopen
from dispatcher.comms.message_templates import draft_from_template
from dispatcher.comms.publish import publish
from dispatcher.domain.errors import ConfigurationError, InvalidInput, NotFound, TocsinError
from dispatcher.domain.models import (
    Audience,
    Incident,
    IncidentDraft,
    IncidentStatus,
    UpdateDraft,
    UpdateState,
)
from dispatcher.engine.runtime import Runtime
from dispatcher.engine.task_queue import TaskQueue
from dispatcher.ingest import notices
from dispatcher.ingest.alerts import Action, AlertGroup
from dispatcher.store.queries import incident_from_row
from dispatcher.store.schema import incidents, ingest_events

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IngestResult:
    incident_id: int | None
    action: Action
    updates: list[int] = field(default_factory=list)
    """Updates published for this delivery (the internal notice, and a public one when allowed)."""
    problems: list[str] = field(default_factory=list)
    """Notices that could not be published (e.g. a public text the guardrails blocked)."""

    @property
    def repeat(self) -> bool:
        return self.action == "repeat"


def _claim(rt: Runtime, group: AlertGroup, digest: str, now: datetime) -> int | IngestResult:
    """Record this delivery (its id), or the result of the earlier one when it was seen before."""
    try:
        with rt.engine.begin() as conn:
            claim_id: int = conn.execute(
                insert(ingest_events)
                .values(source=group.source, dedupe_key=digest, incident_id=None, received_at=now)
                .returning(ingest_events.c.id)
            ).scalar_one()
            return claim_id
    except IntegrityError:
        with rt.engine.connect() as conn:
            earlier = conn.execute(
                select(ingest_events.c.incident_id).where(
                    ingest_events.c.source == group.source, ingest_events.c.dedupe_key == digest
                )
            ).first()
        if earlier is None:
            raise
        return IngestResult(earlier.incident_id, "repeat")


def _by_key(rt: Runtime, group: AlertGroup) -> Incident | None:
    with rt.engine.connect() as conn:
        row = (
            conn.execute(
                select(incidents).where(
                    incidents.c.source == group.source, incidents.c.external_key == group.external_key
                )
            )
            .mappings()
            .first()
        )
    return None if row is None else incident_from_row(row)


def _move(rt: Runtime, incident: Incident, to: IncidentStatus, actor: str, reason: str) -> Incident | None:
    """The incident moved to ``to``; None when someone else moved it first (nothing to tell)."""
    try:
        return change_status(rt, incident.id, to, actor, reason=reason)
    except InvalidInput:
        return None


def _incident_step(rt: Runtime, group: AlertGroup) -> tuple[Incident | None, Action]:
    if group.status == "firing":
        draft = IncidentDraft(title=group.title, severity=group.severity, components=group.components)
        opened = open_or_reopen(
            rt, draft, source=group.source, external_key=group.external_key, actor=group.actor
        )
        if opened.action != "existing":
            return opened.incident, opened.action
        if opened.incident.status is IncidentStatus.MONITORING:
            moved = _move(
                rt, opened.incident, IncidentStatus.INVESTIGATING, group.actor, notices.FIRING_AGAIN_REASON
            )
            return (moved, "escalated") if moved else (opened.incident, "unchanged")
        return opened.incident, "changed"
    found = _by_key(rt, group)
    if found is None:
        return None, "ignored"
    if found.status in (IncidentStatus.INVESTIGATING, IncidentStatus.IDENTIFIED):
        moved = _move(rt, found, IncidentStatus.MONITORING, group.actor, notices.RECOVERY_REASON)
        return (moved, "monitoring") if moved else (found, "unchanged")
    return found, "unchanged"


FIRST_NOTICE = "first-notice"
"""The message template monitoring's first public word is written from (``tocsin templates show``)."""


def _public_draft(
    rt: Runtime, incident: Incident, status: IncidentStatus, next_at: datetime, problems: list[str]
) -> UpdateDraft:
    """Monitoring's public words: the library's first notice (in every language it has) when the
    incident starts, Tocsin's own recovery text when monitoring sees it recover."""
    if status is IncidentStatus.INVESTIGATING:
        try:
            return draft_from_template(rt, incident.id, FIRST_NOTICE, {}, author=None, start=rt.clock.now())
        except (ConfigurationError, NotFound, InvalidInput) as exc:
            log.warning("the %s template cannot be used, Tocsin's own words instead: %s", FIRST_NOTICE, exc)
            problems.append(f"the {FIRST_NOTICE} template could not be used ({exc}): sent Tocsin's own words")
    return UpdateDraft(
        incident_id=incident.id, status=status, message=notices.public_text(incident, status, next_at)
    )


def _notify(
    rt: Runtime, group: AlertGroup, incident: Incident, action: Action, digest: str, queue: TaskQueue
) -> tuple[list[int], list[str]]:
    """Publish the public update (when the policy lets monitoring) and the on-call's notice."""
    now = rt.clock.now()
    policy = rt.policy.policy
    published: list[int] = []
    problems: list[str] = []
    public_note: str
    public_status = {
        "opened": IncidentStatus.INVESTIGATING,
        "reopened": IncidentStatus.INVESTIGATING,
        "escalated": IncidentStatus.INVESTIGATING,
        "monitoring": IncidentStatus.MONITORING,
    }.get(action)
    if public_status is None:
        public_note = notices.NO_PUBLIC_CHANGE
    elif not policy.monitoring.may_publish_public:
        public_note = notices.PUBLIC_NEEDS_A_PERSON
    else:
        next_at = now + policy.for_severity(incident.severity).cadence
        try:
            public = _public_draft(rt, incident, public_status, next_at, problems).model_copy(
                update={
                    "next_update_at": next_at,
                    "audience": Audience.PUBLIC,
                    "idempotency_key": f"ingest:{group.source}:{digest[:48]}:public",
                    "author": group.actor,
                }
            )
            upd = _again_on_race(lambda: publish(rt, public, queue)).update
        except TocsinError as exc:
            log.warning("monitoring's public update for incident %s was not published: %s", incident.id, exc)
            problems.append(f"public update not published: {exc}")
            public_note = notices.public_blocked()
        else:
            published.append(upd.id)
            if upd.state is UpdateState.PENDING_APPROVAL:
                public_note = notices.public_waiting(upd.id)
            else:
                public_note = notices.public_sent(upd.id, next_at)
    internal = UpdateDraft(
        incident_id=incident.id,
        status=incident.status,
        message=notices.internal_text(group, incident, action, public_note),
        internal_note=notices.internal_note(group, incident, problems),
        audience=Audience.INTERNAL,
        idempotency_key=f"ingest:{group.source}:{digest[:48]}:internal",
        author=group.actor,
    )
    try:
        published.insert(0, _again_on_race(lambda: publish(rt, internal, queue)).update.id)
    except TocsinError as exc:
        log.error("the on-call notice for incident %s was not published: %s", incident.id, exc)
        problems.append(f"internal notice not published: {exc}")
    return published, problems


TELLS_ON_CALL: frozenset[Action] = frozenset({"opened", "reopened", "escalated", "changed", "monitoring"})


RACE_SQLSTATES = frozenset({"40P01", "40001"})
"""PostgreSQL's deadlock_detected and serialization_failure: the transaction was rolled back."""
T = TypeVar("T")


def _raced(exc: BaseException) -> bool:
    if isinstance(exc, IntegrityError):
        return True
    return isinstance(exc, OperationalError) and getattr(exc.orig, "sqlstate", None) in RACE_SQLSTATES


def _again_on_race(step: Callable[[], T], tries: int = 4) -> T:
    """Run ``step``, again when a delivery of the same group raced this one.

    Another delivery may open the incident at the same moment (a unique-key clash: it exists now), or
    PostgreSQL may end one of two transactions locking the same rows in turn (a deadlock, or a
    serialization failure: it rolled back). Every step is safe to run again: opening finds the
    incident, publishing has an idempotency key. After ``tries`` the last error is raised."""
    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_exception(_raced),
        stop=tenacity.stop_after_attempt(tries),
        wait=tenacity.wait_random(0, 0.05),
        reraise=True,
    )
    result: T = retrying(step)
    return result


def ingest(rt: Runtime, group: AlertGroup, queue: TaskQueue) -> IngestResult:
    """Apply one delivery from monitoring; a repeat of an earlier delivery changes and sends nothing."""
    digest = group.dedupe_key()
    claimed = _claim(rt, group, digest, rt.clock.now())
    if isinstance(claimed, IngestResult):
        return claimed
    try:
        incident, action = _again_on_race(lambda: _incident_step(rt, group))
    except BaseException:
        # Nothing changed: forget the delivery so monitoring's retry is not taken for a repeat.
        with rt.engine.begin() as conn:
            conn.execute(delete(ingest_events).where(ingest_events.c.id == claimed))
        raise
    with rt.engine.begin() as conn:
        conn.execute(
            update(ingest_events)
            .where(ingest_events.c.id == claimed)
            .values(incident_id=None if incident is None else incident.id)
        )
    if incident is None or action not in TELLS_ON_CALL:
        return IngestResult(None if incident is None else incident.id, action)
    published, problems = _notify(rt, group, incident, action, digest, queue)
    return IngestResult(incident.id, action, published, problems)
