"""Updates an address did not get (superseded or held back) since the last one it did get.

The next message to that address carries them, so coalescing never loses what someone was owed.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from sqlalchemy import Connection, select

from channels.base import ChannelKind
from dispatcher.domain.models import DeliveryState
from dispatcher.engine.claims import ClaimedRow
from dispatcher.engine.task_queue import BatchRef
from dispatcher.store.schema import deliveries, updates
from dispatcher.store.sql import one_of

MAX_CARRIED = 20
"""At most this many earlier updates ride along (the newest): email, webhooks and chat carry them all."""
MAX_CARRIED_SMS = 3
"""An SMS carries fewer: each one adds segments, and long texts are cut at ``max_segments``."""
CARRIES = frozenset({ChannelKind.EMAIL, ChannelKind.SMS, ChannelKind.WEBHOOK, ChannelKind.CHAT})
"""Channels whose message can carry earlier updates (a post on X cannot; the status page shows all)."""


def missed_updates(conn: Connection, ref: BatchRef, rows: Sequence[ClaimedRow]) -> dict[int, tuple[int, ...]]:
    """Row id -> ids of earlier updates of the same incident its address never received."""
    if ref.channel not in CARRIES or not rows:
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
    most = MAX_CARRIED_SMS if ref.channel is ChannelKind.SMS else MAX_CARRIED
    for row in rows:
        carried = sorted(u for u in skipped.get(row.address, []) if u > last_received[row.address])
        if carried:
            result[row.id] = tuple(carried[-most:])
    return result
