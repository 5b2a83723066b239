"""Render an update for every channel without publishing it: each channel's text and length, how many
contact points would be owed it, and every guardrail finding.

Every language is shown: the requested locale in full, and each other language the update has a text
in or its subscribers read, for the channels that speak to one reader (email, SMS, webhook). Times are
a reader's in ``zone`` (default: the organisation's). A short message that had to be cut to its budget
(SMS segments, X's weighted length) is flagged with what readers will get.

The channels are the ones publishing would use (the severity policy's, as far as the installation
has them; no social post or status page for non-public audiences). The audience size counts the
contact points the fan-out would write a row for and send to: confirmed, not opted out, matching the
subscriber's channels, components and minimum severity and the audience (``dispatcher.domain.audiences``).
Broadcast channels count their targets (the social account, each chat room).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, select

from channels.base import MANAGE_URL_PLACEHOLDER, ChannelKind, Message
from channels.text.sms_segments import count_segments
from channels.text.x_text import weighted_length
from dispatcher.comms.guardrails import check_draft, errors
from dispatcher.comms.incidents import get_incident
from dispatcher.comms.languages import checked_texts, draft_findings, reader_languages
from dispatcher.comms.publish import channels_for, signer_of
from dispatcher.comms.report_deadline import promised_report
from dispatcher.domain.audiences import AudiencePass, audience_passes, check_audience
from dispatcher.domain.crisis import SECURITY, ImpactStatement
from dispatcher.domain.guardrail_rules import Finding
from dispatcher.domain.locales import locale_candidates
from dispatcher.domain.models import Audience, Incident, IncidentStatus, Severity, UpdateDraft
from dispatcher.domain.readers import OPT_OUT_HINT_PREFIXES
from dispatcher.domain.update_texts import LocaleText
from dispatcher.engine.fanout import PREFERENCE_COLUMNS, audience_query, wants
from dispatcher.engine.messages import X_LIMIT, manage_links, render_message
from dispatcher.engine.runtime import Runtime
from dispatcher.rendering.renderer import TEMPLATE_FILES, RenderContext, Rendered
from dispatcher.store.schema import contact_points


@dataclass(frozen=True)
class ChannelPreview:
    channel: ChannelKind
    message: Message
    measure: str
    """How long it is in the channel's own terms: characters, SMS segments, X weighted length."""
    audience_size: int = 0
    """Contact points on this channel owed the update (broadcast channels: posts made)."""
    shortened: bool = False
    """Its body was cut to fit the channel's budget: ``message`` is what readers get."""
    language_fallback: bool = False
    """Readers of this locale get the default language's text, marked as such."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "channel": self.channel.value,
            "subject": self.message.subject,
            "text": self.message.text,
            "html": self.message.html,
            "json_body": self.message.json_body,
            "measure": self.measure,
            "audience_size": self.audience_size,
            "shortened": self.shortened,
            "language_fallback": self.language_fallback,
        }


@dataclass(frozen=True)
class LocalePreview:
    """The update as readers of one language get it (channels that speak to one reader)."""

    locale: str
    channels: list[ChannelPreview] = field(default_factory=list)

    @property
    def fallback(self) -> bool:
        """This language has no text: its readers get the default language's, marked."""
        return any(c.language_fallback for c in self.channels)

    def as_dict(self) -> dict[str, Any]:
        return {
            "locale": self.locale,
            "fallback": self.fallback,
            "channels": [c.as_dict() for c in self.channels],
        }


@dataclass(frozen=True)
class PreviewResult:
    text: str
    """The update's text as written (the findings' spans point into it)."""
    channels: list[ChannelPreview] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    locales: list[LocalePreview] = field(default_factory=list)
    """Every other language the update has a text in or its subscribers read."""

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
            "locales": [loc.as_dict() for loc in self.locales],
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


def _render(
    rt: Runtime, channel: ChannelKind, context: RenderContext, locale: str, zone: str | None, hint: bool
) -> Rendered:
    if channel not in TEMPLATE_FILES:  # the status site shows the text within its own pages
        message = Message(channel, 0, context.incident_id, context.incident_title, context.message)
        return Rendered(message)
    rendered = render_message(rt, channel, context, locale, zone, hint)
    sample = f"{(rt.settings.public_url or '').rstrip('/')}/manage?token=…"
    message = rendered.message
    if message.html is not None or MANAGE_URL_PLACEHOLDER in message.text:
        message = replace(
            message,
            text=message.text.replace(MANAGE_URL_PLACEHOLDER, sample),
            html=None if message.html is None else message.html.replace(MANAGE_URL_PLACEHOLDER, sample),
        )
    return replace(rendered, message=message)


def _sms_needs_hint(rt: Runtime) -> bool:
    """Some SMS reader's number wants the opt-out hint: the preview shows the longer text."""
    query = select(contact_points.c.id).where(
        contact_points.c.channel == ChannelKind.SMS.value,
        or_(*(contact_points.c.address.startswith(p) for p in OPT_OUT_HINT_PREFIXES)),
    )
    with rt.engine.connect() as conn:
        return conn.execute(query.limit(1)).first() is not None


