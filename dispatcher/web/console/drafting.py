"""The compose form's live preview: each channel's text, length and audience, guardrail findings marked
in the author's own text."""

from __future__ import annotations

from dataclasses import dataclass, field

from channels.base import ChannelKind
from channels.text.sms_segments import count_segments
from dispatcher.comms.preview import ChannelPreview, LocalePreview, preview_draft
from dispatcher.domain.guardrail_rules import Finding
from dispatcher.domain.models import UpdateDraft
from dispatcher.engine.runtime import Runtime


@dataclass(frozen=True)
class TextPart:
    """A piece of the author's text; ``finding`` is set where a guardrail points at it."""

    text: str
    finding: Finding | None = None


@dataclass(frozen=True)
class ChannelView:
    preview: ChannelPreview
    segments: int | None = None
    """SMS only: how many segments one message costs."""


@dataclass
class DraftPreview:
    channels: list[ChannelView] = field(default_factory=list)
    locales: list[LocalePreview] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    marked: list[TextPart] = field(default_factory=list)
    blocked: bool = False
    """Sending would be refused unless an override reason is given."""


def mark_findings(text: str, findings: list[Finding]) -> list[TextPart]:
    """Split ``text`` so each finding's span can be highlighted (overlapping spans: the first wins)."""
    spans = sorted(
        ((f.span, i) for i, f in enumerate(findings) if f.span is not None and f.span[0] < f.span[1]),
    )
    parts: list[TextPart] = []
    at = 0
    for (start, end), index in spans:
        start, end = max(start, at), min(end, len(text))
        if start >= end:
            continue
        if start > at:
            parts.append(TextPart(text[at:start]))
        parts.append(TextPart(text[start:end], findings[index]))
        at = end
    if at < len(text):
        parts.append(TextPart(text[at:]))
    return parts


def _segments(item: ChannelPreview) -> int | None:
    return count_segments(item.message.text).segments if item.channel is ChannelKind.SMS else None


def draft_preview(rt: Runtime, draft: UpdateDraft) -> DraftPreview:
    result = preview_draft(rt, draft)
    views = [
        ChannelView(
            item, count_segments(item.message.text).segments if item.channel is ChannelKind.SMS else None
        )
        for item in result.channels
    ]
    return DraftPreview(
        views, result.locales, result.findings, mark_findings(result.text, result.findings), result.blocked
    )
