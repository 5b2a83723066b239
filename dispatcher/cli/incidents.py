"""``tocsin incident …``"""

from __future__ import annotations

import getpass
import os
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from dispatcher.cli.common import console, friendly_errors, runtime
from dispatcher.domain.vocabulary import IncidentStatus, Severity

if TYPE_CHECKING:
    from dispatcher.comms.lifecycle import TimelineEntry

app = typer.Typer(help="Open, move, resolve, reopen and inspect incidents.", no_args_is_help=True)


def default_actor() -> str:
    """Who is acting: ``$TOCSIN_USER``, else the operating-system user."""
    given = os.environ.get("TOCSIN_USER", "").strip()
    if given:
        return given
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return "unknown"


AsOption = Annotated[
    str | None, typer.Option("--as", help="Who you are (default: $TOCSIN_USER or your OS user).")
]


@app.command("open")
@friendly_errors
def open_(
    title: Annotated[str, typer.Argument(help="What is broken, in the customer's words.")],
    severity: Annotated[Severity, typer.Option(help="minor, major or critical.")] = Severity.MAJOR,
    component: Annotated[
        list[str] | None, typer.Option("--component", help="Affected component (repeatable).")
    ] = None,
    owner: Annotated[str | None, typer.Option(help="Who answers for this incident.")] = None,
    as_: AsOption = None,
) -> None:
    """Open an incident (status: investigating). Then `tocsin publish` tells people about it.

    The same title resolved within the policy's flap window is reopened instead."""
    from dispatcher.comms.lifecycle import open_or_reopen
    from dispatcher.domain.models import IncidentDraft

    draft = IncidentDraft(title=title, severity=severity, components=component or [], owner=owner)
    opened = open_or_reopen(runtime(), draft, actor=as_ or default_actor())
    incident = opened.incident
    if opened.action == "reopened":
        console.print(
            f"reopened incident {incident.id}: {incident.title} [{incident.severity.value}] "
            f"(resolved recently; reopened {incident.reopened_count} time(s))",
            markup=False,
        )
        return
    console.print(
        f"opened incident {incident.id}: {incident.title} [{incident.severity.value}]", markup=False
    )


@app.command("list")
@friendly_errors
def list_(limit: Annotated[int, typer.Option(help="How many, newest first.")] = 20) -> None:
    """List incidents, newest first."""
    from dispatcher.comms.incidents import list_incidents

    table = Table("id", "title", "status", "severity", "components", "owner", "opened")
    for inc in list_incidents(runtime(), limit):
        table.add_row(
            str(inc.id),
            inc.title,
            inc.status.value,
            inc.severity.value,
            ", ".join(inc.components) or "-",
            inc.owner or "-",
            inc.opened_at.strftime("%Y-%m-%d %H:%M UTC"),
        )
    console.print(table)


@app.command("status")
@friendly_errors
def status(
    incident: Annotated[int, typer.Argument(help="Incident id.")],
    to: Annotated[IncidentStatus, typer.Option(help="The new status.")],
    reason: Annotated[str | None, typer.Option(help="Why (recorded in the timeline).")] = None,
    force: Annotated[
        bool, typer.Option(help="Resolve before the monitoring hold has passed (needs --reason).")
    ] = False,
    as_: AsOption = None,
) -> None:
    """Move an incident to another status without publishing an update."""
    from dispatcher.comms.lifecycle import change_status

    moved = change_status(runtime(), incident, to, as_ or default_actor(), reason=reason, force=force)
    console.print(f"incident {moved.id} is now {moved.status.value}")


@app.command("resolve")
@friendly_errors
def resolve(
    incident: Annotated[int, typer.Argument(help="Incident id.")],
    force: Annotated[
        bool, typer.Option(help="Resolve before the monitoring hold has passed (needs --reason).")
    ] = False,
    reason: Annotated[str | None, typer.Option(help="Why (required with --force).")] = None,
    as_: AsOption = None,
) -> None:
    """Resolve an incident: it must have been monitored for the policy's hold, or be forced with a reason."""
    from dispatcher.comms.lifecycle import change_status

    moved = change_status(
        runtime(), incident, IncidentStatus.RESOLVED, as_ or default_actor(), reason=reason, force=force
    )
    console.print(f"incident {moved.id} is resolved")


@app.command("reopen")
@friendly_errors
def reopen_(
    incident: Annotated[int, typer.Argument(help="Incident id.")],
    reason: Annotated[str, typer.Option(help="Why it is reopened (recorded).")],
    as_: AsOption = None,
) -> None:
    """Reopen a resolved incident (back to investigating)."""
    from dispatcher.comms.lifecycle import reopen

    moved = reopen(runtime(), incident, as_ or default_actor(), reason)
    console.print(f"incident {moved.id} reopened: {moved.status.value}")


@app.command("owner")
@friendly_errors
def owner(
    incident: Annotated[int, typer.Argument(help="Incident id.")],
    name: Annotated[str, typer.Argument(help="The new owner ('' for nobody).")],
    as_: AsOption = None,
) -> None:
    """Set who answers for an incident."""
    from dispatcher.comms.lifecycle import set_owner

    moved = set_owner(runtime(), incident, name, as_ or default_actor())
    console.print(f"incident {moved.id} owner: {moved.owner or 'nobody'}")


def _what(entry: TimelineEntry) -> tuple[str, str]:
    """(what happened, detail) for one timeline line."""
    if entry.update is not None:
        upd = entry.update
        label = f"update {upd.id} · {upd.kind} · {upd.audience} · {upd.state.value}"
        detail = f"[{upd.status.value}] {upd.message}"
        if upd.next_update_at is not None:
            detail += f"\nnext update by {upd.next_update_at:%Y-%m-%d %H:%M} UTC ({upd.promise_state or '-'})"
        if upd.rejected_reason:
            detail += f"\nrejected by {upd.rejected_by}: {upd.rejected_reason}"
        if upd.approved_by:
            detail += f"\napproved by {upd.approved_by}"
        if upd.override_reason:
            detail += f"\nguardrails overridden: {upd.override_reason}"
        return label, detail
    moved = ""
    if entry.to_status is not None:
        moved = f"{entry.from_status.value} → " if entry.from_status is not None else ""
        moved += entry.to_status.value
    detail = " · ".join(part for part in (moved, entry.reason or "") if part)
    if entry.update_id is not None:
        detail += f" (update {entry.update_id})"
    return entry.kind, detail


@app.command("show")
@friendly_errors
def show(incident: Annotated[int, typer.Argument(help="Incident id.")]) -> None:
    """The incident and its timeline: status changes, approvals and updates, oldest first."""
    from dispatcher.comms.incidents import get_incident
    from dispatcher.comms.lifecycle import timeline

    rt = runtime()
    inc = get_incident(rt, incident)
    promise = f"{inc.next_update_at:%Y-%m-%d %H:%M} UTC" if inc.next_update_at else "-"
    console.print(
        f"incident {inc.id}: {inc.title} [{inc.severity.value}] {inc.status.value}\n"
        f"owner: {inc.owner or '-'} · next update due: {promise} · reopened: {inc.reopened_count}",
        highlight=False,
    )
    table = Table("when (UTC)", "what", "who", "detail", title=f"Timeline of incident {inc.id}")
    for entry in timeline(rt, incident):
        what, detail = _what(entry)
        table.add_row(entry.at.strftime("%Y-%m-%d %H:%M:%S"), what, entry.actor or "-", detail)
    console.print(table)
