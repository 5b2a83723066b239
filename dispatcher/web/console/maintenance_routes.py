"""The maintenance page: planned windows, scheduling one, and rescheduling, extending, finishing or
cancelling it; every change is a notice to the window's audience."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Form
from pydantic import ValidationError
from starlette.responses import Response

from dispatcher.comms.maintenance import (
    MaintenanceDraft,
    cancel_maintenance,
    extend_maintenance,
    finish_maintenance,
    list_maintenance,
    reschedule_maintenance,
    schedule_maintenance,
)
from dispatcher.domain.errors import InvalidInput, NotFound, TocsinError
from dispatcher.domain.models import Incident, Severity
from dispatcher.engine.task_queue import TaskQueue
from dispatcher.web.console.access import ConsoleRoute, Reader, Viewer, Writer
from dispatcher.web.console.identity import Scope
from dispatcher.web.console.pages import common_context, problem, see
from dispatcher.web.console.sending import delivering
from dispatcher.web.console.views import page

router = APIRouter(route_class=ConsoleRoute)


def _moment(label: str, text: str) -> datetime:
    """A time from the form: ``2026-11-26T02:00Z`` or a browser's ``datetime-local`` (read as UTC)."""
    cleaned = text.strip()
    if not cleaned:
        raise InvalidInput(f"{label}: give a date and time (UTC)")
    try:
        value = datetime.fromisoformat(cleaned.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(f"{label}: {cleaned!r} is not a date and time (e.g. 2026-11-26T02:00Z)") from None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)  # the form says UTC


def _page(who: Viewer, status_code: int = 200, **extra: object) -> Response:
    return page(
        "maintenance.html",
        status_code=status_code,
        **common_context(
            who,
            windows=list_maintenance(who.rt, include_finished=True, limit=50),
            severities=list(Severity),
            **extra,
        ),
    )


def _act(who: Viewer, action: Callable[[TaskQueue], Incident]) -> Response:
    who.require(Scope.PUBLISH)
    try:
        delivering(who.rt, who.state.background, action)
    except NotFound:
        raise
    except (TocsinError, ValidationError, ValueError) as exc:
        return _page(who, 400, error=problem(exc))
    return see("/maintenance")


@router.get("/maintenance")
def maintenance_page(who: Reader) -> Response:
    return _page(who)


@router.post("/maintenance")
def schedule_action(
    who: Writer,
    title: Annotated[str, Form()] = "",
    starts_at: Annotated[str, Form()] = "",
    ends_at: Annotated[str, Form()] = "",
    components: Annotated[str, Form()] = "",
    message: Annotated[str, Form()] = "",
) -> Response:
    def act(queue: TaskQueue) -> Incident:
        draft = MaintenanceDraft(
            title=title,
            starts_at=_moment("start", starts_at),
            ends_at=_moment("end", ends_at),
            components=components.split(","),
            message=message.strip() or None,
        )
        return schedule_maintenance(who.rt, queue, draft, who.identity)

    return _act(who, act)


@router.post("/maintenance/{maintenance_id}/reschedule")
def reschedule_action(
    who: Writer,
    maintenance_id: int,
    starts_at: Annotated[str, Form()] = "",
    ends_at: Annotated[str, Form()] = "",
    message: Annotated[str, Form()] = "",
) -> Response:
    return _act(
        who,
        lambda queue: reschedule_maintenance(
            who.rt,
            queue,
            maintenance_id,
            _moment("start", starts_at),
            _moment("end", ends_at),
            who.identity,
            message.strip() or None,
        ),
    )


@router.post("/maintenance/{maintenance_id}/extend")
def extend_action(
    who: Writer,
    maintenance_id: int,
    ends_at: Annotated[str, Form()] = "",
    message: Annotated[str, Form()] = "",
) -> Response:
    return _act(
        who,
        lambda queue: extend_maintenance(
            who.rt, queue, maintenance_id, _moment("end", ends_at), who.identity, message.strip() or None
        ),
    )


@router.post("/maintenance/{maintenance_id}/finish")
def finish_action(who: Writer, maintenance_id: int, message: Annotated[str, Form()] = "") -> Response:
    return _act(
        who,
        lambda queue: finish_maintenance(
            who.rt, queue, maintenance_id, who.identity, message.strip() or None
        ),
    )


@router.post("/maintenance/{maintenance_id}/cancel")
def cancel_action(who: Writer, maintenance_id: int) -> Response:
    return _act(who, lambda queue: cancel_maintenance(who.rt, queue, maintenance_id, who.identity))
