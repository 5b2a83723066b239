"""``/incidents/{id}/report`` (a resolved incident's post-incident report: publish it, read it) and
``/incidents/{id}/amends`` (an offer to the customers it affected, with their own codes)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path
from pydantic import BaseModel, ConfigDict, Field, model_validator
from starlette.concurrency import run_in_threadpool

from dispatcher.access.identity import API_PREFIX, of_token
from dispatcher.comms.amends import read_codes, send_amends
from dispatcher.comms.reports import PublishedReport, get_report, publish_report
from dispatcher.domain.crisis import PostIncidentReport, parse_report_markdown
from dispatcher.domain.errors import InvalidInput
from dispatcher.domain.models import Update
from dispatcher.web.api.auth import PublishToken, ReadToken, RuntimeDep
from dispatcher.web.api.problems import AUTH_PROBLEMS, CONFLICT, NOT_FOUND
from dispatcher.web.api.work import QueueDep

router = APIRouter(prefix="/incidents", tags=["incidents"], responses=AUTH_PROBLEMS)

IncidentId = Annotated[int, Path(ge=1, le=2**31 - 1, description="Incident id.")]


ONE_FORM: dict[str, Any] = {
    "description": "The report either as report (its sections) or as markdown, not both.",
    "oneOf": [
        {"required": ["report"], "properties": {"report": {"type": "object"}}},
        {"required": ["markdown"], "properties": {"markdown": {"type": "string"}}},
    ],
}
"""Exactly one of the two forms given (not null): the rule ``_one_form`` enforces, stated in the
description so a body with neither or both is described as invalid, as the server answers (422)."""


class ReportRequest(BaseModel):
    """The report as its five sections, or as Markdown (``## Summary`` … ``## What we will do``)."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra=lambda schema: schema.setdefault("allOf", []).append(ONE_FORM)
    )

    report: PostIncidentReport | None = None
    markdown: str | None = Field(
        default=None,
        min_length=1,
        max_length=40_000,
        description="## Summary, ## Impact, ## Root cause, ## What we did, ## What we will do.",
    )
    override_reason: str | None = Field(default=None, max_length=1000)

    @model_validator(mode="after")
    def _one_form(self) -> ReportRequest:
        if (self.report is None) == (self.markdown is None):
            raise ValueError("give the report either as report (its sections) or as markdown, not both")
        return self

    def parsed(self) -> PostIncidentReport:
        if self.report is not None:
            return self.report
        assert self.markdown is not None
        return parse_report_markdown(self.markdown)


class ReportOut(BaseModel):
    incident_id: int
    report: PostIncidentReport
    published_at: datetime
    author: str | None
    link: str | None = Field(description="Where the status page shows it (None without a status page).")
    notice_update_id: int | None = Field(description="The notice that went to everyone told.")
    told: int | None = Field(default=None, description="Addresses the notice was written for.")
    on_time: bool | None = Field(default=None, description="Published by its deadline (None: none owed).")


def _out(found: PublishedReport, fresh: bool) -> ReportOut:
    return ReportOut(
        incident_id=found.incident_id,
        report=found.report,
        published_at=found.published_at,
        author=found.author,
        link=found.link,
        notice_update_id=found.notice_update_id,
        told=found.told if fresh else None,
        on_time=found.on_time if fresh else None,
    )


@router.post(
    "/{incident_id}/report",
    status_code=201,
    summary="Publish a resolved incident's post-incident report: the status page shows it, everyone told "
    "gets a notice with its link",
    responses={**NOT_FOUND, **CONFLICT},
)
async def publish_report_(
    incident_id: IncidentId, body: ReportRequest, rt: RuntimeDep, token: PublishToken, queue: QueueDep
) -> ReportOut:
    who = of_token(token, API_PREFIX)

    def produce() -> ReportOut:
        try:
            report = body.parsed()
        except ValueError as exc:
            raise InvalidInput(f"markdown: {exc}") from None
        return _out(publish_report(rt, incident_id, report, who, queue, body.override_reason), fresh=True)

    return await run_in_threadpool(produce)


@router.get("/{incident_id}/report", summary="A post-incident report", responses=NOT_FOUND)
def get_report_(incident_id: IncidentId, rt: RuntimeDep, _token: ReadToken) -> ReportOut:
    return _out(get_report(rt, incident_id), fresh=False)


class AmendsRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    offer: str = Field(
        min_length=1, max_length=4000, description="The offer; {code} becomes each reader's code."
    )
    codes_csv: str | None = Field(
        default=None,
        max_length=5_000_000,
        description="CSV: a code column and one of subscriber (external id), email, phone.",
    )
    segment: str | None = Field(default=None, max_length=50, description="Only those told in this segment.")
    on_status_page: bool = Field(default=False, description="Also show it on the public status page.")
    override_reason: str | None = Field(default=None, max_length=1000)


class AmendsOut(BaseModel):
    update: Update
    rows: int = Field(
        description="Ledger rows written (queued, and suppressed: opted out or without a code)."
    )
    without_code: int = Field(description="Subscribers told about the incident who had no code: not sent.")


@router.post(
    "/{incident_id}/amends",
    status_code=201,
    summary="Make amends after a resolved incident: an offer with per-recipient codes to the customers told",
    responses={**NOT_FOUND, **CONFLICT},
)
async def amends_(
    incident_id: IncidentId, body: AmendsRequest, rt: RuntimeDep, token: PublishToken, queue: QueueDep
) -> AmendsOut:
    who = of_token(token, API_PREFIX)

    def produce() -> AmendsOut:
        codes = read_codes(rt, body.codes_csv) if body.codes_csv else None
        done = send_amends(
            rt,
            incident_id,
            body.offer,
            who,
            queue,
            codes=codes,
            segment=body.segment,
            on_status_page=body.on_status_page,
            override_reason=body.override_reason,
        )
        return AmendsOut(update=done.update, rows=done.rows, without_code=done.without_code)

    return await run_in_threadpool(produce)
