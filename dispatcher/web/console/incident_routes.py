"""Incident pages: the list, opening one, its timeline, status changes, composing with a live preview,
sending."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from pydantic import ValidationError
from starlette.responses import Response

from channels.base import ChannelKind
from dispatcher.comms import lifecycle
from dispatcher.comms.attention import flags
from dispatcher.comms.changes import change_incident
from dispatcher.comms.closure import resolve
from dispatcher.comms.drafts import discard_draft, get_draft, list_drafts, publish_draft
from dispatcher.comms.first_word import send_first_notice
from dispatcher.comms.incidents import get_incident, list_incidents, open_incident
from dispatcher.comms.message_templates import library
from dispatcher.comms.preview import preview_channels
from dispatcher.comms.publish import publish
from dispatcher.comms.reports import PublishedReport, get_report
from dispatcher.domain.crisis import DATA_FACT_LABELS, ImpactStatement, report_time, since_time
from dispatcher.domain.durations import parse_duration
from dispatcher.domain.errors import NotFound, TocsinError
from dispatcher.domain.identity import Identity
from dispatcher.domain.models import (
    Audience,
    ComponentImpact,
    Incident,
    IncidentDraft,
    IncidentStatus,
    Severity,
    UpdateDraft,
)
from dispatcher.domain.texts import first_notice_text
from dispatcher.engine.runtime import Runtime
from dispatcher.web.console import queries
from dispatcher.web.console.access import (
    ConsoleRoute,
    Reader,
    Viewer,
    Writer,
)
from dispatcher.web.console.drafting import draft_preview
from dispatcher.web.console.identity import Scope
from dispatcher.web.console.pages import common_context, problem, see
from dispatcher.web.console.picking import (
    TEXT_FIELDS,
    Picked,
    compose_languages,
    form_texts,
    pick,
    save_form_draft,
    template_values,
    texts_of_form,
)
from dispatcher.web.console.sending import delivering
from dispatcher.web.console.views import page

router = APIRouter(route_class=ConsoleRoute)


@router.get("/incidents")
def incidents_page(who: Reader) -> Response:
    return page(
        "incidents.html",
        **common_context(who, incidents=list_incidents(who.rt, 100), severities=list(Severity)),
    )


@router.post("/incidents")
def open_incident_action(
    who: Writer,
    title: Annotated[str, Form()] = "",
    severity: Annotated[str, Form()] = Severity.MAJOR.value,
    components: Annotated[str, Form()] = "",
) -> Response:
    who.require(Scope.PUBLISH)
    try:
        draft = IncidentDraft.model_validate(
            {
                "title": title,
                "severity": severity,
                "components": components.split(","),
                "owner": who.session.actor,
            }
        )
        incident = open_incident(who.rt, draft)
    except (TocsinError, ValidationError) as exc:
        return page(
            "incidents.html",
            status_code=400,
            **common_context(
                who,
                incidents=list_incidents(who.rt, 100),
                severities=list(Severity),
                error=problem(exc),
                form={"title": title, "severity": severity, "components": components},
            ),
        )
    return see(f"/incidents/{incident.id}")


def _cadence(rt: Runtime, incident: Incident) -> str:
    """The policy's promised interval for this severity, as the compose form's default (``30m``)."""
    try:
        cadence = rt.policy.policy.for_severity(incident.severity).cadence
    except TocsinError:
        return ""
    minutes = int(cadence.total_seconds() // 60)
    return f"{minutes // 60}h" if minutes and minutes % 60 == 0 else f"{minutes}m" if minutes else ""


def _policy_channels(rt: Runtime, incident: Incident) -> list[ChannelKind]:
    """The channels a public update goes out on under the severity policy (ticked by default)."""
    probe = UpdateDraft(incident_id=incident.id, status=incident.status, message="-")
    return preview_channels(rt, incident, probe)


def _incident_page(
    who: Viewer,
    incident_id: int,
    status_code: int = 200,
    picked: Picked | None = None,
    **extra: Any,
) -> Response:
    rt = who.rt
    incident = get_incident(rt, incident_id)
    compose: dict[str, Any] = {
        "internal_note": "",
        "impact": [],
        "message": "",
        "status": incident.status.value,
        "next_update_in": _cadence(rt, incident),
        "audience": Audience.PUBLIC.value,
        "channels": [c.value for c in _policy_channels(rt, incident)],
        "override_reason": "",
        "texts": {},
        "template": "",
        "template_vars": "",
        "draft_id": None,
        "draft_version": None,
        "affects": "",
        "not_working": "",
        "since": "",
        "workaround": "",
        "signer": "",
        "report_by": "",
    }
    compose.update((picked.compose if picked else None) or {})
    compose.update(extra.pop("compose", {}))
    promise = rt.clock.now() + rt.policy.policy.for_severity(incident.severity).cadence
    return page(
        "incident.html",
        status_code=status_code,
        **common_context(
            who,
            incident=incident,
            flags=flags(rt, incident),
            first_notice=first_notice_text(rt.policy.policy, incident, "en", promise),
            timeline=list(reversed(lifecycle.timeline(rt, incident_id))),
            updates=queries.incident_updates(rt, incident_id),
            statuses=list(IncidentStatus),
            severities=list(Severity),
            impacts=list(ComponentImpact),
            channels=rt.settings.enabled_channels(),
            audiences=["public", "internal", *sorted(rt.policy.policy.segments)],
            compose=compose,
            languages=compose_languages(rt, compose["texts"]),
            text_fields=TEXT_FIELDS,
            templates=sorted(library(rt).templates.items()),
            picked=picked,
            drafts=list_drafts(rt, incident_id),
            signatories={k: f"{v.name}, {v.role}" for k, v in rt.policy.policy.signatories.items()},
            data_fact_labels=DATA_FACT_LABELS,
            report=_report_of(rt, incident),
            **extra,
        ),
    )


def _report_of(rt: Runtime, incident: Incident) -> PublishedReport | None:
    if incident.status is not IncidentStatus.RESOLVED:
        return None
    try:
        return get_report(rt, incident.id)
    except NotFound:
        return None


@router.get("/incidents/{incident_id}")
def incident_page(who: Reader, incident_id: int, request: Request) -> Response:
    """The incident; ``?template=NAME`` (with ``var_<name>`` values) or ``?draft=ID`` fills the compose
    form from a message template or a saved draft."""
    try:
        picked = pick(who.rt, incident_id, request.query_params)
    except NotFound:
        raise
    except (TocsinError, ValidationError, ValueError) as exc:
        return _incident_page(who, incident_id, 400, error=problem(exc))
    return _incident_page(who, incident_id, picked=picked)


@router.post("/incidents/{incident_id}/status")
def change_status_action(
    who: Writer,
    incident_id: int,
    status: Annotated[str, Form()] = "",
    reason: Annotated[str, Form()] = "",
) -> Response:
    who.require(Scope.PUBLISH)
    try:
        if IncidentStatus(status) is IncidentStatus.RESOLVED:
            return _resolve(who, incident_id, reason, force=False, message="")
        lifecycle.change_status(
            who.rt, incident_id, IncidentStatus(status), who.session.actor, reason.strip() or None
        )
    except NotFound:
        raise
    except (TocsinError, ValueError) as exc:
        return _incident_page(who, incident_id, 400, error=problem(exc))
    return see(f"/incidents/{incident_id}")


def _resolve(who: Viewer, incident_id: int, reason: str, force: bool, message: str) -> Response:
    """Resolve and tell everyone told; the browser goes to the resolution's delivery progress."""
    done = delivering(
        who.rt,
        who.state.background,
        lambda queue: resolve(
            who.rt,
            incident_id,
            who.identity,
            queue,
            reason=reason.strip() or None,
            force=force,
            message=message.strip() or None,
        ),
    )
    return see(f"/updates/{done.update.id}")


