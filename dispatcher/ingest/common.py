"""What every monitoring source shares: the normalised ``AlertGroup`` and what ingesting one does.

A group is one incident (``incidents.source`` + ``external_key``). Ingesting it:

- a delivery seen before (same source and dedupe key) changes nothing and sends nothing;
- ``firing`` opens the incident, reopens it when it broke again within the flap window, or sends it
  back from ``monitoring`` to ``investigating``; the on-call (internal audience) is told at once;
- ``resolved`` moves an open incident to ``monitoring``, never to ``resolved``: a person confirms;
- the public hears from monitoring only when the policy's ``monitoring.may_publish_public`` is true.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, TypeVar

from pydantic import BaseModel, ConfigDict
from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError, OperationalError

from dispatcher.comms.lifecycle import change_status, open_or_reopen
from dispatcher.comms.publish import publish
from dispatcher.domain.errors import InvalidInput, TocsinError
from dispatcher.domain.models import (
    Audience,
    Incident,
    IncidentDraft,
    IncidentStatus,
    Severity,
    UpdateDraft,
    UpdateState,
)
from dispatcher.domain.policy import MonitoringPolicy
from dispatcher.engine.runtime import Runtime
from dispatcher.engine.task_queue import TaskQueue
from dispatcher.ingest import notices
from dispatcher.store.schema import incidents, ingest_events

log = logging.getLogger(__name__)

Source = Literal["alertmanager", "grafana", "generic"]
AlertStatus = Literal["firing", "resolved"]

COMPONENT_LABELS = ("component", "service")
"""Labels whose values name the affected components, first found wins per alert."""
MAX_KEY_LENGTH = 300
"""``incidents.external_key`` is this long; longer group keys are stored as their digest."""
MAX_TITLE_LENGTH = 200


class AlertLine(BaseModel):
    """One alert of a group, as the on-call reads it."""

    model_config = ConfigDict(frozen=True)

    name: str
    status: AlertStatus
    summary: str | None = None
    starts_at: datetime | None = None
    link: str | None = None


class AlertGroup(BaseModel):
    """A source's payload, normalised: one group of alerts that is one incident."""

    model_config = ConfigDict(frozen=True)

    source: Source
    key: str
    """The source's id for the group (Alertmanager/Grafana ``groupKey``, the generic ``key``)."""
    status: AlertStatus
    title: str
    severity: Severity
    components: list[str]
    alerts: list[AlertLine]
    link: str | None = None
    """Where the on-call looks further (Alertmanager's externalURL, a Grafana dashboard)."""
    detail: str | None = None
    """Free text from the source (Grafana's message, the generic body's message)."""
    dedupe_material: str
    """What makes two deliveries the same (e.g. groupKey, status, each alert's fingerprint and times)."""

    @property
    def actor(self) -> str:
        return f"monitoring:{self.source}"

    @property
    def external_key(self) -> str:
        if len(self.key) <= MAX_KEY_LENGTH:
            return self.key
        return "sha256:" + hashlib.sha256(self.key.encode()).hexdigest()

    def dedupe_key(self) -> str:
        return hashlib.sha256(self.dedupe_material.encode()).hexdigest()


def alert_material(key: str, status: str, alerts: Iterable[tuple[str, str, str]]) -> str:
    """The dedupe material of a group: its key and status, then each alert's (fingerprint, startsAt,
    endsAt), sorted so the order monitoring lists them in does not matter."""
    lines = sorted("|".join(parts) for parts in alerts)
    return "\n".join([key, status, *lines])


def severity_from_labels(
    monitoring: MonitoringPolicy, common: Mapping[str, str], each: Iterable[Mapping[str, str]]
) -> Severity:
    """The group's common severity label, else the highest among its alerts, else the default."""
    label = monitoring.severity_label

    def mapped(value: str | None) -> Severity | None:
        return None if value is None else monitoring.severity_map.get(value.strip().lower())

    found = mapped(common.get(label))
    if found is not None:
        return found
    seen = [s for s in (mapped(labels.get(label)) for labels in each) if s is not None]
    return max(seen, key=lambda s: s.rank) if seen else monitoring.default_severity


def components_from_labels(common: Mapping[str, str], each: Iterable[Mapping[str, str]]) -> list[str]:
    """Components named by the common labels, else by each alert's labels (in order, no repeats)."""
    for name in COMPONENT_LABELS:
        if common.get(name, "").strip():
            return [common[name].strip()]
    found: list[str] = []
    for labels in each:
        for name in COMPONENT_LABELS:
            value = labels.get(name, "").strip()
            if value:
                found.append(value)
                break
    return list(dict.fromkeys(found))


def clip_title(*candidates: str | None) -> str:
    """The first non-empty candidate, fitted to an incident title (3 to 200 characters)."""
    for text in candidates:
        cleaned = " ".join((text or "").split())
        if cleaned:
            if len(cleaned) > MAX_TITLE_LENGTH:
                cleaned = cleaned[: MAX_TITLE_LENGTH - 1] + "…"
            return cleaned if len(cleaned) >= 3 else f"Alert {cleaned}"
    return "Monitoring alert"


Action = Literal["opened", "reopened", "escalated", "changed", "monitoring", "unchanged", "ignored", "repeat"]


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
    return None if row is None else Incident.model_validate(dict(row))


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
        public = UpdateDraft(
            incident_id=incident.id,
            status=public_status,
            message=notices.public_text(incident, public_status, next_at),
            next_update_at=next_at,
            audience=Audience.PUBLIC,
            idempotency_key=f"ingest:{group.source}:{digest[:48]}:public",
            author=group.actor,
        )
        try:
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


DEADLOCK_SQLSTATE = "40P01"
T = TypeVar("T")


def _again_on_race(step: Callable[[], T], tries: int = 4) -> T:
    """Run ``step``, again when a delivery of the same group raced this one.

    Another delivery may open the incident at the same moment (a unique-key clash: it exists now), or
    PostgreSQL may end one of two transactions locking the same rows in turn (a deadlock: it rolled
    back). Every step is safe to run again: opening finds the incident, publishing has an
    idempotency key."""
    for attempt in range(tries):
        try:
            return step()
        except IntegrityError:
            if attempt == tries - 1:
                raise
        except OperationalError as exc:
            if getattr(exc.orig, "sqlstate", None) != DEADLOCK_SQLSTATE or attempt == tries - 1:
                raise
    raise AssertionError("unreachable")


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
