"""``tocsin templates …``: the message templates library (words prepared before the outage)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from dispatcher.cli.common import console, friendly_errors, runtime

# Each command imports what it uses when it runs: `tocsin --help` must answer at once.

app = typer.Typer(
    help="Message templates: words for the situations every team meets, ready before the outage.",
    no_args_is_help=True,
)


@app.command("list")
@friendly_errors
def list_() -> None:
    """Every template: its name (for `tocsin publish --template NAME`), status, languages and values."""
    from dispatcher.comms.message_templates import library

    rt = runtime()
    found = library(rt)
    table = Table(title=f"Message templates ({found.folder or 'starter set only'})")
    for column in ("name", "title", "status", "languages", "values", "pre-approved", "from"):
        table.add_column(column)
    for name, loaded in sorted(found.templates.items()):
        template = loaded.template
        values = [n if v.required else f"[{n}]" for n, v in template.variables.items()]
        table.add_row(
            name,
            template.title,
            template.status.value,
            ", ".join(template.languages()),
            escape(", ".join(values)) or "-",
            "yes" if template.pre_approved else "no",
            "starter" if loaded.starter else str(loaded.path),
        )
    console.print(table)


@app.command("show")
@friendly_errors
def show(name: Annotated[str, typer.Argument(help="The template's name.")]) -> None:
    """One template: what it is for, the values it takes, and its words in every language."""
    from dispatcher.comms.lifecycle import human
    from dispatcher.comms.message_templates import library
    from dispatcher.domain.message_templates import BUILT_IN

    rt = runtime()
    loaded = library(rt).get(name)
    template = loaded.template
    promise = human(template.next_update_in) if template.next_update_in else "the severity's cadence"
    console.print(f"[bold]{template.name}[/]: {escape(template.title)}", highlight=False)
    if template.description:
        console.print(escape(template.description), highlight=False)
    console.print(f"file: {loaded.path}", highlight=False)
    console.print(
        f"status {template.status.value} · next update: {promise} · audience {template.audience} · "
        f"{'pre-approved' if template.pre_approved else 'approval as the severity policy says'}",
        highlight=False,
    )
    for var_name, var in template.variables.items():
        need = "required" if var.required else "optional"
        console.print(f"  --var {var_name}=…  ({need}) {escape(var.description)}", highlight=False)
    used = [n for n in BUILT_IN if template.uses(n)]
    if used:
        console.print(f"  filled in by Tocsin: {', '.join('{' + n + '}' for n in used)}", highlight=False)
    for locale, text in sorted(template.texts.items()):
        console.print(f"\n[bold]{locale}[/]", highlight=False)
        for field, words in text.items():
            console.print(f"  {field}: {escape(words)}", highlight=False, soft_wrap=True)


@app.command("check")
@friendly_errors
def check() -> None:
    """Load every template (yours and the starter set), fill each in every language with its examples,
    and put each text through the guardrails and the SMS and X budgets; check the channel layouts too.

    Exit code 1 when a file cannot be loaded or a template has an error; warnings do not fail."""
    from dispatcher.comms.message_templates import check_library
    from dispatcher.rendering.renderer import validate_templates

    rt = runtime()
    found, reports = check_library(rt)
    failed = False
    for problem in found.problems:
        console.print(f"[bold red]error[/] {escape(problem)}", highlight=False, soft_wrap=True)
        failed = True
    for report in reports:
        for note in report.notes:
            colour = "red" if note.level == "error" else "yellow"
            console.print(
                f"[bold {colour}]{note.level}[/] {report.name}: {note.where}: {escape(note.message)}",
                highlight=False,
                soft_wrap=True,
            )
        failed = failed or not report.ok
    layouts = validate_templates(rt.settings.templates_dir)
    for layout in layouts:
        console.print(f"[bold red]error[/] layout {escape(str(layout))}", highlight=False, soft_wrap=True)
    if failed or layouts:
        raise typer.Exit(1)
    console.print(f"{len(reports)} message templates and the channel layouts are fine", highlight=False)
