"""``tocsin subscribers …``"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from dispatcher.cli.common import console, err_console, fail, friendly_errors, runtime
from dispatcher.importing import import_subscribers_file
from dispatcher.subscribers import count_subscribers, iter_subscribers

app = typer.Typer(help="Import and list subscribers.", no_args_is_help=True)


@app.command("import")
@friendly_errors
def import_(
    file: Annotated[Path, typer.Argument(help="CSV file; columns are listed in the README.")],
    skip_invalid: Annotated[
        bool, typer.Option(help="Import the valid rows even when some are bad (bad ones are listed).")
    ] = False,
    region: Annotated[
        str | None, typer.Option(help="Region for numbers without +, e.g. US, GB (default from config).")
    ] = None,
) -> None:
    """Import subscribers from CSV. Nothing is imported if any row is bad, unless --skip-invalid."""
    rt = runtime()
    outcome = import_subscribers_file(rt, file, region or rt.settings.default_region, skip_invalid)
    for problem in outcome.problems:
        err_console.print(f"{file}:{problem.line}: {problem.column}: {problem.reason}", highlight=False)
    if outcome.problems and not skip_invalid:
        fail(f"{len(outcome.problems)} bad row(s) in {file}; nothing imported (fix them, or --skip-invalid)")
    console.print(
        f"imported {outcome.imported} subscriber(s)"
        + (f", skipped {outcome.skipped} bad row(s)" if outcome.skipped else "")
    )


@app.command("list")
@friendly_errors
def list_(limit: Annotated[int, typer.Option(help="Show at most this many.")] = 50) -> None:
    """List subscribers and their contact points."""
    rt = runtime()
    table = Table(
        "id",
        "name",
        "locale",
        "email",
        "sms",
        "webhook",
        "components",
        "staff",
        title=f"{count_subscribers(rt)} subscriber(s)",
    )
    for s in iter_subscribers(rt, limit):
        by_channel = {
            cp.channel.value: cp.address + (" (opted out)" if cp.opted_out else "") for cp in s.contact_points
        }
        table.add_row(
            str(s.id),
            s.name or "-",
            s.locale,
            by_channel.get("email", "-"),
            by_channel.get("sms", "-"),
            by_channel.get("webhook", "-"),
            ", ".join(s.components) or "all",
            "yes" if s.internal else "",
        )
    console.print(table)
