"""``tocsin maintenance …`` (scheduled windows) and ``tocsin tick`` (the periodic duties, once)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer
from rich.table import Table

from dispatcher.cli.common import console, friendly_errors, runtime
from dispatcher.domain.errors import InvalidInput
from dispatcher.domain.vocabulary import Severity

if TYPE_CHECKING:
    from dispatcher.comms.tick import TickReport
    from dispatcher.engine.runtime import Runtime
    from dispatcher.engine.task_queue import TaskQueue

app = typer.Typer(help="Announce planned maintenance windows ahead of time.", no_args_is_help=True)

T = TypeVar("T")


def parse_moment(option: str, text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise InvalidInput(f"{option}: {text!r} is not a date and time (e.g. 2026-11-26T02:00Z)") from None
    if value.tzinfo is None:
        raise InvalidInput(f"{option}: give a time zone (e.g. 2026-11-26T02:00Z)")
    return value


def _run(rt: Runtime, act: Callable[[TaskQueue], T], wait: float) -> T:
    """Do ``act`` with the broker's queue, or in this process (embedded) and deliver what it owes."""
    from dispatcher.runners.factory import work_for

    work = work_for(rt)
    try:
        result = act(work.queue)
        work.finish(wait)
    finally:
        rt.close()
    return result


WaitOption = Annotated[
    float, typer.Option(help="Embedded mode: also wait this many seconds for retries due soon.")
]


@app.command("schedule")
@friendly_errors
def schedule(
    title: Annotated[str, typer.Argument(help="What the work is, in the customer's words.")],
    start: Annotated[str, typer.Option(help="When it starts, with a time zone: 2026-11-26T02:00Z.")],
    end: Annotated[str, typer.Option(help="When it ends, with a time zone: 2026-11-26T04:00Z.")],
    component: Annotated[
        list[str] | None, typer.Option("--component", help="Affected component (repeatable).")
    ] = None,
    message: Annotated[
        str | None, typer.Option(help="The announcement (the window is added). Default: a standard text.")
    ] = None,
    severity: Annotated[
        Severity, typer.Option(help="Who hears of it, by minimum severity.")
    ] = Severity.MINOR,
    wait: WaitOption = 10.0,
) -> None:
    """Schedule a maintenance window and announce it now; Tocsin reminds, starts and ends it on time."""
    from dispatcher.comms.maintenance import MaintenanceDraft, schedule_maintenance

    rt = runtime()
    draft = MaintenanceDraft(
        title=title,
        starts_at=parse_moment("--start", start),
        ends_at=parse_moment("--end", end),
        components=component or [],
        message=message,
        severity=severity,
    )
    made = _run(rt, lambda queue: schedule_maintenance(rt, queue, draft), wait)
    console.print(
        f"scheduled maintenance {made.id}: {made.title} "
        f"({_utc(made.starts_at)} to {_utc(made.ends_at)}); announced"
    )


def _utc(value: datetime | None) -> str:
    return "-" if value is None else value.strftime("%Y-%m-%d %H:%M UTC")


@app.command("list")
@friendly_errors
def list_(
    all_: Annotated[bool, typer.Option("--all", help="Also completed and cancelled windows.")] = False,
) -> None:
    """List maintenance windows, the latest start first."""
    from dispatcher.comms.maintenance import list_maintenance

    table = Table("id", "title", "stage", "starts", "ends", "components")
    for item in list_maintenance(runtime(), include_finished=all_):
        table.add_row(
            str(item.id),
            item.title,
            item.maintenance_stage or "-",
            _utc(item.starts_at),
            _utc(item.ends_at),
            ", ".join(item.components) or "-",
        )
    console.print(table)


@app.command("cancel")
@friendly_errors
def cancel(
    maintenance_id: Annotated[int, typer.Argument(metavar="ID", help="Maintenance id (see `list`).")],
    wait: WaitOption = 10.0,
) -> None:
    """Call off a maintenance that has not started; everyone it was announced to is told."""
    from dispatcher.comms.maintenance import cancel_maintenance

    rt = runtime()
    done = _run(rt, lambda queue: cancel_maintenance(rt, queue, maintenance_id), wait)
    console.print(f"cancelled maintenance {done.id}: {done.title}; announced")


@friendly_errors
def tick(wait: WaitOption = 10.0) -> None:
    """Run the periodic duties once: scheduled updates, maintenance stages, next-update reminders and
    holding messages. `tocsin worker` does this on its own; use this from cron otherwise."""
    from dispatcher.comms.tick import run_tick

    rt = runtime()
    report: TickReport = _run(rt, lambda queue: run_tick(rt, queue), wait)
    console.print(f"tick: {report.summary()}")
    for error in report.errors:
        console.print(f"  error: {error}", highlight=False)
    if report.errors:
        raise typer.Exit(1)
