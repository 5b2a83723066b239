"""Updates: publish, preview, read, per-channel status report, who has not received one."""

from __future__ import annotations

import contextlib
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Response
from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema, field_validator
from sqlalchemy import select

from channels.base import ChannelKind
from dispatcher.access.identity import API_PREFIX, of_token
from dispatcher.access.tokens import ApiToken
from dispatcher.comms.approval import approve, pending_approvals, reject
from dispatcher.comms.incidents import get_incident
from dispatcher.comms.message_templates import draft_from_template
from dispatcher.comms.preview import ChannelPreview, preview_draft
from dispatcher.comms.publish import get_update, publish
from dispatcher.domain.crisis import ImpactStatement
from dispatcher.domain.durations import PATTERN as DURATION_PATTERN
from dispatcher.domain.durations import DurationTooLong, parse_duration
from dispatcher.domain.errors import InvalidInput
from dispatcher.domain.guardrail_rules import Finding
from dispatcher.domain.message_templates import NAME_PATTERN as TEMPLATE_NAME
from dispatcher.domain.models import (
    AUDIENCE_NAME_PATTERN,
    ComponentImpact,
    IncidentStatus,
    Update,
    UpdateDraft,
)
from dispatcher.domain.quiet_hours import check_timezone
from dispatcher.domain.update_texts import LocaleText
from dispatcher.domain.written_time import WrittenTime
from dispatcher.engine.runtime import Runtime
from dispatcher.reporting.ledger_queries import missing
from dispatcher.reporting.status import report
from dispatcher.store.queries import update_from_row
from dispatcher.store.schema import updates
from dispatcher.web.api.auth import PublishToken, ReadToken, RuntimeDep
from dispatcher.web.api.idempotency import IdempotencyDep
from dispatcher.web.api.problems import AUTH_PROBLEMS, CONFLICT, NOT_FOUND
from dispatcher.web.api.subscribers import ZONES
from dispatcher.web.api.work import QueueDep

router = APIRouter(tags=["updates"], responses=AUTH_PROBLEMS)

IncidentId = Annotated[int, Path(ge=1, le=2**31 - 1, description="Incident id.")]
UpdateId = Annotated[int, Path(ge=1, le=2**31 - 1, description="Update id.")]


def _duration(value: str | None) -> timedelta | None:
    """The duration; one too long is refused naming the field (409: the form is right, the span is not
    one Tocsin holds a promise for)."""
    try:
        return None if value is None else parse_duration(value)
    except DurationTooLong as exc:
        raise InvalidInput(f"next_update_in: {exc}") from None


