"""``/drafts``: drafts of updates, so one person can prepare what another sends."""

from __future__ import annotations

import contextlib
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response
from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.json_schema import SkipJsonSchema

from channels.base import ChannelKind
from dispatcher.comms.drafts import (
    discard_draft,
    edit_draft,
    get_draft,
    list_drafts,
    publish_draft,
    save_draft,
)
from dispatcher.domain.crisis import ImpactStatement
from dispatcher.domain.drafts import Draft, DraftContent, DraftState
from dispatcher.domain.durations import PATTERN as DURATION_PATTERN
from dispatcher.domain.durations import DurationTooLong, parse_duration
from dispatcher.domain.errors import InvalidInput
from dispatcher.domain.models import AUDIENCE_NAME_PATTERN, ComponentImpact, IncidentStatus
from dispatcher.domain.update_texts import LocaleText
from dispatcher.web.api.auth import PublishToken, ReadToken, RuntimeDep
from dispatcher.web.api.idempotency import IdempotencyDep
from dispatcher.web.api.problems import AUTH_PROBLEMS, CONFLICT, NOT_FOUND
from dispatcher.web.api.updates import PublishedOut, _finding
from dispatcher.web.api.work import QueueDep

router = APIRouter(tags=["drafts"], responses=AUTH_PROBLEMS)

IncidentId = Annotated[int, Path(ge=1, le=2**31 - 1, description="Incident id.")]
DraftId = Annotated[int, Path(ge=1, le=2**31 - 1, description="Draft id.")]


def _duration(value: str | None) -> str | None:
    if value is not None:
        # Well formed but too long is refused where it is used, as a 409 (the description's pattern
        # cannot count days).
        with contextlib.suppress(DurationTooLong):
            parse_duration(value)
    return value


class DraftFields(BaseModel):
    """What a draft may say. Fields a draft always has (message, status, audience) take no null: an
    edit leaves out what it does not change."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    message: str | SkipJsonSchema[None] = Field(default=None, min_length=1, max_length=4000)
    status: IncidentStatus | SkipJsonSchema[None] = None
    texts: dict[str, LocaleText] | None = Field(default=None, description="As for publishing an update.")
    next_update_in: str | None = Field(
        default=None,
        max_length=20,
        json_schema_extra={"pattern": DURATION_PATTERN},
        description="The promise, counted from when it is sent, with its unit: 30m, 1h (null: none).",
    )
    audience: str | SkipJsonSchema[None] = Field(
        default=None,
        max_length=50,
        pattern=AUDIENCE_NAME_PATTERN.pattern,
        json_schema_extra={"pattern": AUDIENCE_NAME_PATTERN.pattern},  # pydantic leaves it out here
        description="public, internal or a segment name.",
    )
    channels: list[ChannelKind] | None = None
    internal_note: str | None = Field(default=None, max_length=4000)
    impact: dict[str, ComponentImpact] | None = Field(
        default=None, description="Component name -> impact, as the update will say it."
    )
    impact_statement: ImpactStatement | None = Field(
        default=None,
        description="Who is affected, what does not work, since when, what to do meanwhile, as the update "
        "will say it (null: none).",
    )
    signer: str | None = Field(
        default=None,
        max_length=50,
        description="A signatory's short name in the policy (a senior voice); empty or null: no signer.",
    )
    report_by: datetime | None = Field(
        default=None,
        description="Only on a resolution: the post-incident report is promised by this time, with its "
        "zone, in the future (null: none; the severity's report_within applies when it is sent).",
    )

    @field_validator("next_update_in")
    @classmethod
    def _valid_duration(cls, value: str | None) -> str | None:
        return _duration(value)

    @field_validator("message", "status", "audience", mode="before")
    @classmethod
    def _not_null(cls, value: object) -> object:
        if value is None:
            raise ValueError("a draft always has one: leave the field out to keep it as it is")
        return value

    def changes(self) -> dict[str, Any]:
        given = {name: getattr(self, name) for name in self.model_fields_set}
        if "next_update_in" in given and given["next_update_in"] is not None:
            try:
                given["next_update_in"] = parse_duration(given["next_update_in"])
            except DurationTooLong as exc:
                raise InvalidInput(f"next_update_in: {exc}") from None
        return given


class NewDraft(DraftFields):
    message: str = Field(min_length=1, max_length=4000)
    status: IncidentStatus


class DraftEdit(DraftFields):
    version: int | None = Field(default=None, ge=1, description="Refused (409) if the draft changed since.")

    def changes(self) -> dict[str, Any]:
        return {k: v for k, v in super().changes().items() if k != "version"}


class SendDraft(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    version: int | None = Field(default=None, ge=1, description="Refused (409) if the draft changed since.")
    override_reason: str | None = Field(default=None, max_length=1000)


@router.post(
    "/incidents/{incident_id}/drafts",
    status_code=201,
    summary="Save a draft of an update; nothing is sent",
    responses=NOT_FOUND,
)
def save_(incident_id: IncidentId, body: NewDraft, rt: RuntimeDep, token: PublishToken) -> Draft:
    values = {k: v for k, v in body.changes().items() if v is not None}
    return save_draft(rt, incident_id, DraftContent.model_validate(values), f"api:{token.name}")


@router.get("/drafts", summary="Drafts, newest first")
def list_(
    rt: RuntimeDep,
    _token: ReadToken,
    incident_id: Annotated[int | None, Query(ge=1, le=2**31 - 1, description="Only this incident's.")] = None,
    state: Annotated[DraftState | None, Query(description="Default: open drafts only.")] = DraftState.OPEN,
) -> list[Draft]:
    return list_drafts(rt, incident_id, state)


@router.get("/drafts/{draft_id}", summary="One draft", responses=NOT_FOUND)
def get_(draft_id: DraftId, rt: RuntimeDep, _token: ReadToken) -> Draft:
    return get_draft(rt, draft_id)


@router.patch(
    "/drafts/{draft_id}",
    summary="Edit an open draft (give `version` to refuse a conflicting edit)",
    responses={**NOT_FOUND, **CONFLICT},
)
def edit_(draft_id: DraftId, body: DraftEdit, rt: RuntimeDep, token: PublishToken) -> Draft:
    return edit_draft(rt, draft_id, body.changes(), f"api:{token.name}", body.version)


@router.delete(
    "/drafts/{draft_id}",
    summary="Discard an open draft",
    responses={**NOT_FOUND, **CONFLICT},
)
def discard_(
    draft_id: DraftId,
    rt: RuntimeDep,
    token: PublishToken,
    version: Annotated[int | None, Query(ge=1, le=2**31 - 1, description="Refused if changed since.")] = None,
) -> Draft:
    return discard_draft(rt, draft_id, f"api:{token.name}", version)


@router.post(
    "/drafts/{draft_id}/publish",
    status_code=201,
    response_model=PublishedOut,
    summary="Publish a draft as an update written by this token (guardrails and approval apply)",
    responses={**NOT_FOUND, **CONFLICT},
)
def publish_(
    draft_id: DraftId,
    rt: RuntimeDep,
    token: PublishToken,
    idem: IdempotencyDep,
    queue: QueueDep,
    body: SendDraft | None = None,
) -> Response:
    send = body or SendDraft()

    def produce() -> PublishedOut:
        result = publish_draft(
            rt,
            draft_id,
            queue,
            f"api:{token.name}",
            publisher_token_id=token.id,
            version=send.version,
            override_reason=send.override_reason,
        )
        return PublishedOut(update=result.update, findings=[_finding(f) for f in result.findings])

    return idem.run(token, 201, produce)
