"""``tocsin policy …``: check the severity policy file and show what it says."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from dispatcher.cli.common import console, friendly_errors, load_settings
from dispatcher.domain.errors import ConfigurationError

if TYPE_CHECKING:
    from dispatcher.domain.policy import LoadedPolicy

app = typer.Typer(help="The severity policy (policy.toml).", no_args_is_help=True)


def policy_table(loaded: LoadedPolicy) -> Table:
    from dispatcher.comms.lifecycle import human

    source = str(loaded.path) if loaded.path is not None else "built-in defaults"
    table = Table(title=f"Severity policy {loaded.version} ({source})")
    for column in ("severity", "channels", "audiences", "cadence", "resolve hold", "approval", "first word"):
        table.add_column(column)
    for severity, rules in loaded.policy.severity.items():
        budget = loaded.policy.first_word_budget(severity)
        first_word = human(budget) if budget.total_seconds() > 0 else "no watchdog"
        table.add_row(
            severity.value,
            ", ".join(c.value for c in rules.channels) if rules.channels is not None else "all enabled",
            ", ".join(rules.audiences),
            human(rules.cadence),
            human(rules.resolve_hold) if rules.resolve_hold else "none",
            "second person" if rules.needs_approval else "no",
            first_word + (" (notice sent by itself)" if rules.auto_first_notice else ""),
        )
    return table


@app.command("check")
@friendly_errors
def check(
    file: Annotated[
        Path | None, typer.Argument(help="The policy file (default: the policy_file setting).")
    ] = None,
) -> None:
    """Validate a policy file (one clear line naming the field if it is wrong) and print it."""
    from dispatcher.comms.lifecycle import human
    from dispatcher.domain.policy import load_policy

    path = file if file is not None else load_settings().policy_file
    if not path.exists():
        if file is not None:
            raise ConfigurationError(f"{path}: no such policy file")
        console.print(f"no policy file at {path}: the built-in policy applies")
    loaded = load_policy(path)
    console.print(policy_table(loaded))
    escalation = loaded.policy.escalation
    console.print(
        f"escalation: after {escalation.after_holdings} holding messages in a row or "
        f"{human(escalation.after)} without a real update; senior approver: "
        f"{escalation.senior_approver or '-'}; contacts: {', '.join(escalation.contacts) or '-'}; "
        f"approvals nudged after {human(escalation.approval_nudge_after)}",
        highlight=False,
    )
    console.print(f"policy version: {loaded.version}", highlight=False)