class UpdateText(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    status: IncidentStatus | None = Field(
        default=None, description="The incident's status as of this update (required without a template)."
    )
    message: str | None = Field(
        default=None,
        min_length=1,
        max_length=4000,
        description="The text in the default language (required without a template).",
    )
    texts: dict[str, LocaleText] | None = Field(
        default=None,
        description="Per locale (`fr`, `fr-CA`): `message` in that language, and `sms`, `social` (X) "
        "and `email` texts of its own; for the default language only those channel texts.",
    )
    template: str | None = Field(
        default=None,
        max_length=100,
        pattern=TEMPLATE_NAME.pattern,
        description="Write it from this message template (GET /templates).",
    )
    vars: dict[str, str] | None = Field(
        default=None, description="The template's values: `name`, or `name.fr` for one language."
    )
    next_update_at: WrittenTime | None = Field(default=None, description="Promise of the next update (UTC).")
    next_update_in: str | None = Field(
        default=None,
        max_length=20,
        json_schema_extra={"pattern": DURATION_PATTERN},
        description="Or as a duration from now, with its unit: 90s, 30m, 2h, 1h30m, 1d (a bare number is "
        "refused).",
    )

    @field_validator("next_update_in")
    @classmethod
    def _valid_duration(cls, value: str | None) -> str | None:
        if value is not None:
            # Well formed but too long is refused where it is used, as a 409 (see ``_duration``).
            with contextlib.suppress(DurationTooLong):
                parse_duration(value)
        return value

    @field_validator("next_update_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("give a time zone (e.g. 2026-01-01T14:30:00Z)")
        return value

    def next_at(self, rt: Runtime) -> datetime | None:
        given = _duration(self.next_update_in)
        return rt.clock.now() + given if given is not None else self.next_update_at


class DraftRequest(UpdateText):
    """What publishing and previewing share: the text, and who it is for on which channels."""

    audience: str = Field(
        default="public",
        max_length=50,
        pattern=AUDIENCE_NAME_PATTERN.pattern,
        description="public, internal or a segment name.",
    )
    channels: list[ChannelKind] | None = Field(default=None, description="Only these channels.")
    signer: str | None = Field(
        default=None,
        max_length=50,
        description="A signatory's short name in the policy (a senior voice); empty: no signer.",
    )
    impact_statement: ImpactStatement | None = Field(
        default=None,
        description="Who is affected, what does not work, since when, what to do meanwhile (every channel "
        "shows it; a major or critical first public update without one gets a warning).",
    )

    @field_validator("signer")
    @classmethod
    def _blank_is_no_signer(cls, value: str | None) -> str | None:
        """A form's empty signer field is no signer: the policy's names have no form a schema could
        state, so an empty one is read as not given rather than refused."""
        return value or None

    def draft(self, rt: Runtime, incident_id: int, token: ApiToken) -> UpdateDraft:
        more = {"audience": self.audience, "channels": self.channels, **self._more(token)}
        if self.template is not None:
            if "audience" not in self.model_fields_set:
                del more["audience"]  # the template's own
            return from_template(rt, incident_id, self, more)
        if self.message is None or self.status is None:
            missing = "message" if self.message is None else "status"
            raise InvalidInput(f"{missing}: required (or give a template)")
        return UpdateDraft(
            incident_id=incident_id,
            status=self.status,
            message=self.message,
            texts=self.texts,
            next_update_at=self.next_at(rt),
            **more,
        )

    def _more(self, token: ApiToken) -> dict[str, Any]:
        """The draft's other fields: the author is who the token proves, never a field of the body."""
        return {
            "author": f"{API_PREFIX}{token.name}",
            "author_token_id": token.id,
            "signer": self.signer,
            "impact_statement": self.impact_statement,
        }


NotAccepted = Annotated[str | None, WithJsonSchema({"type": "null"})]
"""A field refused with a message saying why (who acts is who the token proves): described as
null, the only value the server takes, so the description calls no refused request valid."""


def _not_accepted(name: str, value: object) -> None:
    if value is not None:
        raise ValueError(f"{name} is who the API token proves (api:<token name>); this field is not accepted")


def from_template(rt: Runtime, incident_id: int, body: DraftRequest, more: dict[str, Any]) -> UpdateDraft:
    """The draft a template gives, with what the body says laid over it."""
    assert body.template is not None
    base = draft_from_template(rt, incident_id, body.template, body.vars or {}, author=more.get("author"))
    changes: dict[str, Any] = {k: v for k, v in more.items() if v is not None}
    if body.message is not None:
        changes["message"] = body.message
    if body.status is not None:
        changes["status"] = body.status
    if body.next_update_at is not None or body.next_update_in is not None:
        changes["next_update_at"] = body.next_at(rt)
    if body.texts:
        texts = {loc: t.model_dump(exclude_none=True) for loc, t in (base.texts or {}).items()}
        for locale, text in body.texts.items():
            texts.setdefault(locale, {}).update(text.model_dump(exclude_none=True))
        changes["texts"] = texts
    return UpdateDraft.model_validate({**base.model_dump(), **changes})


class PublishRequest(DraftRequest):
    author: NotAccepted = Field(
        default=None, description="Not accepted: the author is the API token's identity (api:<name>)."
    )
    internal_note: str | None = Field(default=None, max_length=4000, description="For staff only.")
    override_reason: str | None = Field(default=None, max_length=1000)
    publish_at: WrittenTime | None = Field(default=None, description="Publish later, at this time (UTC).")
    impact: dict[str, ComponentImpact] | None = Field(
        default=None,
        max_length=50,
        description="Component → operational, degraded_performance, partial_outage or major_outage; "
        "the status page shows it.",
    )

    @field_validator("author")
    @classmethod
    def _no_author(cls, value: str | None) -> None:
        _not_accepted("the author", value)

    def _more(self, token: ApiToken) -> dict[str, Any]:
        return {
            **super()._more(token),
            "internal_note": self.internal_note,
            "override_reason": self.override_reason,
            "publish_at": self.publish_at,
            "impact": self.impact,
        }


class PreviewRequest(DraftRequest):
    locale: str = Field(default="en", pattern=r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8})*$")
    timezone: str | None = Field(
        default=None,
        max_length=60,
        json_schema_extra={"enum": ZONES},
        description="Times as a reader in this IANA zone reads them.",
    )

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str | None) -> str | None:
        return None if value is None else check_timezone(value)


