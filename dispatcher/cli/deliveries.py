"""``tocsin deliveries …``: dead letters, what is still owed, who has not received an update; re-drive."""

from __future__ import annotations

import csv
import enum
import json
import sys
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from channels.base import ChannelKind
from dispatcher.cli.common import (
    UpdateArg,
    console,
    err_console,
    friendly_errors,
    parse_update_id,
    runtime,
    work_here,
)
from dispatcher.cli.views import status_table
from dispatcher.domain.ids import update_ref
from dispatcher.domain.vocabulary import DeliveryState

if TYPE_CHECKING:
    from dispatcher.engine.runtime import Runtime
    from dispatcher.reporting.ledger_queries import (
        DeliveryRow,
        MissingReport,
        NothingToRetry,
        RetryResult,
        Selection,
    )
    from dispatcher.runners.embedded import RunStats

app = typer.Typer(
    help="Dead letters, deliveries still owed, who has not received an update, and re-driving failures.",
    no_args_is_help=False,
    invoke_without_command=True,
)


class OutputFormat(enum.StrEnum):
    TABLE = "table"
    JSON = "json"
    CSV = "csv"


UpdateOpt = Annotated[
    int | None,
    typer.Option(
        "--update",
        parser=parse_update_id,
        metavar="UPDATE",
        help="Only deliveries of this update: upd-7 (or 7).",
    ),
]
ChannelOpt = Annotated[
    list[ChannelKind] | None, typer.Option("--channel", help="Only this channel (repeatable).")
]
ProviderOpt = Annotated[
    str | None,
    typer.Option("--provider", help="Only deliveries last tried by this provider (e.g. sendgrid)."),
]
FormatOpt = Annotated[
    OutputFormat, typer.Option("--format", help="table for people; json or csv (on stdout) for machines.")
]
MAX_ERROR_SHOWN = 120


def _cell(value: object) -> Text:
    """A table cell shown literally (an address or error with [brackets] is not rich markup)."""
    if value is None or value == "":
        return Text("-")
    if isinstance(value, datetime):
        return Text(value.strftime("%Y-%m-%d %H:%M:%S"))
    if isinstance(value, enum.Enum):
        return Text(str(value.value))
    text = str(value)
    return Text(text if len(text) <= MAX_ERROR_SHOWN else text[: MAX_ERROR_SHOWN - 1] + "…")


def _write_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def _write_csv(header: Sequence[str], rows: Iterable[dict[str, Any]]) -> None:
    writer = csv.DictWriter(sys.stdout, fieldnames=list(header), lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if v is None else v for k, v in row.items()})


@app.callback()
def _default(ctx: typer.Context) -> None:
    """Dead letters and pending deliveries (`tocsin deliveries` alone = `tocsin deliveries list`)."""
    if ctx.invoked_subcommand is None:
        list_(update=None, channel=None, state=None, provider=None, limit=100, output=OutputFormat.TABLE)


@app.command("list")
@friendly_errors
def list_(
    update: UpdateOpt = None,
    channel: ChannelOpt = None,
    state: Annotated[
        list[DeliveryState] | None,
        typer.Option("--state", help="Only this state (repeatable). Default: failed, queued and sending."),
    ] = None,
    provider: ProviderOpt = None,
    limit: Annotated[int, typer.Option(min=1, help="Show at most this many, newest first.")] = 100,
    output: FormatOpt = OutputFormat.TABLE,
) -> None:
    """List deliveries, newest first: by default the dead letters (failed) and what is still owed."""
    from dispatcher.reporting.ledger_queries import DEFAULT_STATES, DeliveryRow, Selection, list_deliveries

    selection = Selection(
        update_id=update,
        channels=tuple(channel or ()),
        states=tuple(state or DEFAULT_STATES),
        provider=provider,
    )
    rows = list_deliveries(runtime(), selection, limit)
    if output is OutputFormat.JSON:
        _write_json([r.as_json() for r in rows])
    elif output is OutputFormat.CSV:
        _write_csv(DeliveryRow.FIELDS, (r.as_json() for r in rows))
    elif not rows:
        err_console.print(f"no deliveries match ({selection.describe()})", highlight=False)
    else:
        console.print(_deliveries_table(rows, selection, limit))


def _deliveries_table(rows: list[DeliveryRow], selection: Selection, limit: int) -> Table:
    title = f"{len(rows)} deliveries ({selection.describe()})"
    if len(rows) == limit:
        title += f", the newest {limit}: use --limit for more"
    table = Table(title=title)
    for name in (
        "id",
        "update",
        "channel",
        "address",
        "state",
        "attempts",
        "provider",
        "provider message id",
        "provider status",
        "last error",
        "updated (UTC)",
    ):
        table.add_column(name, justify="right" if name in ("id", "update", "attempts") else "left")
    for r in rows:
        table.add_row(
            *map(
                _cell,
                (
                    r.id,
                    update_ref(r.update_id),
                    r.channel,
                    r.address,
                    r.state,
                    r.attempts,
                    r.provider,
                    r.provider_message_id,
                    r.provider_status,
                    r.last_error,
                    r.updated_at,
                ),
            )
        )
    return table


