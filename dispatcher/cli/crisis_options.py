"""The options that carry an update's impact statement (``tocsin publish`` and ``tocsin preview``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer

from dispatcher.domain.crisis import ImpactStatement
from dispatcher.domain.errors import InvalidInput

AffectsOption = Annotated[
    str | None, typer.Option("--affects", help="Who is affected: all customers, EU, the Pro plan, 5%.")
]
NotWorkingOption = Annotated[str | None, typer.Option("--not-working", help="What does not work.")]
SinceOption = Annotated[
    str | None,
    typer.Option("--since", help="Since when: HH:MM (UTC, the latest such time) or 2026-11-25T09:05Z."),
]
WorkaroundOption = Annotated[str | None, typer.Option("--workaround", help="What to do meanwhile.")]


def parse_since(given: str, now: datetime) -> datetime:
    """``09:05`` (UTC: today's, or yesterday's if that is still ahead) or an ISO time with a zone."""
    text = given.strip()
    try:
        clock = datetime.strptime(text, "%H:%M").time()
    except ValueError:
        clock = None
    if clock is not None:
        when = datetime.combine(now.astimezone(UTC).date(), clock, tzinfo=UTC)
        return when - timedelta(days=1) if when > now else when
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInput(f"--since: {given!r} is not a time like 09:05 or 2026-11-25T09:05Z") from None
    if when.tzinfo is None:
        raise InvalidInput(f"--since: {given!r} needs a time zone, e.g. 2026-11-25T09:05Z")
    if when > now:
        raise InvalidInput(f"--since: {given!r} is in the future")
    return when


def impact_statement(
    affects: str | None, not_working: str | None, since: str | None, workaround: str | None, now: datetime
) -> ImpactStatement | None:
    """The statement the options give (None when none was given)."""
    statement = ImpactStatement(
        who=affects,
        not_working=not_working,
        since=parse_since(since, now) if since else None,
        workaround=workaround,
    )
    return None if statement.is_empty else statement
