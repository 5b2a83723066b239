"""Claiming rows of a batch atomically, so two workers never send the same row at the same time.

PostgreSQL: ``FOR UPDATE SKIP LOCKED`` in the sub-select. SQLite: the whole UPDATE runs under the
database write lock (``BEGIN IMMEDIATE``), which serialises claims. A claim is a lease: rows still
``sending`` after ``lease_until`` belong to a worker presumed dead and can be claimed again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, or_, select, update

from dispatcher.models import DeliveryState
from dispatcher.runtime import Runtime
from dispatcher.store.schema import contact_points, deliveries
from dispatcher.task_queue import BatchRef


@dataclass(frozen=True)
class ClaimedRow:
    id: int
    address: str
    locale: str
    contact_point_id: int | None
    attempts: int
    secret: str | None = None
    opted_out: bool = False


def _claimable(now: datetime) -> ColumnElement[bool]:
    return or_(
        and_(
            deliveries.c.state == DeliveryState.QUEUED.value,
            or_(deliveries.c.next_attempt_at.is_(None), deliveries.c.next_attempt_at <= now),
        ),
        and_(deliveries.c.state == DeliveryState.SENDING.value, deliveries.c.lease_until < now),
    )


def claim_batch(rt: Runtime, ref: BatchRef) -> list[ClaimedRow]:
    now = rt.clock.now()
    lease = now + timedelta(seconds=rt.settings.retry.lease_seconds)
    owed = (
        select(deliveries.c.id)
        .where(
            deliveries.c.update_id == ref.update_id,
            deliveries.c.channel == ref.channel.value,
            deliveries.c.batch == ref.batch,
            _claimable(now),
        )
        .with_for_update(skip_locked=True)
    )
    with rt.engine.begin() as conn:
        rows = conn.execute(
            update(deliveries)
            .where(deliveries.c.id.in_(owed.scalar_subquery()))
            .values(
                state=DeliveryState.SENDING.value,
                lease_until=lease,
                attempts=deliveries.c.attempts + 1,
                updated_at=now,
            )
            .returning(
                deliveries.c.id,
                deliveries.c.address,
                deliveries.c.locale,
                deliveries.c.contact_point_id,
                deliveries.c.attempts,
            )
        ).all()
        point_ids = [r.contact_point_id for r in rows if r.contact_point_id is not None]
        points = (
            {
                p.id: p
                for p in conn.execute(
                    select(contact_points.c.id, contact_points.c.secret, contact_points.c.opted_out).where(
                        contact_points.c.id.in_(point_ids)
                    )
                )
            }
            if point_ids
            else {}
        )
    claimed = []
    for r in sorted(rows, key=lambda r: r.id):
        point = points.get(r.contact_point_id) if r.contact_point_id is not None else None
        claimed.append(
            ClaimedRow(
                id=r.id,
                address=r.address,
                locale=r.locale,
                contact_point_id=r.contact_point_id,
                attempts=r.attempts,
                secret=point.secret if point else None,
                opted_out=bool(point.opted_out) if point else False,
            )
        )
    return claimed
