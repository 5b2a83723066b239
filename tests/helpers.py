"""Small builders that keep the tests reading like a user's story."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from channels.base import ChannelKind
from dispatcher.audience.subscribers import add_subscribers
from dispatcher.comms.incidents import open_incident
from dispatcher.comms.publish import Published, publish
from dispatcher.domain.models import (
    ContactPoint,
    Incident,
    IncidentDraft,
    IncidentStatus,
    Severity,
    Subscriber,
    UpdateDraft,
)
from dispatcher.engine.runtime import Runtime
from dispatcher.engine.task_queue import BatchRef
from dispatcher.runners.embedded import EmbeddedRunner
from dispatcher.store.schema import deliveries


def person(
    i: int, *, email: bool = True, sms: bool = False, webhook: str | None = None, **fields: Any
) -> Subscriber:
    points = []
    if email:
        points.append(ContactPoint(channel=ChannelKind.EMAIL, address=f"person{i}@example.com"))
    if sms:
        points.append(ContactPoint(channel=ChannelKind.SMS, address=f"+1202555{i:04d}"))
    if webhook:
        points.append(ContactPoint(channel=ChannelKind.WEBHOOK, address=f"{webhook}/{i}"))
    return Subscriber(name=f"Person {i}", contact_points=points, **fields)


def subscribe(rt: Runtime, count: int, **kwargs: Any) -> list[Subscriber]:
    people = [person(i, **kwargs) for i in range(count)]
    add_subscribers(rt, people)
    return people


def incident(
    rt: Runtime, severity: Severity = Severity.MAJOR, components: list[str] | None = None
) -> Incident:
    return open_incident(
        rt, IncidentDraft(title="Checkout failing", severity=severity, components=components or ["checkout"])
    )


def draft(
    inc: Incident, message: str = "We are investigating failed checkouts. Sorry.", **fields: Any
) -> UpdateDraft:
    fields.setdefault("status", IncidentStatus.INVESTIGATING)
    if fields["status"] is not IncidentStatus.RESOLVED:
        # Guardrails want every update of an unresolved incident to promise the next one.
        fields.setdefault("next_update_at", datetime.now(UTC) + timedelta(hours=1))
    return UpdateDraft(incident_id=inc.id, message=message, **fields)


def publish_and_deliver(rt: Runtime, upd: UpdateDraft, wait: float = 0.0) -> Published:
    runner = EmbeddedRunner(rt)
    published = publish(rt, upd, runner.queue)
    runner.run_until_idle(wait_up_to=wait)
    return published


def states(rt: Runtime, update_id: int, channel: ChannelKind | None = None) -> dict[str, int]:
    query = select(deliveries.c.state, func.count()).where(deliveries.c.update_id == update_id)
    if channel is not None:
        query = query.where(deliveries.c.channel == channel.value)
    with rt.engine.connect() as conn:
        return {s: int(n) for s, n in conn.execute(query.group_by(deliveries.c.state))}


@dataclass
class RecordingQueue:
    """A TaskQueue that only remembers what it was asked to run."""

    fanouts: list[int] = field(default_factory=list)
    batches: list[tuple[BatchRef, float]] = field(default_factory=list)

    def submit_fanout(self, update_id: int) -> None:
        self.fanouts.append(update_id)

    def submit_batch(self, ref: BatchRef, delay: float = 0.0) -> None:
        self.batches.append((ref, delay))


class ManualClock:
    """A clock the test moves by hand (``rt.clock = ManualClock(start)``)."""

    def __init__(self, start: datetime) -> None:
        self.at = start

    def now(self) -> datetime:
        return self.at

    def advance(self, **span: float) -> None:
        self.at += timedelta(**span)


def hand_clock(rt: Runtime) -> ManualClock:
    """Give ``rt`` a ManualClock that starts at its present time (to the second)."""
    clock = ManualClock(rt.clock.now().replace(microsecond=0))
    rt.clock = clock
    return clock


class TimedStage:
    """A runtime on a clock moved by hand, with an embedded runner that delivers what is published to
    the outbox folder ``outbox``."""

    def __init__(self, rt: Runtime, outbox: Path, start: datetime) -> None:
        self.rt = rt
        self.clock = ManualClock(start)
        rt.clock = self.clock
        self.runner = EmbeddedRunner(rt)
        self.outbox = outbox