class FindingOut(BaseModel):
    rule: str
    level: Literal["error", "warn"]
    message: str
    span: list[int] | None = Field(default=None, description="[start, end) of the problem in the message.")


class PublishedOut(BaseModel):
    update: Update = Field(description="state: pending (going out), pending_approval or scheduled.")
    findings: list[FindingOut] = Field(description="Guardrail warnings, and errors overridden with a reason.")


def _finding(f: Finding) -> FindingOut:
    return FindingOut(rule=f.rule, level=f.level, message=f.message, span=list(f.span) if f.span else None)


class ChannelPreviewOut(BaseModel):
    channel: ChannelKind
    subject: str
    text: str
    json_body: str | None = None
    measure: str = Field(description="Length in the channel's terms: SMS segments, X weighted length…")
    audience_size: int = Field(description="Contact points owed it (broadcast channels: posts).")
    shortened: bool = Field(default=False, description="The body was cut to fit the channel's budget.")
    language_fallback: bool = Field(
        default=False, description="Readers of this locale get the default language's text, marked."
    )


class LocalePreviewOut(BaseModel):
    locale: str
    fallback: bool = Field(description="No text in this language: its readers get the default one, marked.")
    channels: list[ChannelPreviewOut]


class PreviewOut(BaseModel):
    channels: list[ChannelPreviewOut]
    locales: list[LocalePreviewOut] = Field(
        default_factory=list, description="The update in every other language it has or subscribers read."
    )
    findings: list[FindingOut] = Field(description="Guardrail findings; errors block publishing.")
    blocked: bool = Field(description="Publishing would be refused unless given an override_reason.")


class ChannelStatusOut(BaseModel):
    channel: ChannelKind
    counts: dict[str, int] = Field(description="Deliveries per state.")
    owed: int
    total: int


class ProviderUse(BaseModel):
    channel: ChannelKind
    provider: str
    sent: int


class StatusReport(BaseModel):
    update: Update
    owed: int = Field(description="Deliveries still queued or sending.")
    channels: list[ChannelStatusOut]
    providers: list[ProviderUse]


class MissingOut(BaseModel):
    id: int
    update_id: int
    channel: ChannelKind
    address: str
    state: str
    reason: str = Field(description="failed, undelivered, suppressed, superseded, queued or sending.")
    detail: str
    superseded_by: int | None = None
    attempts: int
    provider: str | None = None
    provider_status: str | None = None
    last_error: str | None = None


class MissingReportOut(BaseModel):
    update_id: int
    fanned_out: bool = Field(description="False while delivery rows are still being written.")
    counts: dict[str, int]
    missing: list[MissingOut]


@router.post(
    "/incidents/{incident_id}/updates",
    status_code=201,
    response_model=PublishedOut,
    summary="Publish an update to every channel its audience uses; Idempotency-Key supported",
    responses={**NOT_FOUND, **CONFLICT},
)
def publish_(
    incident_id: IncidentId,
    body: PublishRequest,
    rt: RuntimeDep,
    token: PublishToken,
    idem: IdempotencyDep,
    queue: QueueDep,
) -> Response:
    def produce() -> PublishedOut:
        result = publish(rt, body.draft(rt, incident_id, token), queue)
        return PublishedOut(update=result.update, findings=[_finding(f) for f in result.findings])

    return idem.run(token, 201, produce)


@router.get(
    "/incidents/{incident_id}/updates", summary="An incident's updates, oldest first", responses=NOT_FOUND
)
def list_updates(incident_id: IncidentId, rt: RuntimeDep, _token: ReadToken) -> list[Update]:
    get_incident(rt, incident_id)
    with rt.engine.connect() as conn:
        rows = conn.execute(
            select(updates).where(updates.c.incident_id == incident_id).order_by(updates.c.id)
        ).mappings()
        return [update_from_row(r) for r in rows]


@router.post(
    "/incidents/{incident_id}/preview",
    summary="Render an update for every channel, with audience sizes and guardrail findings; sends nothing",
    responses=NOT_FOUND,
)
def preview_(
    incident_id: IncidentId, body: PreviewRequest, rt: RuntimeDep, token: PublishToken
) -> PreviewOut:
    result = preview_draft(rt, body.draft(rt, incident_id, token), body.locale, body.timezone)
    return PreviewOut(
        channels=[_channel_out(p) for p in result.channels],
        locales=[
            LocalePreviewOut(
                locale=loc.locale, fallback=loc.fallback, channels=[_channel_out(p) for p in loc.channels]
            )
            for loc in result.locales
        ],
        findings=[_finding(f) for f in result.findings],
        blocked=result.blocked,
    )


