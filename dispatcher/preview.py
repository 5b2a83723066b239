"""Render an update for every channel without publishing it, with each channel's length measure."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from channels.base import ChannelKind, Message
from channels.sms_segments import count_segments
from channels.x_text import weighted_length
from dispatcher.incidents import get_incident
from dispatcher.messages import X_LIMIT, fit_for_channel
from dispatcher.models import IncidentStatus
from dispatcher.rendering import RenderContext
from dispatcher.runtime import Runtime


@dataclass(frozen=True)
class ChannelPreview:
    channel: ChannelKind
    message: Message
    measure: str
    """How long it is in the channel's own terms: characters, SMS segments, X weighted length."""


def _measure(channel: ChannelKind, message: Message) -> str:
    if channel is ChannelKind.SMS:
        count = count_segments(message.text)
        return f"{count.segments} segment(s), {count.units} {count.encoding} units"
    if channel is ChannelKind.SOCIAL:
        return f"{weighted_length(message.text)}/{X_LIMIT} weighted"
    if channel is ChannelKind.WEBHOOK:
        return f"{len((message.json_body or '').encode())} bytes of JSON"
    return f"{len(message.text)} characters"


def preview(
    rt: Runtime,
    incident_id: int,
    status: IncidentStatus,
    text: str,
    next_update_at: datetime | None,
    locale: str = "en",
) -> list[ChannelPreview]:
    incident = get_incident(rt, incident_id)
    now = rt.clock.now()
    context = RenderContext(
        incident_id=incident.id,
        incident_title=incident.title,
        incident_status=status,
        incident_severity=incident.severity,
        components=tuple(incident.components),
        opened_at=incident.opened_at,
        update_id=0,
        update_status=status,
        message=text,
        next_update_at=next_update_at,
        published_at=now,
        organisation=rt.settings.organisation,
        status_page_url=rt.settings.status_page_url,
    )
    previews = []
    for channel in rt.settings.enabled_channels():
        message = fit_for_channel(rt, channel, rt.renderer.render(channel, context, locale))
        previews.append(ChannelPreview(channel, message, _measure(channel, message)))
    return previews
