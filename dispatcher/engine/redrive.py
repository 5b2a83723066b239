"""Find work the database says is owed and hand it to the queue again.

Run by a periodic tick (Celery beat in production, a timer in the embedded runner): updates never fanned
out, batches whose retry time has come, batches whose task was lost, and rows claimed by a worker whose
lease ran out. Re-driven rows get a fresh ``updated_at``, so a batch still waiting behind a long queue
is not submitted again on every tick. Submitting a batch twice is harmless anyway: rows are claimed
atomically, so the second task finds nothing to do.

A row waiting for a time (a retry, quiet hours, the cap) is re-driven once that time is
``RETRY_GRACE`` seconds past, whenever it was last touched: a queue keeps short waits itself (a Celery
countdown of up to a minute), but a two-minute retry is the database's to fire, on time, not a lease
after the failure.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import and_, or_, select, update

from channels.base import ChannelKind
from dispatcher.domain.models import DeliveryState, UpdateState
from dispatcher.engine.runtime import Runtime
from dispatcher.engine.task_queue import BatchRef, TaskQueue
from dispatcher.store.schema import deliveries, updates

RETRY_GRACE = 10.0
"""Seconds a due wait is left to the queue's own countdown before the re-drive fires it."""


@dataclass(frozen=True)
class Redriven:
    updates: int
    batches: int


def redrive(rt: Runtime, queue: TaskQueue, stale_after: float = 60.0) -> Redriven:
    """Submit what is owed now and has been left alone for ``stale_after`` seconds.

    Only updates of the last ``retry.horizon_hours`` are looked at: older news is not worth sending,
    and the look-up stays an index range on recent updates instead of a scan of the whole ledger."""
    now = rt.clock.now()
    stale = now - timedelta(seconds=stale_after)
    overdue = now - timedelta(seconds=min(stale_after, RETRY_GRACE))
    owed = or_(
        and_(
            deliveries.c.state == DeliveryState.QUEUED.value,
            or_(
                and_(deliveries.c.next_attempt_at.is_(None), deliveries.c.updated_at <= stale),
                and_(deliveries.c.next_attempt_at <= now, deliveries.c.updated_at <= stale),
                deliveries.c.next_attempt_at <= overdue,
            ),
        ),
        # Claimed by a worker presumed dead: owed again.
        and_(deliveries.c.state == DeliveryState.SENDING.value, deliveries.c.lease_until < now),
    )
    recent = select(updates.c.id).where(
        updates.c.published_at > now - timedelta(hours=rt.settings.retry.horizon_hours)
    )
    with rt.engine.begin() as conn:
        pending = (
            conn.execute(
                select(updates.c.id)
                .where(updates.c.state == UpdateState.PENDING.value, updates.c.published_at <= stale)
                .order_by(updates.c.id)
            )
            .scalars()
            .all()
        )
        touched = conn.execute(
            update(deliveries)
            .where(deliveries.c.update_id.in_(recent), owed)
            # Owed now: the wait is over, and the next look re-drives it again only once it is stale.
            .values(state=DeliveryState.QUEUED.value, lease_until=None, next_attempt_at=None, updated_at=now)
            .returning(deliveries.c.update_id, deliveries.c.channel, deliveries.c.batch)
        ).all()
    due = sorted({(u, c, b) for u, c, b in touched})
    for update_id in pending:
        queue.submit_fanout(update_id)
    for update_id, channel, batch in due:
        queue.submit_batch(BatchRef(update_id, ChannelKind(channel), batch))
    return Redriven(len(pending), len(due))
