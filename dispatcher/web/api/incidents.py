"""``/incidents``: list, open, read (with the timeline), change status."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from dispatcher.comms.incidents import get_incident
from dispatcher.comms.lifecycle import TimelineEntry, change_status, open_or_reopen, timeline
from dispatcher.domain.models import Incident, IncidentDraft, IncidentStatus, Severity
from dispatcher.engine.runtime import Runtime
from dispatcher.store.queries import incident_from_row
from dispatcher.store.schema import incidents
from dispatcher.web.api.auth import PublishToken, ReadToken, RuntimeDep
from dispatcher.web.api.idempotency import IdempotencyDep
from dispatcher.web.api.pagination import DEFAULT_LIMIT, Cursor, Limit, Page, decode_cursor, page_of
from dispatcher.web.api.problems import AUTH_PROBLEMS, CONFLICT, NOT_FOUND

router = APIRouter(prefix="/incidents", tags=["incidents"], responses=AUTH_PROBLEMS)

IncidentId = Annotated[int, Path(ge=1, le=2**31 - 1, description="Incident id.")]


class IncidentOpen(BaseModel):
    """What opening an incident takes (status starts at investigating)."""

    model_config = ConfigDict(extra="forbid")

    title: str = Field(min_length=3, max_length=200, description="What is broken, in the customer's words.")
    severity: Severity = Severity.MAJOR
    components: list[str] = Field(default_factory=list, max_length=50)
    owner: str | None = Field(default=None, max_length=200)


class Opened(BaseModel):
    incident: Incident
    action: str = Field(description="opened, or reopened (the same thing broke again soon after resolving).")


class IncidentDetail(BaseModel):
    incident: Incident
    timeline: list[TimelineEntry] = Field(description="Events and updates, oldest first.")


class StatusChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: IncidentStatus
    reason: str | None = Field(default=None, max_length=1000)
    force: bool = Field(
        default=False, description="Resolve before the policy's monitoring hold (needs reason)."
    )


def _page(rt: Runtime, limit: int, cursor: str | None, status: IncidentStatus | None) -> Page[Incident]:
    before = decode_cursor(cursor)
    query = select(incidents).order_by(incidents.c.id.desc()).limit(limit + 1)
    if before is not None:
        query = query.where(incidents.c.id < before)
    if status is not None:
        query = query.where(incidents.c.status == status.value)
    with rt.engine.connect() as conn:
        found = [incident_from_row(r) for r in conn.execute(query).mappings()]
    return page_of(found, [i.id for i in found], limit)


@router.get("", summary="List incidents, newest first (cursor pagination)")
def list_incidents(
    rt: RuntimeDep,
    _token: ReadToken,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
    status: Annotated[IncidentStatus | None, Query(description="Only incidents in this status.")] = None,
) -> Page[Incident]:
    return _page(rt, limit, cursor, status)


@router.post(
    "",
    status_code=201,
    response_model=Opened,
    summary="Open an incident (or reopen the same one if it flapped); Idempotency-Key supported",
    responses=CONFLICT,
)
def open_(body: IncidentOpen, rt: RuntimeDep, token: PublishToken, idem: IdempotencyDep) -> Response:
    def produce() -> Opened:
        draft = IncidentDraft(**body.model_dump())
        result = open_or_reopen(rt, draft, actor=f"api:{token.name}")
        return Opened(incident=result.incident, action=result.action)

    return idem.run(token, 201, produce)


@router.get("/{incident_id}", summary="One incident with its timeline", responses=NOT_FOUND)
def get_(incident_id: IncidentId, rt: RuntimeDep, _token: ReadToken) -> IncidentDetail:
    return IncidentDetail(incident=get_incident(rt, incident_id), timeline=timeline(rt, incident_id))


@router.post(
    "/{incident_id}/status",
    summary="Change the incident's status by hand (no update is published)",
    responses={**NOT_FOUND, **CONFLICT},
)
async def change_status_(
    incident_id: IncidentId, body: StatusChange, rt: RuntimeDep, token: PublishToken
) -> Incident:
    return await run_in_threadpool(
        change_status, rt, incident_id, body.status, f"api:{token.name}", body.reason, body.force
    )