@router.post("/incidents/{incident_id}/change")
def change_action(
    who: Writer,
    incident_id: int,
    reason: Annotated[str, Form()] = "",
    severity: Annotated[str, Form()] = "",
    title: Annotated[str, Form()] = "",
    components: Annotated[str, Form()] = "",
    override_reason: Annotated[str, Form()] = "",
) -> Response:
    """Change severity, title or components mid-incident; the policy applies at once."""
    who.require(Scope.PUBLISH)
    try:
        change_incident(
            who.rt,
            incident_id,
            who.identity,
            reason=reason,
            severity=Severity(severity) if severity else None,
            title=title.strip() or None,
            components=[c.strip() for c in components.split(",")] if components.strip() else None,
            override_reason=override_reason.strip() or None,
        )
    except NotFound:
        raise
    except (TocsinError, ValidationError, ValueError) as exc:
        return _incident_page(who, incident_id, 400, error=problem(exc))
    return see(f"/incidents/{incident_id}")


@router.post("/incidents/{incident_id}/first-notice")
def first_notice_action(who: Writer, incident_id: int) -> Response:
    """Send the severity's pre-approved first notice (no approval: the first word never waits)."""
    who.require(Scope.PUBLISH)
    try:
        sent = delivering(
            who.rt,
            who.state.background,
            lambda queue: send_first_notice(who.rt, incident_id, who.identity, queue),
        )
    except NotFound:
        raise
    except (TocsinError, ValueError) as exc:
        return _incident_page(who, incident_id, 400, error=problem(exc))
    return see(f"/updates/{sent.update.id}")


