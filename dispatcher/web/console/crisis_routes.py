"""The console's crisis-comms forms on an incident's page: a security incident's data facts, the
post-incident report (Markdown) and amends (an offer to the customers told)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form
from pydantic import ValidationError
from starlette.responses import Response

from dispatcher.comms.amends import send_amends
from dispatcher.comms.reports import publish_report
from dispatcher.comms.security import set_data_facts
from dispatcher.domain.crisis import DataFacts, parse_report_markdown
from dispatcher.domain.errors import NotFound, TocsinError
from dispatcher.web.console.access import Writer
from dispatcher.web.console.identity import Scope
from dispatcher.web.console.incident_routes import _incident_page
from dispatcher.web.console.pages import problem, see
from dispatcher.web.console.sending import delivering

router = APIRouter()


@router.post("/incidents/{incident_id}/facts")
def facts_action(
    who: Writer,
    incident_id: int,
    data_affected: Annotated[str, Form()] = "",
    data_not_affected: Annotated[str, Form()] = "",
    customer_actions: Annotated[str, Form()] = "",
    company_actions: Annotated[str, Form()] = "",
) -> Response:
    """Give a security incident's data facts (an incident found to be a breach becomes one)."""
    who.require(Scope.PUBLISH)
    try:
        given = DataFacts(
            data_affected=data_affected or None,
            data_not_affected=data_not_affected or None,
            customer_actions=customer_actions or None,
            company_actions=company_actions or None,
        )
        set_data_facts(who.rt, incident_id, given, who.identity.name)
    except NotFound:
        raise
    except (TocsinError, ValidationError, ValueError) as exc:
        return _incident_page(who, incident_id, 400, error=problem(exc))
    return see(f"/incidents/{incident_id}")


@router.post("/incidents/{incident_id}/report")
def report_action(
    who: Writer,
    incident_id: int,
    markdown: Annotated[str, Form()] = "",
    override_reason: Annotated[str, Form()] = "",
) -> Response:
    """Publish the post-incident report of a resolved incident, written in Markdown."""
    who.require(Scope.PUBLISH)
    try:
        report = parse_report_markdown(markdown)
        delivering(
            who.rt,
            who.state.background,
            lambda queue: publish_report(
                who.rt, incident_id, report, who.identity, queue, override_reason.strip() or None
            ),
        )
    except NotFound:
        raise
    except (TocsinError, ValidationError, ValueError) as exc:
        return _incident_page(who, incident_id, 400, error=problem(exc))
    return see(f"/incidents/{incident_id}")


@router.post("/incidents/{incident_id}/amends")
def amends_action(
    who: Writer,
    incident_id: int,
    offer: Annotated[str, Form()] = "",
    segment: Annotated[str, Form()] = "",
) -> Response:
    """Amends without codes (codes come from a CSV: `tocsin incident amends --codes` or the API)."""
    who.require(Scope.PUBLISH)
    try:
        sent = delivering(
            who.rt,
            who.state.background,
            lambda queue: send_amends(
                who.rt, incident_id, offer, who.identity, queue, segment=segment.strip() or None
            ),
        )
    except NotFound:
        raise
    except (TocsinError, ValidationError, ValueError) as exc:
        return _incident_page(who, incident_id, 400, error=problem(exc))
    return see(f"/updates/{sent.update.id}")
