"""Using the message templates library: list it, check it, turn a template into an update draft, and
recognise a pre-approved template used as written.

The templates are ``dispatcher.domain.message_templates`` (one TOML file each), loaded by
``dispatcher.config.message_templates``. ``tocsin templates check`` fills every template in every
language with its examples and runs the same guardrails and budgets an update meets.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from channels.base import ChannelKind
from dispatcher.comms import guardrails
from dispatcher.comms.incidents import get_incident
from dispatcher.config.message_templates import Library, LoadedTemplate, load_library
from dispatcher.domain.errors import InvalidInput
from dispatcher.domain.guardrail_rules import Draft
from dispatcher.domain.locales import locale_candidates
from dispatcher.domain.message_templates import OUR_SERVICES, Filled, MessageTemplate, fill
from dispatcher.domain.models import Audience, Incident, IncidentStatus, Severity, UpdateDraft
from dispatcher.engine.messages import render_message
from dispatcher.engine.runtime import Runtime
from dispatcher.rendering.renderer import STARTED_TOKEN, RenderContext


def library(rt: Runtime) -> Library:
    """The templates (``ConfigurationError`` naming a broken file)."""
    return load_library(rt.settings)


def built_in_values(rt: Runtime, incident: Incident) -> dict[str, dict[str, str]]:
    """What Tocsin fills in itself, per language."""
    components = ", ".join(incident.components)
    return {
        "components": {lang: components or words for lang, words in OUR_SERVICES.items()},
        "title": {"en": incident.title},
        "organisation": {"en": rt.settings.organisation},
        "status_page": {"en": rt.settings.status_page_url or ""},
    }


def fill_for(rt: Runtime, template: MessageTemplate, incident: Incident, values: dict[str, str]) -> Filled:
    if template.uses("status_page") and not rt.settings.status_page_url:
        raise InvalidInput(f"template {template.name!r} links the status page: set status_page_url first")
    return fill(template, values, built_in_values(rt, incident), rt.settings.default_locale)


def draft_from_template(
    rt: Runtime,
    incident_id: int,
    name: str,
    values: dict[str, str],
    *,
    author: str | None,
    start: datetime | None = None,
) -> UpdateDraft:
    """An update draft of ``incident_id`` written from template ``name`` with ``values`` (``--var``):
    its status, texts in every language it has, and its promise (``next_update_in``, else the
    severity's cadence, none once resolved) counted from ``start`` (default now)."""
    incident = get_incident(rt, incident_id)
    template = library(rt).get(name).template
    filled = fill_for(rt, template, incident, values)
    next_at = None
    if template.status is not IncidentStatus.RESOLVED:
        wait = template.next_update_in or rt.policy.policy.for_severity(incident.severity).cadence
        next_at = (start or rt.clock.now()) + wait
    return UpdateDraft(
        incident_id=incident_id,
        status=template.status,
        message=filled.message,
        texts=filled.texts or None,
        next_update_at=next_at,
        audience=Audience(template.audience),
        author=author,
        template=template.name,
        template_vars=dict(values) or None,
    )


MONITORING_AUTHOR = "monitoring:"


def pre_approved(rt: Runtime, draft: UpdateDraft) -> bool:
    """The draft is a pre-approved template's words with only its variables filled in, so the person
    sending it needs no second person (filled in again here: a client's say-so is not enough).
    Monitoring's public words still follow the severity policy's approval."""
    if not draft.template or (draft.author or "").startswith(MONITORING_AUTHOR):
        return False
    try:
        template = library(rt).get(draft.template).template
        if not template.pre_approved or draft.status is not template.status:
            return False
        incident = get_incident(rt, draft.incident_id)
        filled = fill_for(rt, template, incident, dict(draft.template_vars or {}))
    except (InvalidInput, LookupError):
        return False
    texts = {loc: t for loc, t in (draft.texts or {}).items() if t.items()}
    return filled.message == draft.message and filled.texts == texts


# --- checking the library -----------------------------------------------------------------------


@dataclass(frozen=True)
class Note:
    level: str
    """``error`` (the template cannot be used as it is) or ``warn``."""
    where: str
    message: str


@dataclass
class TemplateReport:
    name: str
    path: Path | None
    notes: list[Note] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not any(n.level == "error" for n in self.notes)


SAMPLE_STARTED = "9:12 AM UTC"


def _sample_incident(rt: Runtime, template: MessageTemplate) -> Incident:
    now = rt.clock.now()
    return Incident(
        id=0,
        title="Payments slower than usual",
        status=template.status,
        severity=template.severity or Severity.MAJOR,
        components=["Payments", "Checkout"],
        opened_at=now,
        updated_at=now,
    )


def _examples(template: MessageTemplate) -> dict[str, str]:
    return {name: var.example or f"<{name}>" for name, var in template.variables.items()}


def _guardrail_notes(rt: Runtime, template: MessageTemplate, filled: Filled) -> list[Note]:
    """Every text in every language through the guardrails, as the first public word of an incident of
    the template's severity, major when it names none (the strictest case)."""
    default = locale_candidates(rt.settings.default_locale)[0]
    texts = [(f"texts.{default}.message", filled.message)]
    texts += [(f"texts.{loc}.{f}", words) for loc, t in filled.texts.items() for f, words in t.items()]
    notes = []
    for where, words in texts:
        subject = Draft(
            text=words.replace(STARTED_TOKEN, SAMPLE_STARTED),
            update_status=template.status,
            incident_status=template.status,
            severity=template.severity or Severity.MAJOR,
            has_next_update=template.status is not IncidentStatus.RESOLVED,
            first_public=True,  # any template may be the first word customers get
            own_email_domains=guardrails.own_email_domains(rt.settings.status_page_url),
            # Who is hit, and since when, belongs to the incident, not to words prepared in calm: it is
            # given when publishing (--affects, --not-working, --since, --workaround), where the
            # impact-missing warning still applies.
            has_impact_statement=True,
        )
        notes += [Note(f.level, where, f"{f.rule}: {f.message}") for f in guardrails.check(subject, True)]
    return notes


def _budget_notes(rt: Runtime, template: MessageTemplate, incident: Incident, filled: Filled) -> list[Note]:
    """A short text that the SMS or X layout would cut: the author should choose the words."""
    context = RenderContext(
        incident_id=0,
        incident_title=incident.title,
        incident_status=template.status,
        incident_severity=incident.severity,
        components=tuple(incident.components),
        opened_at=incident.opened_at,
        update_id=0,
        update_status=template.status,
        message=filled.message,
        next_update_at=None if template.status is IncidentStatus.RESOLVED else rt.clock.now(),
        published_at=rt.clock.now(),
        organisation=rt.settings.organisation,
        status_page_url=rt.settings.status_page_url,
        texts=filled.texts,
        default_locale=rt.settings.default_locale,
    )
    default = locale_candidates(rt.settings.default_locale)[0]
    notes = []
    for locale in template.languages():
        # X posts go out once, in the default language.
        channels = (ChannelKind.SMS, ChannelKind.SOCIAL) if locale == default else (ChannelKind.SMS,)
        for channel in channels:
            rendered = render_message(rt, channel, context, locale, opt_out_hint=channel is ChannelKind.SMS)
            if not rendered.shortened:
                continue
            own = "sms" if channel is ChannelKind.SMS else "social"
            text = template.texts[locale]
            where = f"texts.{locale}.{own}" if getattr(text, own) else f"texts.{locale}.message"
            why = f"cut to fit the {channel.value} budget: write a shorter {own} text"
            notes.append(Note("warn", where, why))
    return notes


def check_template(rt: Runtime, loaded: LoadedTemplate) -> TemplateReport:
    template = loaded.template
    report = TemplateReport(template.name, loaded.path)
    incident = _sample_incident(rt, template)
    try:
        filled = fill_for(rt, template, incident, _examples(template))
    except InvalidInput as exc:
        report.notes.append(Note("error", "texts", str(exc)))
        return report
    report.notes += _guardrail_notes(rt, template, filled)
    report.notes += _budget_notes(rt, template, incident, filled)
    known = ("public", "internal", *rt.policy.policy.segments)
    if template.audience not in known:
        why = f"no segment named {template.audience!r} in the policy"
        report.notes.append(Note("error", "audience", why))
    return report


def check_library(rt: Runtime) -> tuple[Library, list[TemplateReport]]:
    """Every template checked; files that could not be loaded are in ``Library.problems``."""
    found = load_library(rt.settings, strict=False)
    return found, [check_template(rt, loaded) for _, loaded in sorted(found.templates.items())]
