"""The options that carry an update's impact statement (``tocsin publish`` and ``tocsin preview``)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import typer

from dispatcher.domain.errors import InvalidInput

if TYPE_CHECKING:  # the models import pydantic, which `tocsin --help` does without
    from dispatcher.domain.crisis import ImpactStatement

AffectsOption = Annotated[
    str | None, typer.Option("--affects", help="Who is affected: all customers, EU, the Pro plan, 5%.")
]
NotWorkingOption = Annotated[str | None, typer.Option("--not-working", help="What does not work.")]
SinceOption = Annotated[
    str | None,
    typer.Option("--since", help="Since when: HH:MM (UTC, the latest such time) or 2026-11-25T09:05Z."),
]
WorkaroundOption = Annotated[str | None, typer.Option("--workaround", help="What to do meanwhile.")]
SignerOption = Annotated[
    str | None,
    typer.Option(
        "--signer", help="Sign it: a signatory's short name in the policy ([signatories.ceo] → ceo)."
    ),
]


def parse_since(given: str, now: datetime) -> datetime:
    """``--since``: see ``dispatcher.domain.crisis.parse_since``; ``InvalidInput`` naming the option."""
    from dispatcher.domain.crisis import since_time

    try:
        return since_time(given, now)
    except ValueError as exc:
        raise InvalidInput(f"--since: {exc}") from None


ReportByOption = Annotated[
    str | None,
    typer.Option(
        "--report-by",
        help="Promise the post-incident report by this date (2026-12-01 or 2026-12-01T17:00Z; a date alone "
        "is 17:00 UTC) or within this long (5d); default: the severity's report_within.",
    ),
]


def parse_report_by(given: str | None, now: datetime) -> datetime | None:
    """``2026-12-01`` (17:00 UTC that day), an ISO time with a zone, or a duration from now (``5d``)."""
    if not given:
        return None
    from dispatcher.domain.crisis import report_time

    try:
        return report_time(given, now)
    except ValueError as exc:
        raise InvalidInput(f"--report-by: {exc}") from None


def impact_statement(
    affects: str | None, not_working: str | None, since: str | None, workaround: str | None, now: datetime
) -> ImpactStatement | None:
    """The statement the options give (None when none was given)."""
    from dispatcher.domain.crisis import ImpactStatement

    statement = ImpactStatement(
        who=affects,
        not_working=not_working,
        since=parse_since(since, now) if since else None,
        workaround=workaround,
    )
    return None if statement.is_empty else statement
