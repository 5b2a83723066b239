"""``tocsin incident …``"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from dispatcher.cli.common import console, friendly_errors, runtime
from dispatcher.incidents import list_incidents, open_incident
from dispatcher.models import IncidentDraft, Severity

app = typer.Typer(help="Open and list incidents.", no_args_is_help=True)


@app.command("open")
@friendly_errors
def open_(
    title: Annotated[str, typer.Argument(help="What is broken, in the customer's words.")],
    severity: Annotated[Severity, typer.Option(help="minor, major or critical.")] = Severity.MAJOR,
    component: Annotated[
        list[str] | None, typer.Option("--component", help="Affected component (repeatable).")
    ] = None,
) -> None:
    """Open an incident (status: investigating). Then `tocsin publish` tells people about it."""
    incident = open_incident(
        runtime(), IncidentDraft(title=title, severity=severity, components=component or [])
    )
    console.print(f"opened incident {incident.id}: {incident.title} [{incident.severity.value}]")


@app.command("list")
@friendly_errors
def list_(limit: Annotated[int, typer.Option(help="How many, newest first.")] = 20) -> None:
    """List incidents, newest first."""
    table = Table("id", "title", "status", "severity", "components", "opened")
    for inc in list_incidents(runtime(), limit):
        table.add_row(
            str(inc.id),
            inc.title,
            inc.status.value,
            inc.severity.value,
            ", ".join(inc.components) or "-",
            inc.opened_at.strftime("%Y-%m-%d %H:%M UTC"),
        )
    console.print(table)
