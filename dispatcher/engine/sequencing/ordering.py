"""Updates of one incident reach each address in order, and an old one never follows a newer one.

Checked when rows are claimed, just before sending:

* a row whose address already has a row for a NEWER update of the same incident (on this channel) is
  ``superseded``: it is never sent, since it would arrive after, or instead of, fresher news;
* a row whose address has an OLDER update still ``sending`` (under a live lease) waits a moment, so a
  slow provider call for update N cannot land after update N+1;
* a row about to be sent to an address that an OLDER update is still owed to but not on the wire
  (queued, waiting for a retry, held by the cap, or claimed by a worker that died) supersedes it then
  (``overtake``), in the same transaction, so the newer message carries the older one's content
  (``dispatcher.engine.sequencing.missed``) instead of the older row being superseded later, after the
  newer message went out without it.

Retries pass through the same check, so nothing is retried after a newer update superseded it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Connection, and_, or_, select, update

from dispatcher.domain.models import DeliveryState
from dispatcher.engine.claims import ClaimedRow
from dispatcher.engine.task_queue import BatchRef
from dispatcher.store.schema import deliveries, updates
from dispatcher.store.sql import one_of

IN_ORDER_WAIT_SECONDS = 1.0


@dataclass
class Ordering:
    send: list[ClaimedRow] = field(default_factory=list)
    superseded: list[tuple[ClaimedRow, int]] = field(default_factory=list)
    """Rows never to send, with the newer update that replaced them."""
    wait: list[tuple[ClaimedRow, int]] = field(default_factory=list)
    """Rows to send later, with the older update still in flight to that address."""
    older_owed: dict[str, list[tuple[int, int]]] = field(default_factory=dict)
    """Address -> (row id, update id) of older updates still owed to it but not on the wire: ``overtake``
    supersedes them when a row of this batch is actually sent to that address."""


def check_order(conn: Connection, ref: BatchRef, rows: Sequence[ClaimedRow], now: datetime) -> Ordering:
    result = Ordering()
    if not rows:
        return result
    incident_id = conn.execute(
        select(updates.c.incident_id).where(updates.c.id == ref.update_id)
    ).scalar_one()
    siblings = select(updates.c.id).where(updates.c.incident_id == incident_id, updates.c.id != ref.update_id)
    if conn.execute(siblings.limit(1)).first() is None:  # the incident's only update: nothing to order
        result.send = list(rows)
        return result
    newer: dict[str, int] = {}
    older_in_flight: dict[str, int] = {}
    older_owed: dict[str, list[tuple[int, int]]] = {}
    found = conn.execute(
        select(
            deliveries.c.id,
            deliveries.c.address,
            deliveries.c.update_id,
            deliveries.c.state,
            deliveries.c.lease_until,
        )
        .where(deliveries.c.channel == ref.channel.value)
        .where(one_of(conn, deliveries.c.address, {r.address for r in rows}))
        .where(deliveries.c.update_id.in_(siblings))
    )
    for row_id, address, update_id, state, lease_until in found:
        if update_id > ref.update_id:
            newer[address] = max(newer.get(address, 0), update_id)
        elif state == DeliveryState.SENDING.value and lease_until is not None and lease_until > now:
            older_in_flight[address] = update_id
        elif state in (DeliveryState.QUEUED.value, DeliveryState.SENDING.value):
            older_owed.setdefault(address, []).append((row_id, update_id))
    for row in rows:
        if row.address in newer:
            result.superseded.append((row, newer[row.address]))
        elif row.address in older_in_flight:
            result.wait.append((row, older_in_flight[row.address]))
        else:
            result.send.append(row)
    result.older_owed = older_owed
    return result


def overtake(
    conn: Connection, ref: BatchRef, order: Ordering, send: Sequence[ClaimedRow], now: datetime
) -> tuple[list[ClaimedRow], list[tuple[ClaimedRow, int]]]:
    """Supersede the older rows still owed to the addresses of ``send`` (the rows about to go out, after
    the cap held some back), so their content rides along. Returns the rows to send and those that wait:
    an older row claimed meanwhile by another worker is on the wire now."""
    targets = {
        row_id: (row.address, update_id)
        for row in send
        for row_id, update_id in order.older_owed.get(row.address, [])
    }
    if not targets:
        return list(send), []
    not_on_wire = or_(
        deliveries.c.state == DeliveryState.QUEUED.value,
        and_(deliveries.c.state == DeliveryState.SENDING.value, deliveries.c.lease_until < now),
    )
    done = set(
        conn.execute(
            update(deliveries)
            .where(one_of(conn, deliveries.c.id, list(targets)), not_on_wire)
            .values(
                state=DeliveryState.SUPERSEDED.value,
                last_error=f"superseded by update {ref.update_id}",
                lease_until=None,
                next_attempt_at=None,
                updated_at=now,
            )
            .returning(deliveries.c.id)
        ).scalars()
    )
    raced = {address: update_id for row_id, (address, update_id) in targets.items() if row_id not in done}
    waiting = [(r, raced[r.address]) for r in send if r.address in raced]
    return [r for r in send if r.address not in raced], waiting
