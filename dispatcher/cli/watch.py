"""``tocsin status UPDATE --watch`` and ``tocsin publish --watch``: live progress per channel in the
terminal (owed, sent, failed, retrying, and an estimate of when the rest is done), redrawn every
second from the ledger, ending when nothing is owed."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from rich.console import Console
from rich.live import Live
from rich.table import Table

from channels.base import ChannelKind
from dispatcher.domain.ids import incident_ref, update_ref
from dispatcher.domain.vocabulary import DeliveryState, UpdateState

if TYPE_CHECKING:
    from dispatcher.engine.runtime import Runtime
    from dispatcher.reporting.status import UpdateReport

NOT_GOING_OUT = {
    UpdateState.SCHEDULED: "is scheduled: nothing goes out before its time",
    UpdateState.PENDING_APPROVAL: "is waiting for approval (tocsin approve): nothing goes out before",
    UpdateState.REJECTED: "was rejected: nothing goes out",
}


@dataclass
class _Pace:
    """Sent rows per channel when watching began, to estimate how long the rest takes."""

    started: float
    sent_at_start: dict[ChannelKind, int] = field(default_factory=dict)

    def eta(self, channel: ChannelKind, sent: int, owed: int, now: float) -> str:
        if owed == 0:
            return "done"
        rate = (sent - self.sent_at_start.get(channel, sent)) / max(now - self.started, 1e-9)
        if rate <= 0:
            return "-"
        seconds = owed / rate
        return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"


def progress_table(result: UpdateReport, pace: _Pace, now: float) -> Table:
    upd = result.update
    table = Table(
        title=f"Update {update_ref(upd.id)} "
        f"(incident {incident_ref(upd.incident_id)}, {upd.status.value}): live"
    )
    for column in ("channel", "owed", "sent", "failed", "retrying", "done in"):
        table.add_column(column, justify="left" if column == "channel" else "right")
    for st in result.channels:
        sent = st.count(DeliveryState.SENT)
        table.add_row(
            st.channel.value,
            str(st.owed),
            str(sent),
            str(st.count(DeliveryState.FAILED)),
            str(result.retrying.get(st.channel, 0)),
            pace.eta(st.channel, sent, st.owed, now),
        )
    owed = result.owed
    if not result.channels:
        table.caption = "no delivery rows yet (fan-out pending)"
    elif owed:
        table.caption = f"{owed} still owed"
    else:
        table.caption = "nothing owed: every delivery is settled"
    return table


def finished(result: UpdateReport) -> bool:
    return result.update.state is UpdateState.FANNED_OUT and result.owed == 0


def watch(
    rt: Runtime,
    update_id: int,
    console: Console,
    *,
    every: float = 1.0,
    stop: Callable[[], bool] = lambda: False,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> UpdateReport:
    """Redraw ``update_id``'s progress every ``every`` seconds until nothing is owed, or ``stop()``."""
    from dispatcher.reporting.status import report

    result = report(rt, update_id)
    if result.update.state in NOT_GOING_OUT:
        console.print(f"update {update_ref(update_id)} {NOT_GOING_OUT[result.update.state]}", highlight=False)
        return result
    pace = _Pace(clock(), {st.channel: st.count(DeliveryState.SENT) for st in result.channels})
    with Live(progress_table(result, pace, clock()), console=console, auto_refresh=False) as live:
        while not finished(result) and not stop():
            sleep(every)
            result = report(rt, update_id)
            live.update(progress_table(result, pace, clock()), refresh=True)
    return result
