"""A per-recipient cap: at most K messages per channel per window for one address.

A row over the cap is held (back in the queue until the window frees a slot), not dropped. If a newer
update arrives meanwhile, the held one is superseded and its text travels with the newer message (see
``dispatcher.engine.sequencing.missed``), so the recipient still learns everything, in fewer messages.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import Connection, select

from dispatcher.config.settings import ChannelSettings
from dispatcher.domain.models import DeliveryState
from dispatcher.engine.claims import ClaimedRow
from dispatcher.engine.task_queue import BatchRef
from dispatcher.store.schema import deliveries, updates
from dispatcher.store.sql import one_of


def over_cap(
    conn: Connection, ref: BatchRef, rows: Sequence[ClaimedRow], cap: ChannelSettings, now: datetime
) -> dict[int, datetime]:
    """Row id -> when a slot frees up, for rows whose address already had ``cap_messages`` messages."""
    if not cap.cap_messages or ref.channel.is_broadcast or not rows:
        return {}
    window = timedelta(seconds=cap.cap_window)
    sent: dict[str, list[datetime]] = defaultdict(list)
    found = conn.execute(
        select(deliveries.c.address, deliveries.c.sent_at)
        .where(deliveries.c.update_id.in_(select(updates.c.id).where(updates.c.published_at > now - window)))
        .where(deliveries.c.channel == ref.channel.value)
        .where(one_of(conn, deliveries.c.address, {r.address for r in rows}))
        .where(deliveries.c.state == DeliveryState.SENT.value, deliveries.c.sent_at > now - window)
    )
    for address, sent_at in found:
        sent[address].append(sent_at)
    held: dict[int, datetime] = {}
    for row in rows:
        recent = sorted(sent.get(row.address, []), reverse=True)
        if len(recent) >= cap.cap_messages:
            held[row.id] = recent[cap.cap_messages - 1] + window
    return held
