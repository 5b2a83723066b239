"""What the console's pages read: the attention bar, an incident's updates, subscriber search."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import func, or_, select

from dispatcher.audience.subscribers import load
from dispatcher.comms.approval import pending_approvals
from dispatcher.domain.crisis import INCIDENT_KINDS
from dispatcher.domain.models import Incident, IncidentStatus, Subscriber, Update
from dispatcher.engine.runtime import Runtime
from dispatcher.store.queries import incident_from_row, update_from_row
from dispatcher.store.schema import contact_points, incidents, subscribers, updates


@dataclass(frozen=True)
class Attention:
    """Shown at the top of every page: promises broken, updates waiting for a second person, incidents
    escalated because they drag on, and incidents customers have not heard of within the budget."""

    overdue: list[Incident]
    pending_approval: list[Update]
    escalated: list[Incident] = field(default_factory=list)
    silent: list[Incident] = field(default_factory=list)


def attention(rt: Runtime) -> Attention:
    now = rt.clock.now()
    with rt.engine.connect() as conn:
        overdue = conn.execute(
            select(incidents)
            .where(
                incidents.c.status != IncidentStatus.RESOLVED.value,
                incidents.c.next_update_at.is_not(None),
                incidents.c.next_update_at < now,
                incidents.c.escalated_at.is_(None),
                incidents.c.kind.in_(INCIDENT_KINDS),  # a maintenance window's schedule is its promise
            )
            .order_by(incidents.c.next_update_at)
            .limit(20)
        ).mappings()
        late = [incident_from_row(r) for r in overdue]
        open_ones = [
            incident_from_row(r)
            for r in conn.execute(
                select(incidents)
                .where(
                    incidents.c.status != IncidentStatus.RESOLVED.value,
                    incidents.c.kind.in_(INCIDENT_KINDS),
                    or_(incidents.c.escalated_at.is_not(None), incidents.c.first_word_at.is_(None)),
                )
                .order_by(incidents.c.opened_at)
                .limit(100)
            ).mappings()
        ]
    escalated = [i for i in open_ones if i.escalated_at is not None][:20]
    silent = [
        i
        for i in open_ones
        if i.first_word_at is None
        and rt.policy.policy.first_word_budget(i.severity).total_seconds() > 0
        and now - i.opened_at >= rt.policy.policy.first_word_budget(i.severity)
    ][:20]
    return Attention(late, pending_approvals(rt)[:20], escalated, silent)


def incident_updates(rt: Runtime, incident_id: int) -> list[Update]:
    with rt.engine.connect() as conn:
        rows = conn.execute(
            select(updates).where(updates.c.incident_id == incident_id).order_by(updates.c.id.desc())
        ).mappings()
        return [update_from_row(r) for r in rows]


@dataclass(frozen=True)
class SubscriberPage:
    total: int
    """Subscribers matching the search (all of them when there is no search)."""
    shown: list[Subscriber] = field(default_factory=list)


def search_subscribers(rt: Runtime, text: str = "", limit: int = 50) -> SubscriberPage:
    """Subscribers whose name, external id or any contact address contains ``text`` (case-insensitive)."""
    text = text.strip()
    matching = select(subscribers.c.id)
    if text:
        escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        pattern = f"%{escaped}%"
        by_address = select(contact_points.c.subscriber_id).where(
            func.lower(contact_points.c.address).like(pattern, escape="\\")
        )
        matching = matching.where(
            or_(
                func.lower(subscribers.c.name).like(pattern, escape="\\"),
                func.lower(subscribers.c.external_id).like(pattern, escape="\\"),
                subscribers.c.id.in_(by_address),
            )
        )
    with rt.engine.connect() as conn:
        total = int(conn.execute(select(func.count()).select_from(matching.subquery())).scalar_one())
        ids = conn.execute(matching.order_by(subscribers.c.id).limit(limit)).scalars().all()
        shown = load(conn, ids)
    return SubscriberPage(total, shown)
