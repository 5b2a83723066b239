"""What an update owes and has delivered, per channel."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import Connection, func, select

from channels.base import ChannelKind
from dispatcher.domain.models import DeliveryState, Update
from dispatcher.engine.ledger import ChannelStatus, providers_used, update_status
from dispatcher.engine.runtime import Runtime
from dispatcher.store import queries
from dispatcher.store.schema import deliveries


@dataclass(frozen=True)
class UpdateReport:
    update: Update
    channels: list[ChannelStatus]
    providers: dict[tuple[str, str], int]
    """(channel, provider) -> rows that provider carried."""
    retrying: dict[ChannelKind, int] = field(default_factory=dict)
    """Owed rows that have been tried already and wait for another attempt, per channel."""

    @property
    def owed(self) -> int:
        return sum(c.owed for c in self.channels)


def report(rt: Runtime, update_id: int) -> UpdateReport:
    with rt.engine.connect() as conn:
        update = queries.get_update(conn, update_id)
        channels = update_status(conn, update_id)
        providers = {(c.value, p): n for (c, p), n in providers_used(conn, update_id).items()}
        retrying = _retrying(conn, update_id)
    return UpdateReport(update, channels, providers, retrying)


def _retrying(conn: Connection, update_id: int) -> dict[ChannelKind, int]:
    rows = conn.execute(
        select(deliveries.c.channel, func.count())
        .where(
            deliveries.c.update_id == update_id,
            deliveries.c.state == DeliveryState.QUEUED.value,
            deliveries.c.attempts > 0,
        )
        .group_by(deliveries.c.channel)
    )
    return {ChannelKind(channel): int(count) for channel, count in rows}