def _budget_finding(item: ChannelPreview, locale: str, over: bool) -> Finding:
    budget = budget_for_name(item.channel)
    field_name = "--sms-text" if item.channel is ChannelKind.SMS else "--x-text"
    if over:
        return Finding(
            f"{item.channel.value}-too-long",
            "warn",
            f"{item.channel.value} ({locale}): even cut short it is longer than {budget}: the title, the "
            "promise and the link alone do not fit",
        )
    return Finding(
        f"{item.channel.value}-shortened",
        "warn",
        f"{item.channel.value} ({locale}): the text was cut to fit {budget}; readers get: "
        f"{item.message.text} (write a shorter one with {field_name} to choose the words yourself)",
    )


def budget_for_name(channel: ChannelKind) -> str:
    return "the SMS segment budget" if channel is ChannelKind.SMS else f"{X_LIMIT} weighted characters"


def draft_context(rt: Runtime, incident: Incident, draft: UpdateDraft) -> RenderContext:
    """What the templates would see if ``draft`` were published now."""
    audience = check_audience(rt.policy, draft.audience)
    return RenderContext(
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
        texts=checked_texts(rt, draft),
        default_locale=rt.settings.default_locale,
        manage_url=MANAGE_URL_PLACEHOLDER if manage_links(rt) else None,
        impact_statement=draft.impact_statement,
        signer=signer_of(rt.policy.policy, draft.signer),
        data_facts=incident.data_facts if incident.kind == SECURITY else None,
        # The report's promise as publishing would make it: the author's date, else the policy's.
        report_by=promised_report(
            draft,
            incident,
            rt.policy.policy.for_severity(incident.severity),
            draft.publish_at or rt.clock.now(),
        ),
    )


def preview_draft(
    rt: Runtime, draft: UpdateDraft, locale: str = "en", zone: str | None = None
) -> PreviewResult:
    """What publishing ``draft`` would send on each channel, to how many, and what the guardrails say,
    for a reader in ``locale`` and ``zone`` (default: the organisation's), then in every other language."""
    audience = check_audience(rt.policy, draft.audience)
    incident = get_incident(rt, draft.incident_id)
    context = draft_context(rt, incident, draft)
    hint = _sms_needs_hint(rt)
    chosen = preview_channels(rt, incident, draft)
    findings = check_draft(rt, incident, draft, chosen) + draft_findings(rt, incident, draft)
    channels = []
    for channel in chosen:
        rendered = _render(rt, channel, context, locale, zone, hint)
        size = audience_size(rt, channel, incident, audience)
        item = ChannelPreview(
            channel, rendered.message, _measure(channel, rendered.message), size, rendered.shortened,
            rendered.language_fallback,
        )
        channels.append(item)
        if rendered.shortened or rendered.over_budget:
            findings.append(_budget_finding(item, locale, rendered.over_budget))
    locales = _other_locales(rt, draft, context, channels, locale, zone, hint, findings)
    return PreviewResult(draft.message, channels, sorted_findings(findings), locales)


def _other_locales(
    rt: Runtime,
    draft: UpdateDraft,
    context: RenderContext,
    channels: list[ChannelPreview],
    shown: str,
    zone: str | None,
    hint: bool,
    findings: list[Finding],
) -> list[LocalePreview]:
    """The update in each other language it has a text in or its subscribers read (direct channels)."""
    wanted = {rt.settings.default_locale, *context.texts, *reader_languages(rt)}
    wanted -= {shown, *locale_candidates(shown)[-1:]}
    found = []
    for other in sorted(wanted):
        items = []
        for item in channels:
            if item.channel.is_broadcast or item.channel not in TEMPLATE_FILES:
                continue
            rendered = _render(rt, item.channel, context, other, zone, hint)
            preview = ChannelPreview(
                item.channel, rendered.message, _measure(item.channel, rendered.message), 0,
                rendered.shortened, rendered.language_fallback,
            )
            items.append(preview)
            if rendered.shortened or rendered.over_budget:
                findings.append(_budget_finding(preview, other, rendered.over_budget))
        found.append(LocalePreview(other, items))
    return found


def sorted_findings(findings: list[Finding]) -> list[Finding]:
    """Errors first, then in the order they appear in the text (findings outside it last)."""
    return sorted(findings, key=lambda f: (f.level != "error", f.span is None, f.span or (0, 0)))


def preview(
    rt: Runtime,
    incident_id: int,
    status: IncidentStatus,
    text: str,
    next_update_at: datetime | None,
    locale: str = "en",
    audience: Audience | str = Audience.PUBLIC,
    texts: dict[str, LocaleText] | None = None,
    zone: str | None = None,
    impact_statement: ImpactStatement | None = None,
    signer: str | None = None,
) -> PreviewResult:
    draft = UpdateDraft(
        incident_id=incident_id,
        status=status,
        message=text,
        next_update_at=next_update_at,
        audience=check_audience(rt.policy, audience),
        texts=texts,
        impact_statement=impact_statement,
        signer=signer,
    )
    return preview_draft(rt, draft, locale, zone)


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
