"""``tocsin incident amends``: an offer to the customers a resolved incident affected, with their codes."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from dispatcher.cli.common import IncidentArg, console, runtime
from dispatcher.cli.delivering import deliver_now
from dispatcher.cli.who import AsOption, TokenOption, identify
from dispatcher.domain.errors import InvalidInput
from dispatcher.domain.ids import update_ref

if TYPE_CHECKING:
    from dispatcher.comms.amends import AmendsSent
    from dispatcher.domain.models import Update
    from dispatcher.engine.task_queue import TaskQueue


def amends(
    incident: IncidentArg,
    offer: Annotated[
        str,
        typer.Option(help="The offer, e.g. 'As an apology, your next month is free: code {code}'."),
    ],
    codes: Annotated[
        Path | None,
        typer.Option(
            help="CSV of per-recipient codes: a code column and one of subscriber (external id), email, "
            "phone. The offer's {code} becomes each reader's own."
        ),
    ] = None,
    segment: Annotated[
        str | None, typer.Option(help="Only those told who are in this policy segment (e.g. a plan).")
    ] = None,
    on_status_page: Annotated[
        bool, typer.Option(help="Also show it on the public status page (not shown by default).")
    ] = False,
    override_reason: Annotated[
        str | None, typer.Option(help="Send despite guardrail errors in the offer; recorded.")
    ] = None,
    token: TokenOption = None,
    as_: AsOption = None,
    wait: Annotated[
        float, typer.Option(help="Embedded mode: also wait this long for retries due soon.")
    ] = 10.0,
) -> None:
    """Make amends after a resolved incident: the offer goes to the customers who were told about it
    (staff left out), on the channels they were told on, each with their own code when --codes is
    given. Recorded in the ledger like any update; never on the status page unless asked."""
    from dispatcher.comms.amends import read_codes, send_amends

    rt = runtime()
    by_subscriber = None
    if codes is not None:
        try:
            text = codes.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise InvalidInput(f"--codes: cannot read {codes}: {exc}") from None
        by_subscriber = read_codes(rt, text)
    who = identify(rt, as_, token)
    said: list[AmendsSent] = []

    def act(queue: TaskQueue) -> Update | None:
        done = send_amends(
            rt,
            incident,
            offer,
            who,
            queue,
            codes=by_subscriber,
            segment=segment,
            on_status_page=on_status_page,
            override_reason=override_reason,
        )
        said.append(done)
        return done.update

    deliver_now(rt, act, wait)
    done = said[0]
    sent_as = update_ref(done.update.id)
    console.print(f"amends (update {sent_as}) to {done.rows} address(es) told", highlight=False)
    if done.without_code:
        console.print(
            f"warning: {done.without_code} subscriber(s) told about the incident have no code: not sent "
            f"(`tocsin deliveries missing {done.update.id}`)",
            style="bold yellow",
            highlight=False,
        )