@router.post("/incidents/{incident_id}/resolve")
def resolve_action(
    who: Writer,
    incident_id: int,
    reason: Annotated[str, Form()] = "",
    force: Annotated[bool, Form()] = False,
    message: Annotated[str, Form()] = "",
) -> Response:
    """Resolve from the incident page: the resolution goes to everyone told about it."""
    who.require(Scope.PUBLISH)
    try:
        return _resolve(who, incident_id, reason, force, message)
    except NotFound:
        raise
    except (TocsinError, ValueError) as exc:
        return _incident_page(who, incident_id, 400, error=problem(exc))


@dataclass(frozen=True)
class ComposeForm:
    message: str
    status: str
    next_update_in: str
    audience: str
    channels: list[str]
    override_reason: str
    channels_ticked: bool
    """The form had its channel boxes (none ticked means none); without them the policy chooses."""
    internal_note: str = ""
    """For staff only: shown in staff's copy, never to customers."""
    impact: tuple[str, ...] = ()
    """``component=level`` for each component whose impact the author set."""
    texts: dict[str, dict[str, str]] = field(default_factory=dict)
    """``text_<locale>_<field>`` fields: other languages, and SMS, X and email texts."""
    template: str = ""
    template_vars: str = ""
    """The template's values, as JSON (to recognise a pre-approved template used as written)."""
    draft_id: int | None = None
    draft_version: int | None = None
    affects: str = ""
    not_working: str = ""
    since: str = ""
    workaround: str = ""
    signer: str = ""
    """A signatory's short name in the policy (empty: unsigned)."""
    report_by: str = ""
    """A resolution's "full report by": 2026-12-01, 2026-12-01T17:00Z or 5d (empty: the policy's)."""

    def values(self) -> dict[str, Any]:
        """The form as it was sent, to show it again with an error."""
        return {
            "message": self.message,
            "status": self.status,
            "next_update_in": self.next_update_in,
            "audience": self.audience,
            "channels": self.channels,
            "override_reason": self.override_reason,
            "internal_note": self.internal_note,
            "impact": list(self.impact),
            "texts": self.texts,
            "template": self.template,
            "template_vars": self.template_vars,
            "draft_id": self.draft_id,
            "draft_version": self.draft_version,
            "affects": self.affects,
            "not_working": self.not_working,
            "since": self.since,
            "workaround": self.workaround,
            "signer": self.signer,
            "report_by": self.report_by,
        }

    def statement(self, now: datetime) -> ImpactStatement | None:
        """The impact statement the form gives (None when it gives none)."""
        try:
            since = since_time(self.since, now) if self.since.strip() else None
        except ValueError as exc:
            raise ValueError(f"since: {exc}") from None
        given = ImpactStatement(
            who=self.affects or None,
            not_working=self.not_working or None,
            since=since,
            workaround=self.workaround or None,
        )
        return None if given.is_empty else given

    def report_time(self, now: datetime) -> datetime | None:
        """The report's promised time the form gives (None: the policy's default, or none)."""
        if not self.report_by.strip():
            return None
        try:
            return report_time(self.report_by, now)
        except ValueError as exc:
            raise ValueError(f"report_by: {exc}") from None

    def draft(self, rt: Runtime, incident: Incident, author: Identity) -> UpdateDraft:
        """The update this form describes; raises ``ValidationError``/``ValueError`` naming the field.

        Channels are left to the severity policy unless the author changed the ticked set."""
        next_at: datetime | None = None
        if self.next_update_in.strip():
            try:
                next_at = rt.clock.now() + parse_duration(self.next_update_in)
            except ValueError as exc:
                raise ValueError(f"next update in: {exc}") from None
        chosen = [ChannelKind(c) for c in self.channels]
        draft = UpdateDraft(
            incident_id=incident.id,
            status=IncidentStatus(self.status),
            message=self.message,
            next_update_at=next_at,
            audience=Audience(self.audience),
            author=author.name,
            author_token_id=author.token_id,
            override_reason=self.override_reason.strip() or None,
            internal_note=self.internal_note.strip() or None,
            impact=_impact(self.impact),
            texts=form_texts(self.texts) or None,
            template=self.template or None,
            template_vars=template_values(self.template_vars),
            impact_statement=self.statement(rt.clock.now()),
            signer=self.signer.strip() or None,
            report_by=self.report_time(rt.clock.now()),
        )
        if self.channels_ticked and set(chosen) != set(preview_channels(rt, incident, draft)):
            draft = draft.model_copy(update={"channels": chosen})
        return draft


def _impact(given: tuple[str, ...]) -> dict[str, ComponentImpact] | None:
    """``("checkout=partial_outage", "")`` from the impact selects (empty: left as it is)."""
    found = {}
    for item in given:
        name, _, level = item.partition("=")
        if name.strip() and level.strip():
            found[name.strip()] = ComponentImpact(level.strip())
    return found or None


