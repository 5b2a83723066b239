"""Updates of one incident reach each address in order, and an old one never follows a newer one.

Checked when rows are claimed, just before sending:

* a row whose address already has a row for a NEWER update of the same incident (on this channel) is
  ``superseded``: it is never sent, since it would arrive after, or instead of, fresher news;
* a row whose address has an OLDER update still ``sending`` (under a live lease) waits a moment, so a
  slow provider call for update N cannot land after update N+1.

Retries pass through the same check, so nothing is retried after a newer update superseded it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Connection, select

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
    found = conn.execute(
        select(deliveries.c.address, deliveries.c.update_id, deliveries.c.state, deliveries.c.lease_until)
        .where(deliveries.c.channel == ref.channel.value)
        .where(one_of(conn, deliveries.c.address, {r.address for r in rows}))
        .where(deliveries.c.update_id.in_(siblings))
    )
    for address, update_id, state, lease_until in found:
        if update_id > ref.update_id:
            newer[address] = max(newer.get(address, 0), update_id)
        elif state == DeliveryState.SENDING.value and lease_until is not None and lease_until > now:
            older_in_flight[address] = update_id
    for row in rows:
        if row.address in newer:
            result.superseded.append((row, newer[row.address]))
        elif row.address in older_in_flight:
            result.wait.append((row, older_in_flight[row.address]))
        else:
            result.send.append(row)
    return result
