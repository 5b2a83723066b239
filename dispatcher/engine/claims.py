"""Claiming rows of a batch atomically, so two workers never send the same row at the same time.

PostgreSQL: ``FOR UPDATE SKIP LOCKED`` in the sub-select. SQLite: the whole UPDATE runs under the
database write lock (``BEGIN IMMEDIATE``), which serialises claims. A claim is a lease: rows still
``sending`` after ``lease_until`` belong to a worker presumed dead and can be claimed again.

Claiming counts no attempt: a row is charged one only when a request for it reaches a provider
(``dispatcher.engine.ledger``). ``ClaimedRow.attempts`` is how many it made before this claim.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from operator import itemgetter

from sqlalchemy import ColumnElement, and_, or_, select, update

from dispatcher.domain.models import DeliveryState
from dispatcher.engine.runtime import Runtime
from dispatcher.engine.task_queue import BatchRef
from dispatcher.store.schema import contact_points, deliveries
from dispatcher.store.sql import one_of


@dataclass(slots=True)
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
        point_ids = [row[3] for row in rows if row[3] is not None]
        points: dict[int, tuple[str | None, bool]] = {}
        if point_ids:
            found = conn.execute(
                select(contact_points.c.id, contact_points.c.secret, contact_points.c.opted_out).where(
                    one_of(conn, contact_points.c.id, point_ids)
                )
            )
            points = {point_id: (secret, bool(opted_out)) for point_id, secret, opted_out in found}
    claimed = []
    for row_id, address, locale, point_id, attempts in sorted(rows, key=itemgetter(0)):
        secret, opted_out = points.get(point_id, (None, False)) if point_id is not None else (None, False)
        claimed.append(ClaimedRow(row_id, address, locale, point_id, attempts, secret, opted_out))
    return claimed
