"""What ``tocsin status`` reports on: one update (``upd-7``, or a bare ``7``), or each update of an
incident (``inc-3``), so a person holding either id gets an answer instead of the wrong report."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from dispatcher.domain.ids import IdKind, parse_any

if TYPE_CHECKING:
    from dispatcher.engine.runtime import Runtime


def update_ids(rt: Runtime, target: str) -> list[int]:
    """The updates ``target`` names, oldest first; empty for an incident with no update yet."""
    try:
        kind, number = parse_any(target)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    if kind is not IdKind.INCIDENT:
        return [number]
    from dispatcher.comms.incidents import get_incident
    from dispatcher.comms.lifecycle import timeline

    get_incident(rt, number)  # NotFound names the incident
    seen = [e.update.id for e in timeline(rt, number) if e.update is not None]
    return sorted(set(seen))
