"""Channel readiness as a duty: probe every provider, keep what was found, and tell staff, through the
channels still standing, when a channel goes from ready to not ready (and when it is ready again).

The tick runs a round every ``readiness.probe_every`` seconds; ``tocsin check`` runs one on demand. A
channel that gets worse opens an internal incident of kind ``readiness`` ("Channel email not ready") and
publishes an internal update to staff on every other channel that still stands; the update names each
provider and why it failed. When the channel is ready again, staff get a last update and the incident is
closed. Staff learn of a dead channel before the next outage, not from customers during it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import update

from channels.base import ChannelKind
from dispatcher.comms.lifecycle import insert_incident, record_event
from dispatcher.comms.publish import publish
from dispatcher.domain.errors import TocsinError
from dispatcher.domain.models import Audience, IncidentStatus, Severity, UpdateDraft
from dispatcher.engine.readiness.probing import ProviderReadiness, probe_providers
from dispatcher.engine.readiness.state import (
    DOWN,
    READY,
    ChannelChange,
    ChannelReadiness,
    last_checked,
    record,
    set_alert_incident,
    snapshot,
)
from dispatcher.engine.runtime import Runtime
from dispatcher.engine.task_queue import TaskQueue
from dispatcher.store.schema import incidents

log = logging.getLogger(__name__)

AUTHOR = "tocsin:readiness"
KIND = "readiness"
NEVER_TO_STAFF = (ChannelKind.SOCIAL, ChannelKind.STATUSPAGE)
"""Public by nature: an internal alert never goes there."""


@dataclass
class ReadinessRound:
    results: list[ProviderReadiness] = field(default_factory=list)
    changes: list[ChannelChange] = field(default_factory=list)
    told: list[int] = field(default_factory=list)
    """Internal updates published to staff about those changes."""
    errors: list[str] = field(default_factory=list)


def probes_due(rt: Runtime) -> bool:
    every = rt.settings.readiness.probe_every
    if every <= 0:
        return False
    last = last_checked(rt)
    return last is None or rt.clock.now() - last >= timedelta(seconds=every)


def readiness_round(rt: Runtime, queue: TaskQueue) -> ReadinessRound:
    """Probe, keep, and tell staff of every change this process claimed."""
    done = ReadinessRound(results=probe_providers(rt))
    done.changes = record(rt, done.results)
    if not done.changes:
        return done
    now_standing = snapshot(rt)
    for change in done.changes:
        try:
            told = _tell_staff(rt, queue, change, now_standing)
        except TocsinError as exc:  # e.g. no channel left to carry it: said loudly, never swallowed
            log.error("readiness: could not tell staff that %s is %s: %s", change.channel, change.after, exc)
            done.errors.append(f"{change.channel.value} is {change.after}; staff not told: {exc}")
            continue
        if told is not None:
            done.told.append(told)
    return done


def _carriers(change: ChannelChange, standing: dict[ChannelKind, ChannelReadiness]) -> list[ChannelKind]:
    """Channels that can carry the alert: standing, private, and not the one that is down."""
    return [
        kind
        for kind, state in standing.items()
        if state.standing
        and kind not in NEVER_TO_STAFF
        and not (kind is change.channel and change.after == DOWN)
    ]


def _tell_staff(
    rt: Runtime, queue: TaskQueue, change: ChannelChange, standing: dict[ChannelKind, ChannelReadiness]
) -> int | None:
    incident_id = change.incident_id
    if change.worse and incident_id is None:
        incident_id = _open_alert(rt, change)
    if incident_id is None:  # better, with no alert open: nobody was told it was worse
        return None
    carriers = _carriers(change, standing)
    if not carriers:
        raise TocsinError(f"no channel is standing to carry the alert: {_broken(change)}")
    status = IncidentStatus.INVESTIGATING if change.after != READY else IncidentStatus.MONITORING
    draft = UpdateDraft(
        incident_id=incident_id,
        status=status,
        message=alert_text(change),
        audience=Audience.INTERNAL,
        channels=carriers,
        author=AUTHOR,
        idempotency_key=f"readiness:{change.channel.value}:{change.after}:{change.providers[0].checked_at.isoformat()}",
    )
    published = publish(rt, draft, queue).update
    if change.after == READY:
        _close_alert(rt, change.channel, incident_id)
    return published.id


def _open_alert(rt: Runtime, change: ChannelChange) -> int:
    now = rt.clock.now()
    with rt.engine.begin() as conn:
        new_id = insert_incident(
            conn,
            title=f"Channel {change.channel.value} not ready",
            severity=Severity.MAJOR,
            components=[],
            status=IncidentStatus.INVESTIGATING,
            at=now,
            actor=AUTHOR,
            reason=_broken(change),
            kind=KIND,
        )
    set_alert_incident(rt, change.channel, new_id)
    return new_id


def _close_alert(rt: Runtime, channel: ChannelKind, incident_id: int) -> None:
    """A system incident: closed as soon as the probes say so (no hold in monitoring to wait out)."""
    now = rt.clock.now()
    with rt.engine.begin() as conn:
        conn.execute(
            update(incidents)
            .where(incidents.c.id == incident_id)
            .values(
                status=IncidentStatus.RESOLVED.value, resolved_at=now, updated_at=now, next_update_at=None
            )
        )
        record_event(
            conn,
            incident_id,
            "status",
            now,
            actor=AUTHOR,
            from_status=IncidentStatus.MONITORING,
            to_status=IncidentStatus.RESOLVED,
            reason=f"every provider of {channel.value} answers its probe",
        )
    set_alert_incident(rt, channel, None)


def _broken(change: ChannelChange) -> str:
    return (
        "; ".join(f"{r.provider}: {r.detail}" for r in change.providers if not r.ready)
        or "all providers answer"
    )


def alert_text(change: ChannelChange) -> str:
    """What staff read. Plain words, every provider and why, and what to do next."""
    name = change.channel.value
    working = [r.provider for r in change.providers if r.ready]
    if change.after == READY:
        return (
            f"Channel {name} is ready again: every provider answers its probe "
            f"({', '.join(working)}). Updates go out on {name} as usual."
        )
    lines = [f"Channel {name} is {'DOWN' if change.after == DOWN else 'DEGRADED'}."]
    lines += [f"- {r.provider}: {r.detail}" for r in change.providers if not r.ready]
    if change.after == DOWN:
        lines.append(
            f"No provider can carry {name}: updates will not reach anyone on {name} until one answers."
        )
    else:
        lines.append(
            f"{name} still goes out through {', '.join(working)}; failover is gone until this is repaired."
        )
    lines.append("Check the provider's account and credentials, then run `tocsin check` to confirm.")
    return "\n".join(lines)
