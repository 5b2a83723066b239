"""``tocsin approve``, ``tocsin reject``, ``tocsin approvals``: the second pair of eyes.

Approving and rejecting need your personal token (``--token`` or ``$TOCSIN_TOKEN``): the approver is
who the token says, compared with the author by token, never by a typed name.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from dispatcher.cli.common import console, friendly_errors, parse_update_id, runtime
from dispatcher.cli.delivering import deliver_now
from dispatcher.cli.who import AsOption, TokenOption, identify
from dispatcher.domain.ids import incident_ref, update_ref

__all__ = ["deliver_now", "register"]


@friendly_errors
def approve_(
    update: Annotated[
        int,
        typer.Argument(
            parser=parse_update_id, metavar="UPDATE", help="Update id: upd-7 (or 7); see `tocsin approvals`."
        ),
    ],
    token: TokenOption = None,
    as_: AsOption = None,
    wait: Annotated[
        float, typer.Option(help="Embedded mode: also wait this many seconds for retries due soon.")
    ] = 10.0,
) -> None:
    """Approve an update waiting for a second person, and send it. You cannot approve your own."""
    from dispatcher.comms.approval import approve

    rt = runtime()
    who = identify(rt, as_, token, needed_for="approving")
    approved = deliver_now(rt, lambda queue: approve(rt, update, who, queue), wait)
    assert approved is not None
    console.print(f"update {update_ref(approved.id)} approved by {who.name} and published", highlight=False)


@friendly_errors
def reject_(
    update: Annotated[
        int,
        typer.Argument(
            parser=parse_update_id, metavar="UPDATE", help="Update id: upd-7 (or 7); see `tocsin approvals`."
        ),
    ],
    reason: Annotated[str, typer.Option(help="Why it must not go out (recorded).")],
    token: TokenOption = None,
    as_: AsOption = None,
) -> None:
    """Reject an update waiting for approval (or still scheduled): it is never sent."""
    from dispatcher.comms.approval import reject

    rt = runtime()
    rejected = reject(rt, update, identify(rt, as_, token), reason)
    console.print(f"update {update_ref(rejected.id)} rejected by {rejected.rejected_by}; nothing was sent")


@friendly_errors
def approvals() -> None:
    """List the updates waiting for a second person's approval."""
    from dispatcher.comms.approval import pending_approvals

    waiting = pending_approvals(runtime())
    table = Table("update", "incident", "severity", "status", "author", "written (UTC)", "message")
    for upd in waiting:
        table.add_row(
            update_ref(upd.id),
            incident_ref(upd.incident_id),
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
