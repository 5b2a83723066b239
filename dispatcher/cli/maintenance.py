"""``tocsin maintenance …`` (scheduled windows) and ``tocsin tick`` (the periodic duties, once)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer
from rich.table import Table

from dispatcher.cli.common import console, friendly_errors, runtime, work_here
from dispatcher.cli.who import AsOption, TokenOption, identify
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
    work = work_here(rt)
    try:
        result = act(work.queue)
        work.finish(wait)
    finally:
        rt.close()
    return result


WaitOption = Annotated[
    float, typer.Option(help="Embedded mode: also wait this many seconds for retries due soon.")
]
MessageOption = Annotated[
    str | None, typer.Option(help="Your own words for the notice (the window is added); guardrails apply.")
]
OverrideOption = Annotated[
    str | None, typer.Option(help="Go ahead despite guardrail errors in your text; the reason is recorded.")
]
IdArgument = Annotated[
    int, typer.Argument(metavar="ID", help="Maintenance id (see `tocsin maintenance list`).")
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
    override_reason: OverrideOption = None,
    token: TokenOption = None,
    as_: AsOption = None,
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
        override_reason=override_reason,
    )
    who = identify(rt, as_, token)
    made = _run(rt, lambda queue: schedule_maintenance(rt, queue, draft, who), wait)
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
    maintenance_id: IdArgument,
    token: TokenOption = None,
    as_: AsOption = None,
    wait: WaitOption = 10.0,
) -> None:
    """Call off a maintenance that has not started; everyone it was announced to is told."""
    from dispatcher.comms.maintenance import cancel_maintenance

    rt = runtime()
    who = identify(rt, as_, token)
    done = _run(rt, lambda queue: cancel_maintenance(rt, queue, maintenance_id, who), wait)
    console.print(f"cancelled maintenance {done.id}: {done.title}; announced")


@app.command("reschedule")
@friendly_errors
def reschedule(
    maintenance_id: IdArgument,
    start: Annotated[str, typer.Option(help="The new start, with a time zone: 2026-11-27T02:00Z.")],
    end: Annotated[str, typer.Option(help="The new end, with a time zone: 2026-11-27T04:00Z.")],
    message: MessageOption = None,
    override_reason: OverrideOption = None,
    token: TokenOption = None,
    as_: AsOption = None,
    wait: WaitOption = 10.0,
) -> None:
    """Move a window that has not started to a new one; everyone it was announced to is told."""
    from dispatcher.comms.maintenance import reschedule_maintenance

    rt = runtime()
    starts, ends = parse_moment("--start", start), parse_moment("--end", end)
    who = identify(rt, as_, token)
    moved = _run(
        rt,
        lambda queue: reschedule_maintenance(
            rt, queue, maintenance_id, starts, ends, who, message, override_reason
        ),
        wait,
    )
    console.print(
        f"rescheduled maintenance {moved.id}: {_utc(moved.starts_at)} to {_utc(moved.ends_at)}; announced"
    )


@app.command("extend")
@friendly_errors
def extend(
    maintenance_id: IdArgument,
    end: Annotated[str, typer.Option(help="The new end, with a time zone: 2026-11-26T05:00Z.")],
    message: MessageOption = None,
    override_reason: OverrideOption = None,
    token: TokenOption = None,
    as_: AsOption = None,
    wait: WaitOption = 10.0,
) -> None:
    """Make a window end later (also while it overruns, before it is called complete); its audience is
    told, and while it runs the new end is the next promise."""
    from dispatcher.comms.maintenance import extend_maintenance

    rt = runtime()
    ends = parse_moment("--end", end)
    who = identify(rt, as_, token)
    longer = _run(
        rt,
        lambda queue: extend_maintenance(rt, queue, maintenance_id, ends, who, message, override_reason),
        wait,
    )
    console.print(f"extended maintenance {longer.id}: it now ends {_utc(longer.ends_at)}; announced")


@app.command("finish")
@friendly_errors
def finish(
    maintenance_id: IdArgument,
    message: MessageOption = None,
    override_reason: OverrideOption = None,
    token: TokenOption = None,
    as_: AsOption = None,
    wait: WaitOption = 10.0,
) -> None:
    """Call a running window complete now (early, or after an overrun); its audience is told."""
    from dispatcher.comms.maintenance import finish_maintenance

    rt = runtime()
    who = identify(rt, as_, token)
    done = _run(
        rt, lambda queue: finish_maintenance(rt, queue, maintenance_id, who, message, override_reason), wait
    )
    console.print(f"finished maintenance {done.id}: {done.title}; announced")


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