@app.command("missing")
@friendly_errors
def missing_(
    update: UpdateArg,
    channel: ChannelOpt = None,
    output: FormatOpt = OutputFormat.TABLE,
) -> None:
    """Who has not received an update, and why: failed, undelivered, suppressed, superseded, still owed."""
    from dispatcher.reporting.ledger_queries import DeliveryRow, missing

    result = missing(runtime(), update, channel or ())
    if output is OutputFormat.JSON:
        _write_json(
            {
                "update_id": result.update_id,
                "fanned_out": result.fanned_out,
                "counts": {reason.value: n for reason, n in result.counts.items()},
                "missing": [m.as_json() for m in result.rows],
            }
        )
        return
    if output is OutputFormat.CSV:
        _write_csv(
            ("reason", "detail", "superseded_by", *DeliveryRow.FIELDS), (m.as_json() for m in result.rows)
        )
        return
    _print_missing(result)


def _print_missing(result: MissingReport) -> None:
    if not result.fanned_out:
        err_console.print(
            f"update {update_ref(result.update_id)} is not fanned out yet: "
            "more addresses may be owed than listed",
            highlight=False,
        )
    if not result.rows:
        if result.fanned_out:
            console.print(
                f"update {update_ref(result.update_id)}: every owed address has received it", highlight=False
            )
        else:
            console.print(f"update {update_ref(result.update_id)}: no address listed yet", highlight=False)
        return
    counts = ", ".join(f"{reason.value} {n}" for reason, n in result.counts.items())
    console.print(
        f"update {update_ref(result.update_id)}: {len(result.rows)} address(es) have not received it "
        f"({counts})",
        highlight=False,
    )
    for reason, items in result.by_reason().items():
        table = Table(
            "id", "channel", "address", "why", title=f"{reason.value}: {len(items)}", title_justify="left"
        )
        for item in items:
            d = item.delivery
            table.add_row(_cell(d.id), _cell(d.channel), _cell(d.address), _cell(item.detail))
        console.print(table)


@app.command("retry")
@friendly_errors
def retry(
    update: UpdateOpt = None,
    channel: ChannelOpt = None,
    provider: ProviderOpt = None,
    delivery_id: Annotated[
        list[int] | None, typer.Option("--id", help="Only this delivery id (repeatable).")
    ] = None,
    dry_run: Annotated[bool, typer.Option(help="Only count what would be re-driven.")] = False,
    wait: Annotated[
        float, typer.Option(help="Embedded mode: also wait this many seconds for retries due soon.")
    ] = 10.0,
) -> None:
    """Re-drive FAILED deliveries: back to queued with attempts reset, then delivered again.

    Superseded and suppressed deliveries are never re-driven. Without REDIS_URL they are delivered now,
    in this process; with it, their batches go to the workers."""
    from dispatcher.reporting.ledger_queries import NothingToRetry, Selection, retry_failed

    rt = runtime()
    selection = Selection(
        update_id=update, channels=tuple(channel or ()), provider=provider, ids=tuple(delivery_id or ())
    )
    if dry_run:
        try:
            result = retry_failed(rt, selection, None, dry_run=True)
        except NothingToRetry as exc:
            _nothing_failed(selection, exc)
            return
        _notes(result)
        console.print(f"would re-drive {_size(result)}; nothing changed (--dry-run)", highlight=False)
        return
    work = work_here(rt)
    try:
        result = retry_failed(rt, selection, work.queue)
    except NothingToRetry as exc:
        rt.close()
        _nothing_failed(selection, exc)
        return
    try:
        _notes(result)
        stats = work.finish(wait)
    finally:
        rt.close()  # adapters hold pooled connections (webhooks): close them before the process ends
    if stats is None:
        console.print(
            f"re-queued {_size(result)} for the workers (follow with `tocsin deliveries list`)",
            highlight=False,
        )
        return
    _show_retried(rt, result, stats)


def _show_retried(rt: Runtime, result: RetryResult, stats: RunStats) -> None:
    """Embedded: what the re-drive delivered, now, in this process."""
    from dispatcher.reporting.status import report

    console.print(
        f"re-drove {_size(result)}: {stats.sent} sent, {stats.failed} failed, {stats.suppressed} set aside",
        highlight=False,
    )
    owed = 0
    for update_id in result.update_ids:
        outcome = report(rt, update_id)
        owed += outcome.owed
        console.print(status_table(outcome.update, outcome.channels, outcome.providers))
    if owed:
        console.print(f"{owed} deliveries still owed: `tocsin worker` retries them when due", highlight=False)


def _nothing_failed(selection: Selection, why: NothingToRetry) -> None:
    """Nothing failed among what a filter chose: good news, not an error. A delivery named by id that
    cannot be re-driven is an error (the person asked for that one)."""
    if selection.ids:
        raise why
    console.print(f"nothing to re-drive: {why}", highlight=False)


def _size(result: RetryResult) -> str:
    updates = ", ".join(update_ref(u) for u in result.update_ids)
    return (
        f"{result.rows} failed deliveries in {len(result.batches)} batch(es) "
        f"(update{'s' if len(result.update_ids) > 1 else ''} {updates})"
    )


def _notes(result: RetryResult) -> None:
    for note in result.notes:
        err_console.print(f"note: {note}", highlight=False, soft_wrap=True)
