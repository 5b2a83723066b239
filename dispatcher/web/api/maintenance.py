"""``/maintenance``: planned windows, announced, rescheduled, extended, finished or cancelled; each change
is a notice to the window's audience."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, ConfigDict, Field, field_validator
from starlette.concurrency import run_in_threadpool

from dispatcher.access.identity import API_PREFIX, of_token
from dispatcher.comms.maintenance import (
    MaintenanceDraft,
    cancel_maintenance,
    extend_maintenance,
    finish_maintenance,
    get_maintenance,
    list_maintenance,
    reschedule_maintenance,
    schedule_maintenance,
)
from dispatcher.domain.models import Incident
from dispatcher.domain.written_time import WrittenTime
from dispatcher.web.api.auth import PublishToken, ReadToken, RuntimeDep
from dispatcher.web.api.problems import AUTH_PROBLEMS, CONFLICT, NOT_FOUND
from dispatcher.web.api.work import QueueDep

router = APIRouter(prefix="/maintenance", tags=["maintenance"], responses=AUTH_PROBLEMS)

MaintenanceId = Annotated[int, Path(ge=1, le=2**31 - 1, description="Maintenance id.")]


def _aware(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        raise ValueError("give a time zone (e.g. 2026-11-26T02:00:00Z)")
    return value


class Words(BaseModel):
    """What a person may say with a notice; the guardrails check it."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    message: str | None = Field(default=None, min_length=1, max_length=3000, description="Your own words.")
    override_reason: str | None = Field(default=None, max_length=1000)


class Reschedule(Words):
    starts_at: WrittenTime
    ends_at: WrittenTime

    _times = field_validator("starts_at", "ends_at")(_aware)


class Extend(Words):
    ends_at: WrittenTime = Field(description="The new end, after the window's current end.")

    _times = field_validator("ends_at")(_aware)


@router.get("", summary="Maintenance windows, the latest start first")
def list_(
    rt: RuntimeDep,
    _token: ReadToken,
    all_: Annotated[bool, Query(alias="all", description="Also completed and cancelled windows.")] = False,
) -> list[Incident]:
    return list_maintenance(rt, include_finished=all_)


@router.post("", status_code=201, summary="Schedule a window and announce it now", responses=CONFLICT)
async def schedule_(body: MaintenanceDraft, rt: RuntimeDep, token: PublishToken, queue: QueueDep) -> Incident:
    who = of_token(token, API_PREFIX)
    return await run_in_threadpool(lambda: schedule_maintenance(rt, queue, body, who))


@router.get("/{maintenance_id}", summary="One maintenance window", responses=NOT_FOUND)
def get_(maintenance_id: MaintenanceId, rt: RuntimeDep, _token: ReadToken) -> Incident:
    return get_maintenance(rt, maintenance_id)


@router.post(
    "/{maintenance_id}/reschedule",
    summary="Move a window that has not started; its audience is told",
    responses={**NOT_FOUND, **CONFLICT},
)
async def reschedule_(
    maintenance_id: MaintenanceId, body: Reschedule, rt: RuntimeDep, token: PublishToken, queue: QueueDep
) -> Incident:
    who = of_token(token, API_PREFIX)
    return await run_in_threadpool(
        lambda: reschedule_maintenance(
            rt, queue, maintenance_id, body.starts_at, body.ends_at, who, body.message, body.override_reason
        )
    )


@router.post(
    "/{maintenance_id}/extend",
    summary="Make a window end later (also while it overruns); its audience is told",
    responses={**NOT_FOUND, **CONFLICT},
)
async def extend_(
    maintenance_id: MaintenanceId, body: Extend, rt: RuntimeDep, token: PublishToken, queue: QueueDep
) -> Incident:
    who = of_token(token, API_PREFIX)
    return await run_in_threadpool(
        lambda: extend_maintenance(
            rt, queue, maintenance_id, body.ends_at, who, body.message, body.override_reason
        )
    )


@router.post(
    "/{maintenance_id}/finish",
    summary="Call a running window complete now; its audience is told",
    responses={**NOT_FOUND, **CONFLICT},
)
async def finish_(
    maintenance_id: MaintenanceId,
    rt: RuntimeDep,
    token: PublishToken,
    queue: QueueDep,
    body: Words | None = None,
) -> Incident:
    who = of_token(token, API_PREFIX)
    words = body or Words()
    return await run_in_threadpool(
        lambda: finish_maintenance(rt, queue, maintenance_id, who, words.message, words.override_reason)
    )


@router.post(
    "/{maintenance_id}/cancel",
    summary="Call off a window that has not started; its audience is told",
    responses={**NOT_FOUND, **CONFLICT},
)
async def cancel_(
    maintenance_id: MaintenanceId, rt: RuntimeDep, token: PublishToken, queue: QueueDep
) -> Incident:
    who = of_token(token, API_PREFIX)
    return await run_in_threadpool(lambda: cancel_maintenance(rt, queue, maintenance_id, who))
