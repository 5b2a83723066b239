"""The status page from the console: components (add, order, set a status by hand) and maintenance
windows (schedule, cancel). Each change republishes the status site and says where it went."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Form
from pydantic import ValidationError
from starlette.responses import Response

from dispatcher.comms import components as parts
from dispatcher.comms.components import ComponentDraft
from dispatcher.comms.maintenance import (
    MaintenanceDraft,
    cancel_maintenance,
    list_maintenance,
    schedule_maintenance,
)
from dispatcher.domain.components import STATUSES
from dispatcher.domain.errors import TocsinError
from dispatcher.engine.status_site import republish_site
from dispatcher.web.console.access import ConsoleRoute, Reader, Viewer, Writer
from dispatcher.web.console.identity import Scope
from dispatcher.web.console.pages import common_context, problem, see
from dispatcher.web.console.sending import delivering
from dispatcher.web.console.views import page

router = APIRouter(route_class=ConsoleRoute)


def _page(who: Viewer, status_code: int = 200, **context: object) -> Response:
    now = who.rt.clock.now()
    windows = [m for m in list_maintenance(who.rt) if m.maintenance_stage not in ("completed", "cancelled")]
    context.setdefault("published", None)
    return page(
        "components.html",
        status_code=status_code,
        **common_context(
            who,
            components=parts.list_components(who.rt),
            statuses=STATUSES,
            windows=windows,
            today=now,
            **context,
        ),
    )


def _published(who: Viewer) -> dict[str, str | None]:
    return republish_site(who.rt)


@router.get("/components")
def components_page(who: Reader) -> Response:
    return _page(who)


@router.post("/components")
def add_component(
    who: Writer,
    name: Annotated[str, Form()] = "",
    group: Annotated[str, Form()] = "",
    description: Annotated[str, Form()] = "",
) -> Response:
    who.require(Scope.PUBLISH)
    try:
        parts.create_component(
            who.rt, ComponentDraft(name=name, group=group or None, description=description or None)
        )
    except (TocsinError, ValidationError) as exc:
        return _page(who, 400, error=problem(exc))
    return _page(who, published=_published(who))


@router.post("/components/{key}/status")
def set_status(
    who: Writer, key: str, status: Annotated[str, Form()] = "", reason: Annotated[str, Form()] = ""
) -> Response:
    who.require(Scope.PUBLISH)
    try:
        parts.set_component_status(who.rt, key, status, who.session.actor, reason or None)
    except TocsinError as exc:
        return _page(who, 400, error=problem(exc))
    return _page(who, published=_published(who))


@router.post("/components/{key}/move")
def move(who: Writer, key: str, direction: Annotated[str, Form()] = "up") -> Response:
    who.require(Scope.PUBLISH)
    names = [c.slug for c in parts.list_components(who.rt)]
    try:
        found = parts.get_component(who.rt, key).slug
    except TocsinError as exc:
        return _page(who, 400, error=problem(exc))
    at = names.index(found)
    to = max(0, at - 1) if direction == "up" else min(len(names) - 1, at + 1)
    names.insert(to, names.pop(at))
    parts.reorder_components(who.rt, names)
    return _page(who, published=_published(who))


def _when(value: str, field: str) -> datetime:
    """A ``datetime-local`` field, read as UTC (the form says so)."""
    try:
        return datetime.fromisoformat(value).replace(tzinfo=UTC)
    except ValueError:
        raise ValueError(f"{field}: {value!r} is not a date and time") from None


@router.post("/maintenance")
def schedule(
    who: Writer,
    title: Annotated[str, Form()] = "",
    starts_at: Annotated[str, Form()] = "",
    ends_at: Annotated[str, Form()] = "",
    components: Annotated[list[str] | None, Form()] = None,
    message: Annotated[str, Form()] = "",
) -> Response:
    who.require(Scope.PUBLISH)
    try:
        draft = MaintenanceDraft(
            title=title,
            starts_at=_when(starts_at, "starts_at"),
            ends_at=_when(ends_at, "ends_at"),
            components=components or [],
            message=message or None,
        )
        delivering(who.rt, who.state.background, lambda queue: schedule_maintenance(who.rt, queue, draft))
    except (TocsinError, ValidationError, ValueError) as exc:
        return _page(who, 400, error=problem(exc))
    return see("/components#maintenance")


@router.post("/maintenance/{maintenance_id}/cancel")
def cancel(who: Writer, maintenance_id: int) -> Response:
    who.require(Scope.PUBLISH)
    try:
        delivering(
            who.rt, who.state.background, lambda queue: cancel_maintenance(who.rt, queue, maintenance_id)
        )
    except TocsinError as exc:
        return _page(who, 400, error=problem(exc))
    return see("/components#maintenance")
