"""Render an update for every channel without publishing it: each channel's text and length, how many
contact points would be owed it, and every guardrail finding.

The channels are the ones publishing would use (the severity policy's, as far as the installation
has them; no social post or status page for non-public audiences). The audience size counts the
contact points the fan-out would write a row for and send to: confirmed, not opted out, matching the
subscriber's channels, components and minimum severity and the audience (``dispatcher.domain.audiences``).
Broadcast channels count their targets (the social account, each chat room).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func

from channels.base import ChannelKind, Message
from channels.text.sms_segments import count_segments
from channels.text.x_text import weighted_length
from dispatcher.comms.guardrails import check_draft, errors
from dispatcher.comms.incidents import get_incident
from dispatcher.comms.publish import channels_for, signer_of
from dispatcher.domain.audiences import AudiencePass, audience_passes, check_audience
from dispatcher.domain.crisis import SECURITY, ImpactStatement
from dispatcher.domain.guardrail_rules import Finding
from dispatcher.domain.models import Audience, Incident, IncidentStatus, Severity, UpdateDraft
from dispatcher.engine.fanout import PREFERENCE_COLUMNS, audience_query, wants
from dispatcher.engine.messages import X_LIMIT, fit_for_channel
from dispatcher.engine.runtime import Runtime
from dispatcher.rendering.renderer import TEMPLATE_FILES, RenderContext
from dispatcher.store.schema import contact_points


@dataclass(frozen=True)
class ChannelPreview:
    channel: ChannelKind
    message: Message
    measure: str
    """How long it is in the channel's own terms: characters, SMS segments, X weighted length."""
    audience_size: int = 0
    """Contact points on this channel owed the update (broadcast channels: posts made)."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "channel": self.channel.value,
            "subject": self.message.subject,
            "text": self.message.text,
            "html": self.message.html,
            "json_body": self.message.json_body,
            "measure": self.measure,
            "audience_size": self.audience_size,
        }


@dataclass(frozen=True)
class PreviewResult:
    text: str
    """The update's text as written (the findings' spans point into it)."""
    channels: list[ChannelPreview] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)

    @property
    def blocked(self) -> bool:
        """Publishing it would be refused (error findings) unless overridden with a reason."""
        return bool(errors(self.findings))

    def as_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "channels": [c.as_dict() for c in self.channels],
            "findings": [f.as_dict() for f in self.findings],
            "blocked": self.blocked,
        }


def _measure(channel: ChannelKind, message: Message) -> str:
    if channel is ChannelKind.SMS:
        count = count_segments(message.text)
        return f"{count.segments} segment(s), {count.units} {count.encoding} units"
    if channel is ChannelKind.SOCIAL:
        return f"{weighted_length(message.text)}/{X_LIMIT} weighted"
    if channel is ChannelKind.WEBHOOK:
        return f"{len((message.json_body or '').encode())} bytes of JSON"
    return f"{len(message.text)} characters"


def preview_channels(rt: Runtime, incident: Incident, draft: UpdateDraft) -> list[ChannelKind]:
    """The channels publishing ``draft`` would use (``dispatcher.comms.publish.channels_for``)."""
    return channels_for(rt, draft, rt.policy.policy.for_severity(incident.severity))


def _owed_in_pass(
    rt: Runtime, channel: ChannelKind, audience: AudiencePass, severity: Severity, incident: Incident
) -> int:
    """Contact points of one audience pass owed an update on ``channel`` and not opted out: the fan-out's
    selection (``audience_query``, ``wants``), counted per distinct set of preferences so that no row
    is read one by one."""
    query = (
        audience_query((*PREFERENCE_COLUMNS, func.count().label("n")), channel, severity, audience)
        .where(contact_points.c.opted_out.is_(False))
        .group_by(*PREFERENCE_COLUMNS)
    )
    affected = set(incident.components)
    with rt.engine.connect() as conn:
        return sum(
            int(row.n) for row in conn.execute(query) if wants(row, channel, affected, audience.segment)
        )


def audience_size(rt: Runtime, channel: ChannelKind, incident: Incident, audience: Audience) -> int:
    """How many contact points on ``channel`` an update to ``incident`` for ``audience`` would reach."""
    if channel.is_broadcast:
        return len(rt.broadcast_targets(channel))
    severity = Severity(incident.severity)
    return sum(
        _owed_in_pass(rt, channel, p, severity, incident) for p in audience_passes(rt.policy.policy, audience)
    )


def _render(rt: Runtime, channel: ChannelKind, context: RenderContext, locale: str) -> Message:
    if channel not in TEMPLATE_FILES:  # the status site shows the text within its own pages
        return Message(channel, 0, context.incident_id, context.incident_title, context.message)
    return fit_for_channel(rt, channel, rt.renderer.render(channel, context, locale))


def preview_draft(rt: Runtime, draft: UpdateDraft, locale: str = "en") -> PreviewResult:
    """What publishing ``draft`` would send on each channel, to how many, and what the guardrails say."""
    audience = check_audience(rt.policy, draft.audience)
    incident = get_incident(rt, draft.incident_id)
    context = RenderContext(
        incident_id=incident.id,
        incident_title=incident.title,
        incident_kind=incident.kind,
        incident_status=draft.status,
        incident_severity=incident.severity,
        components=tuple(incident.components),
        opened_at=incident.opened_at,
        update_id=0,
        update_status=draft.status,
        message=draft.message,
        next_update_at=draft.next_update_at,
        published_at=draft.publish_at or rt.clock.now(),
        organisation=rt.settings.organisation,
        status_page_url=rt.settings.status_page_url,
        internal=audience is Audience.INTERNAL,
        starts_at=incident.starts_at,
        ends_at=incident.ends_at,
        impact_statement=draft.impact_statement,
        signer=signer_of(rt.policy.policy, draft.signer),
        data_facts=incident.data_facts if incident.kind == SECURITY else None,
    )
    channels = []
    chosen = preview_channels(rt, incident, draft)
    for channel in chosen:
        message = _render(rt, channel, context, locale)
        size = audience_size(rt, channel, incident, audience)
        channels.append(ChannelPreview(channel, message, _measure(channel, message), size))
    return PreviewResult(draft.message, channels, check_draft(rt, incident, draft, chosen))


def preview(
    rt: Runtime,
    incident_id: int,
    status: IncidentStatus,
    text: str,
    next_update_at: datetime | None,
    locale: str = "en",
    audience: Audience | str = Audience.PUBLIC,
    impact_statement: ImpactStatement | None = None,
    signer: str | None = None,
) -> PreviewResult:
    draft = UpdateDraft(
        incident_id=incident_id,
        status=status,
        message=text,
        next_update_at=next_update_at,
        audience=check_audience(rt.policy, audience),
        impact_statement=impact_statement,
        signer=signer,
    )
    return preview_draft(rt, draft, locale)


def excerpt(text: str, span: tuple[int, int], around: int = 30) -> tuple[str, str, str]:
    """The words before a finding's span, the span, and the words after, on one line (``…`` where cut)."""
    start, end = span
    before = text[max(0, start - around) : start]
    after = text[end : end + around]
    if start > around:
        before = "…" + before
    if end + around < len(text):
        after += "…"

    return _flat(before).lstrip(), _flat(text[start:end]), _flat(after).rstrip()


def _flat(part: str) -> str:
    return re.sub(r"\s+", " ", part)
