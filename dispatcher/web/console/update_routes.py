"""An update's page: delivery progress per channel (polled by htmx), failures with their reason,
approval."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, HTTPException
from starlette.responses import Response

from dispatcher.comms import approval
from dispatcher.comms.incidents import get_incident
from dispatcher.domain.errors import TocsinError
from dispatcher.domain.models import (
    DeliveryState,
    UpdateState,
)
from dispatcher.reporting.ledger_queries import Selection, list_deliveries
from dispatcher.reporting.status import report
from dispatcher.web.console.access import (
    ConsoleRoute,
    Reader,
    Viewer,
    Writer,
)
from dispatcher.web.console.identity import Scope
from dispatcher.web.console.pages import common_context, see
from dispatcher.web.console.sending import delivering
from dispatcher.web.console.views import page

router = APIRouter(route_class=ConsoleRoute)


def _progress_context(who: Viewer, update_id: int) -> dict[str, Any]:
    result = report(who.rt, update_id)
    failures = list_deliveries(who.rt, Selection(update_id=update_id, states=(DeliveryState.FAILED,)), 50)
    retrying = [
        d
        for d in list_deliveries(who.rt, Selection(update_id=update_id, states=(DeliveryState.QUEUED,)), 200)
        if d.last_error
    ][:50]
    waiting = result.update.state in (
        UpdateState.PENDING_APPROVAL,
        UpdateState.SCHEDULED,
        UpdateState.PENDING,
    )
    done = result.update.state in (UpdateState.FANNED_OUT, UpdateState.REJECTED) and result.owed == 0
    return {
        "report": result,
        "states": list(DeliveryState),
        "failures": failures,
        "retrying": retrying,
        "done": done and not waiting,
        "stopped": who.state.background.problems,
    }


@router.get("/updates/{update_id}")
def update_page(who: Reader, update_id: int) -> Response:
    context = _progress_context(who, update_id)
    incident = get_incident(who.rt, context["report"].update.incident_id)
    return page(
        "update.html",
        **common_context(who, incident=incident, **context),
    )


@router.get("/updates/{update_id}/progress")
def progress_fragment(who: Reader, update_id: int) -> Response:
    """Polled every second by the update page until nothing is owed."""
    return page("_progress.html", **_progress_context(who, update_id))


@router.post("/updates/{update_id}/approve")
def approve_action(who: Writer, update_id: int) -> Response:
    who.require(Scope.PUBLISH)
    try:
        delivering(
            who.rt,
            who.state.background,
            lambda queue: approval.approve(who.rt, update_id, who.identity, queue),
        )
    except TocsinError as exc:
        raise HTTPException(400, str(exc)) from None
    return see(f"/updates/{update_id}")


@router.post("/updates/{update_id}/reject")
def reject_action(who: Writer, update_id: int, reason: Annotated[str, Form()] = "") -> Response:
    who.require(Scope.PUBLISH)
    try:
        approval.reject(who.rt, update_id, who.identity, reason)
    except TocsinError as exc:
        raise HTTPException(400, str(exc)) from None
    return see(f"/updates/{update_id}")
