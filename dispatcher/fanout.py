"""Fan-out: turn one update into delivery rows, one task per batch.

The audience is streamed in pages (keyset pagination on contact points), rows are bulk-inserted a
batch at a time and each batch is handed to the queue as soon as it is committed, so memory stays flat
whatever the audience size and the first deliveries start while later pages are still being read.
Re-running a fan-out is safe: rows are unique per (update, channel, address) and inserts skip
existing ones; a batch with nothing left to claim is a no-op for the deliverer.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Text, cast, select, update

from channels.base import ChannelKind
from dispatcher.models import Audience, DeliveryState, Incident, Severity, Update, UpdateState
from dispatcher.publish import get_update
from dispatcher.runtime import Runtime
from dispatcher.store.bulk import insert_deliveries, timestamp_value
from dispatcher.store.schema import contact_points, incidents, subscribers, updates
from dispatcher.task_queue import BatchRef, TaskQueue


@dataclass
class FanoutSummary:
    update_id: int
    rows: dict[ChannelKind, int] = field(default_factory=dict)
    batches: dict[ChannelKind, int] = field(default_factory=dict)


def _audience_page(
    conn: Connection, channel: ChannelKind, update: Update, incident: Incident, after: int, size: int
) -> list[Any]:
    query = (
        select(
            contact_points.c.id,
            contact_points.c.address,
            contact_points.c.opted_out,
            contact_points.c.subscriber_id,
            subscribers.c.locale,
            # As text: most subscribers follow everything ("[]"), and then nothing needs decoding.
            cast(subscribers.c.components, Text).label("components"),
        )
        .join(subscribers, subscribers.c.id == contact_points.c.subscriber_id)
        .where(contact_points.c.channel == channel.value, contact_points.c.id > after)
        .where(subscribers.c.min_severity_rank <= Severity(incident.severity).rank)
        .order_by(contact_points.c.id)
        .limit(size)
    )
    if update.audience is Audience.INTERNAL:
        query = query.where(subscribers.c.internal.is_(True))
    return list(conn.execute(query))


def _audience(rt: Runtime, channel: ChannelKind, update: Update, incident: Incident) -> Iterator[Any]:
    """Contact points owed this update on ``channel``, filtered by the subscribers' preferences."""
    affected = set(incident.components)
    after = 0
    while True:
        with rt.engine.connect() as conn:
            page = _audience_page(conn, channel, update, incident, after, rt.settings.fanout_page_size)
        if not page:
            return
        for row in page:
            components = row[5]
            if affected and components not in (None, "[]", "null") and not affected.intersection(
                json.loads(components)
            ):
                continue
            yield row
        after = page[-1][0]


def _row(
    update_id: int,
    channel: ChannelKind,
    batch: int,
    now: Any,
    address: str,
    subscriber_id: int | None,
    contact_point_id: int | None,
    locale: str,
    opted_out: bool,
) -> tuple[Any, ...]:
    """One delivery row, in ``DELIVERY_COLUMNS`` order."""
    state = (DeliveryState.SUPPRESSED if opted_out else DeliveryState.QUEUED).value
    return (
        update_id,
        channel.value,
        address,
        subscriber_id,
        contact_point_id,
        locale,
        batch,
        state,
        0,
        "opted out" if opted_out else None,
        now,
        now,
    )


def _flush(rt: Runtime, queue: TaskQueue, ref: BatchRef, rows: list[tuple[Any, ...]]) -> None:
    with rt.engine.begin() as conn:
        insert_deliveries(conn, rows)
    queue.submit_batch(ref)


def _fan_out_channel(
    rt: Runtime,
    queue: TaskQueue,
    update: Update,
    incident: Incident,
    channel: ChannelKind,
    summary: FanoutSummary,
) -> None:
    with rt.engine.connect() as conn:
        now = timestamp_value(conn, rt.clock.now())
    if channel.is_broadcast:
        rows = [
            _row(update.id, channel, 0, now, target, None, None, "en", False)
            for target in rt.broadcast_targets(channel)
        ]
        if rows:
            _flush(rt, queue, BatchRef(update.id, channel, 0), rows)
        summary.rows[channel], summary.batches[channel] = len(rows), 1 if rows else 0
        return
    size = rt.batch_size(channel)
    batch, count, pending = 0, 0, []
    for point_id, address, opted_out, subscriber_id, locale, _ in _audience(rt, channel, update, incident):
        pending.append(
            _row(update.id, channel, batch, now, address, subscriber_id, point_id, locale, opted_out)
        )
        if len(pending) == size:
            _flush(rt, queue, BatchRef(update.id, channel, batch), pending)
            count += len(pending)
            batch, pending = batch + 1, []
    if pending:
        _flush(rt, queue, BatchRef(update.id, channel, batch), pending)
        count += len(pending)
        batch += 1
    summary.rows[channel], summary.batches[channel] = count, batch


def fan_out(rt: Runtime, update_id: int, queue: TaskQueue) -> FanoutSummary:
    """Write the delivery rows of ``update_id`` and submit one deliver task per batch."""
    upd = get_update(rt, update_id)
    summary = FanoutSummary(update_id)
    if upd.state is UpdateState.FANNED_OUT:
        return summary
    with rt.engine.connect() as conn:
        inc_row = conn.execute(select(incidents).where(incidents.c.id == upd.incident_id)).mappings().one()
    incident = Incident.model_validate(dict(inc_row))
    for channel in upd.channels:
        _fan_out_channel(rt, queue, upd, incident, channel, summary)
    with rt.engine.begin() as conn:
        conn.execute(
            update(updates)
            .where(updates.c.id == update_id)
            .values(state=UpdateState.FANNED_OUT.value, fanned_out_at=rt.clock.now())
        )
    return summary