async def compose_form(
    request: Request,
    message: Annotated[str, Form()] = "",
    status: Annotated[str, Form()] = IncidentStatus.INVESTIGATING.value,
    next_update_in: Annotated[str, Form()] = "",
    audience: Annotated[str, Form()] = Audience.PUBLIC.value,
    channel: Annotated[list[str] | None, Form()] = None,
    override_reason: Annotated[str, Form()] = "",
    channel_boxes: Annotated[str, Form()] = "",
    internal_note: Annotated[str, Form()] = "",
    impact: Annotated[list[str] | None, Form()] = None,
    template: Annotated[str, Form()] = "",
    template_vars: Annotated[str, Form()] = "",
    draft_id: Annotated[int | None, Form()] = None,
    draft_version: Annotated[int | None, Form()] = None,
    affects: Annotated[str, Form()] = "",
    not_working: Annotated[str, Form()] = "",
    since: Annotated[str, Form()] = "",
    workaround: Annotated[str, Form()] = "",
    signer: Annotated[str, Form()] = "",
    report_by: Annotated[str, Form()] = "",
) -> ComposeForm:
    form = await request.form()
    return ComposeForm(
        message,
        status,
        next_update_in,
        audience,
        channel or [],
        override_reason,
        bool(channel or channel_boxes),
        internal_note,
        tuple(impact or ()),
        texts_of_form({k: v for k, v in form.items() if isinstance(v, str)}),
        template,
        template_vars,
        draft_id,
        draft_version,
        affects,
        not_working,
        since,
        workaround,
        signer,
        report_by,
    )


Compose = Annotated[ComposeForm, Depends(compose_form)]


@router.post("/incidents/{incident_id}/preview")
def preview_fragment(who: Writer, incident_id: int, form: Compose) -> Response:
    """The live preview (htmx posts the compose form here as the author types)."""
    if not form.message.strip():
        return page("_preview.html", result=None, error=None, empty=True)
    try:
        draft = form.draft(who.rt, get_incident(who.rt, incident_id), who.identity)
        result = draft_preview(who.rt, draft)
    except (TocsinError, ValidationError, ValueError) as exc:
        return page("_preview.html", result=None, error=problem(exc), empty=False)
    return page("_preview.html", result=result, error=None, empty=False)


@router.post("/incidents/{incident_id}/updates")
def send_action(who: Writer, incident_id: int, form: Compose) -> Response:
    """Send what the form says; a draft opened in the form is saved as it stands, then published."""
    who.require(Scope.PUBLISH)
    rt, me = who.rt, who.identity
    try:
        draft = form.draft(rt, get_incident(rt, incident_id), me)
        if form.draft_id is not None:
            saved = save_form_draft(rt, incident_id, (form.draft_id, form.draft_version), draft, me.name)
            published = delivering(
                rt,
                who.state.background,
                lambda queue: publish_draft(
                    rt,
                    saved.id,
                    queue,
                    me.name,
                    publisher_token_id=me.token_id,
                    version=saved.version,
                    override_reason=draft.override_reason,
                ),
            )
        else:
            published = delivering(rt, who.state.background, lambda queue: publish(rt, draft, queue))
    except NotFound:
        raise
    except (TocsinError, ValidationError, ValueError) as exc:
        return _incident_page(who, incident_id, 400, error=problem(exc), compose=form.values())
    return see(f"/updates/{published.update.id}")


@router.post("/incidents/{incident_id}/drafts")
def save_draft_action(who: Writer, incident_id: int, form: Compose) -> Response:
    """Save the form as a draft (a new one, or the draft it was opened from) without sending anything."""
    who.require(Scope.PUBLISH)
    rt, me = who.rt, who.identity
    try:
        draft = form.draft(rt, get_incident(rt, incident_id), me)
        saved = save_form_draft(rt, incident_id, (form.draft_id, form.draft_version), draft, me.name)
    except NotFound:
        raise
    except (TocsinError, ValidationError, ValueError) as exc:
        return _incident_page(who, incident_id, 400, error=problem(exc), compose=form.values())
    return see(f"/incidents/{incident_id}?draft={saved.id}")


@router.post("/drafts/{draft_id}/discard")
def discard_draft_action(
    who: Writer, draft_id: int, version: Annotated[int | None, Form()] = None
) -> Response:
    who.require(Scope.PUBLISH)
    draft = get_draft(who.rt, draft_id)
    try:
        discard_draft(who.rt, draft_id, who.identity.name, version)
    except TocsinError as exc:
        return _incident_page(who, draft.incident_id, 409, error=problem(exc))
    return see(f"/incidents/{draft.incident_id}")