def _channel_out(p: ChannelPreview) -> ChannelPreviewOut:
    return ChannelPreviewOut(
        channel=p.channel,
        subject=p.message.subject,
        text=p.message.text,
        json_body=p.message.json_body,
        measure=p.measure,
        audience_size=p.audience_size,
        shortened=p.shortened,
        language_fallback=p.language_fallback,
    )


@router.get("/updates/{update_id}", summary="One update", responses=NOT_FOUND)
def get_(update_id: UpdateId, rt: RuntimeDep, _token: ReadToken) -> Update:
    return get_update(rt, update_id)


@router.get(
    "/updates/{update_id}/status",
    summary="What the update owes and has sent, per channel",
    responses=NOT_FOUND,
)
def status_(update_id: UpdateId, rt: RuntimeDep, _token: ReadToken) -> StatusReport:
    result = report(rt, update_id)
    return StatusReport(
        update=result.update,
        owed=result.owed,
        channels=[
            ChannelStatusOut(
                channel=c.channel,
                counts={state.value: n for state, n in c.counts.items()},
                owed=c.owed,
                total=c.total,
            )
            for c in result.channels
        ],
        providers=[
            ProviderUse(channel=ChannelKind(channel), provider=provider, sent=n)
            for (channel, provider), n in sorted(result.providers.items())
        ],
    )


@router.get(
    "/updates/{update_id}/missing",
    summary="Who has not received the update, and why",
    responses=NOT_FOUND,
)
def missing_(
    update_id: UpdateId,
    rt: RuntimeDep,
    _token: ReadToken,
    channel: Annotated[list[ChannelKind] | None, Query(description="Only these channels.")] = None,
) -> MissingReportOut:
    result = missing(rt, update_id, channel or ())
    return MissingReportOut(
        update_id=result.update_id,
        fanned_out=result.fanned_out,
        counts={reason.value: n for reason, n in result.counts.items()},
        missing=[
            MissingOut(
                id=m.delivery.id,
                update_id=m.delivery.update_id,
                channel=m.delivery.channel,
                address=m.delivery.address,
                state=m.delivery.state.value,
                reason=m.reason.value,
                detail=m.detail,
                superseded_by=m.superseded_by,
                attempts=m.delivery.attempts,
                provider=m.delivery.provider,
                provider_status=m.delivery.provider_status,
                last_error=m.delivery.last_error,
            )
            for m in result.rows
        ],
    )


class ApproveRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    approver: NotAccepted = Field(
        default=None, description="Not accepted: the approver is the API token's identity (api:<name>)."
    )

    @field_validator("approver")
    @classmethod
    def _no_approver(cls, value: str | None) -> None:
        _not_accepted("the approver", value)


class RejectRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    reason: str = Field(min_length=1, max_length=1000)
    rejected_by: NotAccepted = Field(
        default=None, description="Not accepted: who rejects is the API token's identity (api:<name>)."
    )

    @field_validator("rejected_by")
    @classmethod
    def _no_rejecter(cls, value: str | None) -> None:
        _not_accepted("who rejects", value)


@router.get("/approvals", summary="Updates waiting for a second person's approval, oldest first")
def approvals(rt: RuntimeDep, _token: ReadToken) -> list[Update]:
    return pending_approvals(rt)


@router.post(
    "/updates/{update_id}/approve",
    summary="Approve a waiting update and send it (the token's identity must not be its author's)",
    responses=NOT_FOUND,
)
def approve_(
    update_id: UpdateId,
    rt: RuntimeDep,
    token: PublishToken,
    queue: QueueDep,
    body: ApproveRequest | None = None,
) -> Update:
    return approve(rt, update_id, of_token(token, API_PREFIX), queue)


@router.post(
    "/updates/{update_id}/reject",
    summary="Reject a waiting or scheduled update: it is never sent",
    responses=NOT_FOUND,
)
def reject_(update_id: UpdateId, body: RejectRequest, rt: RuntimeDep, token: PublishToken) -> Update:
    return reject(rt, update_id, of_token(token, API_PREFIX), body.reason)
