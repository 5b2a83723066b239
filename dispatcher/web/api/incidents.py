"""``/incidents``: list, open, read (with the timeline), change status."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from dispatcher.access.identity import API_PREFIX, of_token
from dispatcher.comms.attention import flags
from dispatcher.comms.changes import change_incident
from dispatcher.comms.closure import resolve
from dispatcher.comms.first_word import send_first_notice
from dispatcher.comms.incidents import get_incident, open_by_person
from dispatcher.comms.lifecycle import TimelineEntry, change_status, timeline
from dispatcher.comms.security import set_data_facts
from dispatcher.domain.crisis import DataFacts
from dispatcher.domain.errors import InvalidInput
from dispatcher.domain.models import (
    ComponentImpact,
    Incident,
    IncidentDraft,
    IncidentStatus,
    Severity,
    Update,
)
from dispatcher.engine.runtime import Runtime
from dispatcher.store.queries import incident_from_row
from dispatcher.store.schema import incidents
from dispatcher.web.api.auth import PublishToken, ReadToken, RuntimeDep
from dispatcher.web.api.idempotency import IdempotencyDep
from dispatcher.web.api.pagination import DEFAULT_LIMIT, Cursor, Limit, Page, decode_cursor, page_of
from dispatcher.web.api.problems import AUTH_PROBLEMS, CONFLICT, NOT_FOUND
from dispatcher.web.api.work import QueueDep

router = APIRouter(prefix="/incidents", tags=["incidents"], responses=AUTH_PROBLEMS)

IncidentId = Annotated[int, Path(ge=1, le=2**31 - 1, description="Incident id.")]


class IncidentOpen(BaseModel):
    """What opening an incident takes (status starts at investigating)."""

    model_config = ConfigDict(extra="forbid")

    title: str = Field(min_length=3, max_length=200, description="What is broken, in the customer's words.")
    severity: Severity = Severity.MAJOR
    components: list[str] = Field(default_factory=list, max_length=50)
    owner: str | None = Field(default=None, max_length=200)
    kind: Literal["incident", "security"] = Field(
        default="incident",
        description="security: a breach or data incident; its data facts are owed before it goes public.",
    )
    data_facts: DataFacts | None = Field(default=None, description="A security incident's data facts.")
    override_reason: str | None = Field(
        default=None, max_length=1000, description="Open despite guardrail errors in the title (recorded)."
    )


class Opened(BaseModel):
    incident: Incident
    action: str = Field(description="opened, or reopened (the same thing broke again soon after resolving).")


class IncidentDetail(BaseModel):
    incident: Incident
    timeline: list[TimelineEntry] = Field(description="Events and updates, oldest first.")
    attention: list[str] = Field(
        default_factory=list,
        description="What needs someone now: escalated, no public word yet, promise late.",
    )


class IncidentChange(BaseModel):
    """A mid-incident change: only what is given changes; the policy applies at once."""

    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=1000, description="Why (recorded on the timeline).")
    severity: Severity | None = None
    title: str | None = Field(default=None, min_length=3, max_length=200)
    components: list[str] | None = Field(default=None, max_length=50)
    impact: dict[str, ComponentImpact] | None = Field(
        default=None, max_length=50, description="How each component is hit from now on (status page)."
    )
    override_reason: str | None = Field(default=None, max_length=1000)


class FirstNoticeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    override_reason: str | None = Field(
        default=None, max_length=1000, description="Send despite guardrail errors in the title (recorded)."
    )


class FirstNoticeOut(BaseModel):
    update: Update = Field(description="The pre-approved first notice (never waits for approval).")
    created: bool = Field(description="False when the first notice had gone out already.")


class StatusChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: IncidentStatus
    reason: str | None = Field(default=None, max_length=1000)
    force: bool = Field(
        default=False, strict=True, description="Resolve before the policy's monitoring hold (needs reason)."
    )
    message: str | None = Field(
        default=None,
        min_length=1,
        max_length=4000,
        description="Resolving only: your own resolution text (default: the policy's approved one).",
    )


class ResolveRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str | None = Field(default=None, max_length=1000, description="Why (required with force).")
    force: bool = Field(
        default=False, strict=True, description="Resolve before the policy's monitoring hold."
    )
    message: str | None = Field(
        default=None, min_length=1, max_length=4000, description="Default: the policy's resolution text."
    )
    override_reason: str | None = Field(default=None, max_length=1000)


class Resolved(BaseModel):
    incident: Incident = Field(
        description="Still open while a resolution text of your own waits for approval."
    )
    update: Update = Field(description="The resolution: sent to everyone told about the incident.")


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
        draft = IncidentDraft(**body.model_dump(exclude={"override_reason"}))
        result = open_by_person(rt, draft, f"{API_PREFIX}{token.name}", body.override_reason)
        return Opened(incident=result.incident, action=result.action)

    return idem.run(token, 201, produce)


@router.get("/{incident_id}", summary="One incident with its timeline", responses=NOT_FOUND)
def get_(incident_id: IncidentId, rt: RuntimeDep, _token: ReadToken) -> IncidentDetail:
    incident = get_incident(rt, incident_id)
    return IncidentDetail(
        incident=incident, timeline=timeline(rt, incident_id), attention=flags(rt, incident)
    )


@router.patch(
    "/{incident_id}",
    summary="Change severity, title, components or impact mid-incident (recorded with who and why)",
    responses={**NOT_FOUND, **CONFLICT},
)
async def change_(
    incident_id: IncidentId, body: IncidentChange, rt: RuntimeDep, token: PublishToken
) -> Incident:
    return await run_in_threadpool(
        lambda: change_incident(
            rt,
            incident_id,
            of_token(token, API_PREFIX),
            reason=body.reason,
            severity=body.severity,
            title=body.title,
            components=body.components,
            impact=body.impact,
            override_reason=body.override_reason,
        )
    )


@router.put(
    "/{incident_id}/data-facts",
    summary="Give a security incident's data facts (each given replaces the last; an incident becomes a "
    "security incident)",
    responses={**NOT_FOUND, **CONFLICT},
)
async def data_facts_(
    incident_id: IncidentId, body: DataFacts, rt: RuntimeDep, token: PublishToken
) -> Incident:
    return await run_in_threadpool(
        lambda: set_data_facts(rt, incident_id, body, of_token(token, API_PREFIX).name)
    )


@router.post(
    "/{incident_id}/first-notice",
    summary="Send the severity's pre-approved first notice now (no approval needed)",
    responses={**NOT_FOUND, **CONFLICT},
)
async def first_notice_(
    incident_id: IncidentId,
    rt: RuntimeDep,
    token: PublishToken,
    queue: QueueDep,
    body: FirstNoticeRequest | None = None,
) -> FirstNoticeOut:
    reason = body.override_reason if body else None
    sent = await run_in_threadpool(
        lambda: send_first_notice(rt, incident_id, of_token(token, API_PREFIX), queue, reason)
    )
    return FirstNoticeOut(update=sent.update, created=sent.created)


@router.post(
    "/{incident_id}/status",
    summary="Change the incident's status by hand (no update is published); resolved tells everyone told",
    responses={**NOT_FOUND, **CONFLICT},
)
async def change_status_(
    incident_id: IncidentId, body: StatusChange, rt: RuntimeDep, token: PublishToken, queue: QueueDep
) -> Incident:
    if body.status is IncidentStatus.RESOLVED:
        done = await run_in_threadpool(
            lambda: resolve(
                rt,
                incident_id,
                of_token(token, API_PREFIX),
                queue,
                reason=body.reason,
                force=body.force,
                message=body.message,
            )
        )
        return done.incident
    if body.message is not None:
        raise InvalidInput("message: only a resolution carries a text here; publish an update to say more")
    return await run_in_threadpool(
        change_status, rt, incident_id, body.status, f"{API_PREFIX}{token.name}", body.reason, body.force
    )


@router.post(
    "/{incident_id}/resolve",
    summary="Resolve: the resolution goes to everyone told about the incident, and the status page",
    responses={**NOT_FOUND, **CONFLICT},
)
async def resolve_(
    incident_id: IncidentId, body: ResolveRequest, rt: RuntimeDep, token: PublishToken, queue: QueueDep
) -> Resolved:
    done = await run_in_threadpool(
        lambda: resolve(
            rt,
            incident_id,
            of_token(token, API_PREFIX),
            queue,
            reason=body.reason,
            force=body.force,
            message=body.message,
            override_reason=body.override_reason,
        )
    )
    return Resolved(incident=done.incident, update=done.update)
