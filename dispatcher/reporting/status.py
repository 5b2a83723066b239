"""What an update owes and has delivered, per channel."""

from __future__ import annotations

from dataclasses import dataclass

from dispatcher.domain.models import Update
from dispatcher.engine.ledger import ChannelStatus, providers_used, update_status
from dispatcher.engine.runtime import Runtime
from dispatcher.store import queries


@dataclass(frozen=True)
class UpdateReport:
    update: Update
    channels: list[ChannelStatus]
    providers: dict[tuple[str, str], int]
    """(channel, provider) -> rows that provider carried."""

    @property
    def owed(self) -> int:
        return sum(c.owed for c in self.channels)


def report(rt: Runtime, update_id: int) -> UpdateReport:
    with rt.engine.connect() as conn:
        update = queries.get_update(conn, update_id)
    with rt.engine.connect() as conn:
        channels = update_status(conn, update_id)
        providers = {(c.value, p): n for (c, p), n in providers_used(conn, update_id).items()}
    return UpdateReport(update, channels, providers)
