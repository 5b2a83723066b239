"""Rich tables shown by several commands."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.table import Table

from dispatcher.domain.ids import incident_ref, update_ref
from dispatcher.domain.vocabulary import DeliveryState

if TYPE_CHECKING:
    from dispatcher.domain.models import Update
    from dispatcher.engine.ledger import ChannelStatus


def status_table(
    update: Update, statuses: list[ChannelStatus], providers: dict[tuple[str, str], int] | None = None
) -> Table:
    table = Table(
        title=f"Update {update_ref(update.id)} "
        f"(incident {incident_ref(update.incident_id)}, {update.status.value})"
    )
    table.add_column("channel")
    table.add_column("owed", justify="right")
    table.add_column("sent", justify="right", style="green")
    table.add_column("failed", justify="right", style="red")
    table.add_column("suppressed", justify="right")
    table.add_column("superseded", justify="right")
    table.add_column("providers")
    for st in statuses:
        carried = ", ".join(
            f"{p} {n}" for (c, p), n in sorted((providers or {}).items()) if c == st.channel.value
        )
        table.add_row(
            st.channel.value,
            str(st.owed),
            str(st.count(DeliveryState.SENT)),
            str(st.count(DeliveryState.FAILED)),
            str(st.count(DeliveryState.SUPPRESSED)),
            str(st.count(DeliveryState.SUPERSEDED)),
            carried or "-",
        )
    if not statuses:
        table.caption = "no delivery rows yet (fan-out pending)"
    return table
