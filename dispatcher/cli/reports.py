"""``tocsin incident report``: publish a resolved incident's post-incident report from a Markdown file."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from dispatcher.cli.common import IncidentArg, console, runtime
from dispatcher.cli.delivering import deliver_now
from dispatcher.cli.who import AsOption, TokenOption, identify
from dispatcher.domain.errors import InvalidInput
from dispatcher.domain.ids import incident_ref, update_ref

if TYPE_CHECKING:
    from dispatcher.comms.reports import PublishedReport
    from dispatcher.domain.models import Update
    from dispatcher.engine.task_queue import TaskQueue


def report(
    incident: IncidentArg,
    file: Annotated[
        Path | None,
        typer.Option(
            "--file",
            help="The report in Markdown: ## Summary, ## Impact, ## Root cause, ## What we did, "
            "## What we will do.",
        ),
    ] = None,
    override_reason: Annotated[
        str | None, typer.Option(help="Publish despite guardrail errors in the report; recorded.")
    ] = None,
    token: TokenOption = None,
    as_: AsOption = None,
    wait: Annotated[
        float, typer.Option(help="Embedded mode: also wait this long for retries due soon.")
    ] = 10.0,
) -> None:
    """Publish the post-incident report of a resolved incident: the status page shows it under the
    incident (and status.json and the feed carry it), and a short notice with its link goes to everyone
    who was told about the incident. Without --file, show the report published."""
    from dispatcher.comms.publish import get_update
    from dispatcher.comms.reports import get_report, publish_report
    from dispatcher.domain.crisis import parse_report_markdown

    rt = runtime()
    if file is None:
        _show(get_report(rt, incident))
        return
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"--file: cannot read {file}: {exc}") from None
    try:
        parsed = parse_report_markdown(text)
    except ValueError as exc:
        raise InvalidInput(f"--file {file}: {exc}") from None
    who = identify(rt, as_, token)
    said: list[PublishedReport] = []

    def act(queue: TaskQueue) -> Update | None:
        done = publish_report(rt, incident, parsed, who, queue, override_reason)
        said.append(done)
        return None if done.notice_update_id is None else get_update(rt, done.notice_update_id)

    deliver_now(rt, act, wait)
    done = said[0]
    when = {None: "", True: ", by its deadline", False: ", after its deadline"}[done.on_time]
    console.print(f"published the report of incident {incident_ref(incident)}{when}", highlight=False)
    if done.link:
        console.print(f"read it at {done.link}", highlight=False)
    if done.notice_update_id is None:
        console.print("no notice sent: nobody was told about this incident", highlight=False)
    else:
        notice = update_ref(done.notice_update_id)
        console.print(f"notice (update {notice}) to {done.told} address(es) told", highlight=False)


def _show(found: PublishedReport) -> None:
    from dispatcher.domain.crisis import REPORT_LABELS

    console.print(
        f"report of incident {incident_ref(found.incident_id)}, "
        f"published {found.published_at:%Y-%m-%d %H:%M} UTC "
        f"by {found.author or '-'}",
        highlight=False,
    )
    for name, label in REPORT_LABELS.items():
        console.print(f"\n{label}\n{getattr(found.report, name)}", markup=False, highlight=False)
