"""``tocsin approve``, ``tocsin reject``, ``tocsin approvals``: the second pair of eyes."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from dispatcher.cli.common import console, friendly_errors, runtime
from dispatcher.cli.incidents import AsOption, default_actor
from dispatcher.cli.views import status_table
from dispatcher.cli.watch import watch

if TYPE_CHECKING:
    from dispatcher.domain.models import Update
    from dispatcher.engine.runtime import Runtime
    from dispatcher.engine.task_queue import TaskQueue
    from dispatcher.runners.factory import Work


def deliver_now(
    rt: Runtime, act: Callable[[TaskQueue], Update | None], wait: float, live: bool = False
) -> Update | None:
    """Run ``act`` with the right queue. On Redis the workers deliver (and this says so); embedded,
    deliver here and now (waiting up to ``wait`` seconds for retries due soon) and print what went
    out per channel. ``live``: show the progress per channel as it happens (``--watch``)."""
    from dispatcher.reporting.status import report
    from dispatcher.runners.factory import work_for

    work = work_for(rt)
    try:
        upd = act(work.queue)
        if live and upd is not None:
            _deliver_watching(rt, work, upd.id, wait)
        else:
            work.finish(wait)
    finally:
        rt.close()  # providers' pooled connections
    if live and upd is not None:
        if not work.by_workers and report(rt, upd.id).owed:
            console.print("deliveries still owed: `tocsin worker` retries them when due")
        return upd
    if work.by_workers:
        if upd is not None:
            console.print(f"workers are delivering update {upd.id} (follow with `tocsin status {upd.id}`)")
        return upd
    if upd is not None:
        result = report(rt, upd.id)
        console.print(status_table(result.update, result.channels, result.providers))
        if result.owed:
            console.print(f"{result.owed} deliveries still owed: `tocsin worker` retries them when due")
    return upd


def _deliver_watching(rt: Runtime, work: Work, update_id: int, wait: float) -> None:
    """Embedded: deliver in a thread of this process while the ledger is shown live; with workers,
    watch until they have delivered everything."""
    if work.by_workers:
        watch(rt, update_id, console)
        return
    delivering = threading.Thread(target=work.finish, args=(wait,), name="tocsin-deliver", daemon=True)
    delivering.start()
    watch(rt, update_id, console, every=0.5, stop=lambda: not delivering.is_alive())
    delivering.join()


@friendly_errors
def approve_(
    update: Annotated[int, typer.Argument(help="Update id (see `tocsin approvals`).")],
    as_: AsOption = None,
    wait: Annotated[
        float, typer.Option(help="Embedded mode: also wait this many seconds for retries due soon.")
    ] = 10.0,
) -> None:
    """Approve an update waiting for a second person, and send it. You cannot approve your own."""
    from dispatcher.comms.approval import approve

    rt = runtime()
    who = as_ or default_actor()
    approved = deliver_now(rt, lambda queue: approve(rt, update, who, queue), wait)
    assert approved is not None
    console.print(f"update {approved.id} approved by {who} and published")


@friendly_errors
def reject_(
    update: Annotated[int, typer.Argument(help="Update id (see `tocsin approvals`).")],
    reason: Annotated[str, typer.Option(help="Why it must not go out (recorded).")],
    as_: AsOption = None,
) -> None:
    """Reject an update waiting for approval (or still scheduled): it is never sent."""
    from dispatcher.comms.approval import reject

    rejected = reject(runtime(), update, as_ or default_actor(), reason)
    console.print(f"update {rejected.id} rejected by {rejected.rejected_by}; nothing was sent")


@friendly_errors
def approvals() -> None:
    """List the updates waiting for a second person's approval."""
    from dispatcher.comms.approval import pending_approvals

    waiting = pending_approvals(runtime())
    table = Table("update", "incident", "severity", "status", "author", "written (UTC)", "message")
    for upd in waiting:
        table.add_row(
            str(upd.id),
            str(upd.incident_id),
            upd.severity or "-",
            upd.status.value,
            upd.author or "-",
            upd.published_at.strftime("%Y-%m-%d %H:%M"),
            upd.message,
        )
    console.print(table)
    console.print(f"{len(waiting)} update(s) waiting for approval")


def register(app: typer.Typer) -> None:
    """Add ``approve``, ``reject`` and ``approvals`` to the top-level command."""
    app.command("approve")(approve_)
    app.command("reject")(reject_)
    app.command("approvals")(approvals)
