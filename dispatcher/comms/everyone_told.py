"""Everyone told hears the end: the resolution goes to every address that got any update of the incident.

The fan-out sends an update to whoever its audience holds *now*. People told about an incident may no
longer be in it: the incident's components or severity changed, an earlier update went to a segment or
to staff only, the owner was reminded at an address of their own, a channel was chosen for one update
only. So when an update resolves an incident, every (channel, address) that received (or is still owed)
an earlier update of it gets a ledger row of its own on the resolution, in batches numbered from
``CLOSURE_BATCH`` (far above any batch a fan-out numbers from 0). The fan-out's own rows for the same
addresses are then skipped (a row is unique per update, channel and address), so nobody hears it twice.

Opt-outs are respected: an address whose contact point is opted out now gets a ``suppressed`` row.
Quiet hours are respected as by the fan-out (not for critical incidents). Channels that were turned off
since cannot carry it: they are named on the timeline (event ``closure_unreachable``), never dropped
silently.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, String, bindparam, func, select, update

from channels.base import ChannelKind
from dispatcher.domain.audiences import split_staff, staff_locale
from dispatcher.domain.models import DeliveryState, Incident, Severity, Update
from dispatcher.domain.quiet_hours import quiet_until
from dispatcher.engine.runtime import Runtime
from dispatcher.engine.task_queue import BatchRef, TaskQueue
from dispatcher.store.bulk import insert_deliveries, timestamp_value
from dispatcher.store.schema import Timestamp, contact_points, deliveries, subscribers, updates

log = logging.getLogger(__name__)

CLOSURE_BATCH = 2_000_000
"""First batch number of the rows written here (the owner's reminder row uses 1,000,000)."""
TOLD_STATES = (DeliveryState.SENT.value, DeliveryState.QUEUED.value, DeliveryState.SENDING.value)
"""Rows of earlier updates that count as "told": delivered, or still on their way."""


@dataclass(frozen=True)
class Told:
    channel: ChannelKind
    address: str
    subscriber_id: int | None
    contact_point_id: int | None
    locale: str
    opted_out: bool
    internal: bool
    quiet: tuple[str | None, str | None, str | None]


def _told(conn: Connection, incident_id: int, update_id: int) -> list[Told]:
    """One entry per (channel, address) told about the incident before ``update_id``, with its
    contact point's state now."""
    latest = (
        select(func.max(deliveries.c.id).label("id"))
        .join(updates, updates.c.id == deliveries.c.update_id)
        .where(
            updates.c.incident_id == incident_id,
            updates.c.id != update_id,
            deliveries.c.state.in_(TOLD_STATES),
        )
        .group_by(deliveries.c.channel, deliveries.c.address)
        .subquery()
    )
    rows = conn.execute(
        select(
            deliveries.c.channel,
            deliveries.c.address,
            deliveries.c.subscriber_id,
            deliveries.c.contact_point_id,
            deliveries.c.locale,
            contact_points.c.opted_out,
            subscribers.c.internal,
            subscribers.c.quiet_start,
            subscribers.c.quiet_end,
            subscribers.c.timezone,
        )
        .join(latest, latest.c.id == deliveries.c.id)
        .outerjoin(contact_points, contact_points.c.id == deliveries.c.contact_point_id)
        .outerjoin(subscribers, subscribers.c.id == deliveries.c.subscriber_id)
        .order_by(deliveries.c.channel, subscribers.c.internal.desc(), deliveries.c.id)
    ).all()
    return [
        Told(
            ChannelKind(r.channel),
            r.address,
            r.subscriber_id,
            r.contact_point_id,
            split_staff(r.locale)[0],
            bool(r.opted_out),
            bool(r.internal),
            (r.quiet_start, r.quiet_end, r.timezone),
        )
        for r in rows
    ]


def told_addresses(conn: Connection, incident_id: int, update_id: int) -> list[Told]:
    """Every (channel, address) told about the incident before ``update_id``, with its contact point's
    state now (amends and report notices go to them too)."""
    return _told(conn, incident_id, update_id)


def told_channels(conn: Connection, incident_id: int) -> set[ChannelKind]:
    """The channels any update of the incident reached (or is reaching)."""
    found = conn.execute(
        select(deliveries.c.channel)
        .join(updates, updates.c.id == deliveries.c.update_id)
        .where(updates.c.incident_id == incident_id, deliveries.c.state.in_(TOLD_STATES))
        .distinct()
    ).scalars()
    return {ChannelKind(c) for c in found}


def _row(upd: Update, told: Told, batch: int, now: Any) -> tuple[Any, ...]:
    """A delivery row in ``DELIVERY_COLUMNS`` order."""
    locale = staff_locale(told.locale) if told.internal and upd.internal_note else told.locale
    state = DeliveryState.SUPPRESSED if told.opted_out else DeliveryState.QUEUED
    return (
        upd.id,
        told.channel.value,
        told.address,
        told.subscriber_id,
        told.contact_point_id,
        locale,
        batch,
        state.value,
        0,
        "opted out" if told.opted_out else None,
        now,
        now,
    )


def write_closure_rows(
    conn: Connection, rt: Runtime, upd: Update, incident: Incident, now: datetime
) -> tuple[int, list[str]]:
    """Write the resolution's rows for everyone told, in the caller's transaction.

    Returns (rows written, channels that could not carry it because they are off now)."""
    enabled = set(rt.settings.enabled_channels())
    told = _told(conn, incident.id, upd.id)
    unreachable = sorted({t.channel.value for t in told if t.channel not in enabled})
    stamp = timestamp_value(conn, now)
    rows: list[tuple[Any, ...]] = []
    deferred: list[dict[str, Any]] = []
    batch = CLOSURE_BATCH
    quiet_applies = Severity(upd.severity or incident.severity) is not Severity.CRITICAL
    for channel in sorted({t.channel for t in told if t.channel in enabled}, key=lambda c: c.value):
        size = rt.batch_size(channel)
        mine = [t for t in told if t.channel is channel]
        for start in range(0, len(mine), size):
            for item in mine[start : start + size]:
                rows.append(_row(upd, item, batch, stamp))
                until = quiet_until(now, *item.quiet) if quiet_applies and item.quiet[0] else None
                if until is not None and not item.opted_out:
                    deferred.append({"ch": channel.value, "addr": item.address, "until": until})
            batch += 1
    insert_deliveries(conn, rows)
    if deferred:
        conn.execute(
            update(deliveries)
            .where(
                deliveries.c.update_id == upd.id,
                deliveries.c.channel == bindparam("ch", type_=String()),
                deliveries.c.address == bindparam("addr", type_=String()),
                deliveries.c.state == DeliveryState.QUEUED.value,
            )
            .values(next_attempt_at=bindparam("until", type_=Timestamp()), last_error="quiet hours"),
            deferred,
        )
    return len(rows), unreachable


def closure_batches(rt: Runtime, update_id: int) -> list[BatchRef]:
    """The batches ``write_closure_rows`` wrote for ``update_id``."""
    with rt.engine.connect() as conn:
        found = conn.execute(
            select(deliveries.c.channel, deliveries.c.batch)
            .where(deliveries.c.update_id == update_id, deliveries.c.batch >= CLOSURE_BATCH)
            .distinct()
            .order_by(deliveries.c.batch)
        ).all()
    return [BatchRef(update_id, ChannelKind(channel), batch) for channel, batch in found]


def submit_closure(rt: Runtime, queue: TaskQueue, update_ids: Iterable[int]) -> None:
    """Hand the closure batches of these updates to the queue (after their transaction committed)."""
    for update_id in update_ids:
        for ref in closure_batches(rt, update_id):
            queue.submit_batch(ref)
