"""Updates an address did not get (superseded or held back) since the last one it did get.

The next message to that address carries them, so coalescing never loses what someone was owed.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from sqlalchemy import Connection, select

from dispatcher.domain.models import DeliveryState
from dispatcher.engine.claims import ClaimedRow
from dispatcher.engine.task_queue import BatchRef
from dispatcher.store.schema import deliveries, updates
from dispatcher.store.sql import one_of

MAX_CARRIED = 3
"""At most this many earlier updates ride along: the newest matter most and long messages get cut."""


def missed_updates(conn: Connection, ref: BatchRef, rows: Sequence[ClaimedRow]) -> dict[int, tuple[int, ...]]:
    """Row id -> ids of earlier updates of the same incident its address never received."""
    if ref.channel.is_broadcast or not rows:
        return {}
    incident_id = conn.execute(
        select(updates.c.incident_id).where(updates.c.id == ref.update_id)
    ).scalar_one()
    earlier = select(updates.c.id).where(updates.c.incident_id == incident_id, updates.c.id < ref.update_id)
    if conn.execute(earlier.limit(1)).first() is None:
        return {}
    last_received: dict[str, int] = defaultdict(int)
    skipped: dict[str, list[int]] = defaultdict(list)
    found = conn.execute(
        select(deliveries.c.address, deliveries.c.update_id, deliveries.c.state)
        .where(deliveries.c.channel == ref.channel.value)
        .where(one_of(conn, deliveries.c.address, {r.address for r in rows}))
        .where(deliveries.c.update_id.in_(earlier))
        .where(deliveries.c.state.in_([DeliveryState.SENT.value, DeliveryState.SUPERSEDED.value]))
    )
    for address, update_id, state in found:
        if state == DeliveryState.SENT.value:
            last_received[address] = max(last_received[address], update_id)
        else:
            skipped[address].append(update_id)
    result: dict[int, tuple[int, ...]] = {}
    for row in rows:
        carried = sorted(u for u in skipped.get(row.address, []) if u > last_received[row.address])
        if carried:
            result[row.id] = tuple(carried[-MAX_CARRIED:])
    return result
