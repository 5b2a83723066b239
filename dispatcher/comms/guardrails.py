"""Guardrails: checks on every public-facing string before it is published (see issues 5 and 15).

``error`` findings block publishing unless overridden with a recorded reason; ``warn`` only reports.
The rules are the table ``RULES`` below; what each looks for (word lists, patterns) is in
``dispatcher.domain.guardrail_rules``.

What is checked:

- an update written by someone (``kind == "update"``): its text, by every rule; internal updates skip
  the public-text rules;
- the incident's **title** and **component names**, by the leak rules (``LEAK_RULES``), for every update
  to customers a person or monitoring releases (the title heads every email, SMS and post), and when a
  person opens or renames an incident;
- text a person writes for a **maintenance** window (``maintenance_findings``);
- the **templates' own words**: each channel rendered around a neutral update, by the leak rules (a
  template that names an internal host leaks it in every message).

Holding messages, reminders and maintenance notices Tocsin writes come from texts approved in advance.
Email addresses at the organisation's own domain (the status page's host, or that host without its
first label: ``status.example.com`` allows ``support@example.com``) may appear in public text.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Literal
from urllib.parse import urlsplit

import phonenumbers
from sqlalchemy import func, select

from channels.base import ChannelKind
from dispatcher.domain import guardrail_rules as rules
from dispatcher.domain.crisis import SECURITY, DataFacts
from dispatcher.domain.errors import GuardrailsBlocked
from dispatcher.domain.guardrail_rules import Draft, Finding, Hit, Level
from dispatcher.domain.models import Audience, Incident, IncidentStatus, Severity, UpdateDraft, UpdateState
from dispatcher.engine.runtime import Runtime
from dispatcher.rendering.renderer import TEMPLATE_FILES, RenderContext, TemplateProblem
from dispatcher.store.schema import updates

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Rule:
    id: str
    level: Level
    applies_to: Literal["any", "public"]
    """``public``: only for text customers see (public and segment updates); internal ones skip it."""
    find: Callable[[Draft], Iterable[Hit]]


RULES: tuple[Rule, ...] = (
    Rule("vague-timing", "error", "any", rules.vague_timing),
    Rule("premature-resolution", "error", "any", rules.premature_resolution),
    Rule("internal-hostname", "error", "public", rules.internal_hostnames),
    Rule("private-address", "error", "public", rules.private_addresses),
    Rule("stack-trace", "error", "public", rules.stack_traces),
    Rule("email-address", "error", "public", rules.email_addresses),
    Rule("secret", "error", "public", rules.secrets),
    Rule("card-number", "error", "public", rules.card_numbers),
    Rule("phone-number", "error", "public", rules.phone_numbers),
    Rule("customer-data", "error", "public", rules.customer_data),
    Rule("next-update-missing", "error", "public", rules.missing_next_update),
    Rule("promise-too-far", "error", "public", rules.promise_too_far),
    Rule("holding-again", "error", "public", rules.holding_again),
    Rule("apology-missing", "warn", "public", rules.missing_apology),
    Rule("impact-missing", "warn", "public", rules.missing_impact_statement),
    Rule("data-facts-missing", "error", "public", rules.missing_data_facts),
    Rule("signer-missing", "error", "public", rules.missing_signer),
)

LEAK_RULES = frozenset(
    {
        "internal-hostname",
        "private-address",
        "stack-trace",
        "email-address",
        "secret",
        "card-number",
        "phone-number",
        "customer-data",
    }
)
"""What must never reach the public, whatever string it is in: titles, component names, templates."""

MAINTENANCE_RULES = LEAK_RULES | {"vague-timing"}
"""Text a person writes for a maintenance window: no leaks, no vague timing (the window is the promise)."""


def _order(found: Iterable[Finding]) -> list[Finding]:
    return sorted(
        found, key=lambda f: (f.level != "error", f.field != "message", f.span is None, f.span or (0, 0))
    )


def check(
    draft: Draft, public: bool, only: frozenset[str] | None = None, field: str = "message"
) -> list[Finding]:
    """Every finding for ``draft``: errors first, then in the order they appear in the text.

    ``only``: run just these rules; ``field``: which string ``draft.text`` is (findings name it)."""
    found = [
        Finding(rule.id, rule.level, hit.message, hit.span, field)
        for rule in RULES
        if (public or rule.applies_to == "any") and (only is None or rule.id in only)
        for hit in rule.find(draft)
    ]
    return _order(found)


def errors(findings: Iterable[Finding]) -> list[Finding]:
    """The findings that block publishing (unless overridden with a reason)."""
    return [f for f in findings if f.level == "error"]


def refuse_unless_overridden(findings: Sequence[Finding], override_reason: str | None) -> None:
    """``GuardrailsBlocked`` when there are errors and no reason was given to publish anyway."""
    if errors(findings) and not (override_reason or "").strip():
        raise GuardrailsBlocked(findings)


def own_email_domains(status_page_url: str | None) -> frozenset[str]:
    host = (urlsplit(status_page_url).hostname or "") if status_page_url else ""
    if not host or "." not in host:
        return frozenset()
    labels = host.lower().split(".")
    return frozenset({host.lower(), ".".join(labels[1:])} if len(labels) >= 3 else {host.lower()})


NOT_SENT = (UpdateState.SCHEDULED, UpdateState.PENDING_APPROVAL, UpdateState.REJECTED)


def _first_public(rt: Runtime, incident_id: int) -> bool:
    """No public update of this incident has gone out yet (scheduled, waiting, rejected ones do not count)."""
    query = (
        select(func.count())
        .select_from(updates)
        .where(
            updates.c.incident_id == incident_id,
            updates.c.audience == Audience.PUBLIC.value,
            updates.c.state.not_in([s.value for s in NOT_SENT]),
        )
    )
    with rt.engine.connect() as conn:
        return not conn.execute(query).scalar_one()


def _is_public(draft: UpdateDraft) -> bool:
    """Public and segments (customers all the same) get the public-text rules; staff do not."""
    return draft.audience is not Audience.INTERNAL


def _phone_numbers(numbers: Iterable[str], region: str) -> frozenset[str]:
    found = set()
    for number in numbers:
        try:
            found.add(
                phonenumbers.format_number(
                    phonenumbers.parse(number, region), phonenumbers.PhoneNumberFormat.E164
                )
            )
        except phonenumbers.NumberParseException:
            log.warning("guardrails.public_phone_numbers: %r is not a phone number", number)
    return frozenset(found)


def base_draft(rt: Runtime, text: str, incident: Incident, status: IncidentStatus, now: datetime) -> Draft:
    """A ``Draft`` of ``text`` about ``incident``, with everything the installation knows filled in."""
    policy = rt.policy.policy
    return Draft(
        text=text,
        update_status=status,
        incident_status=incident.status,
        severity=incident.severity,
        has_next_update=True,
        first_public=False,
        own_email_domains=own_email_domains(rt.settings.status_page_url),
        now=now,
        internal_domains=frozenset(d.strip().lower().strip(".") for d in policy.guardrails.internal_domains),
        public_phone_numbers=_phone_numbers(
            policy.guardrails.public_phone_numbers, rt.settings.default_region
        ),
        region=rt.settings.default_region,
        cadence=policy.for_severity(incident.severity).cadence,
        holding_texts=tuple(policy.promise.holding_message.values()),
    )


def field_findings(rt: Runtime, base: Draft, title: str, components: Sequence[str]) -> list[Finding]:
    """The leak rules on an incident's title and each of its component names."""
    found = check(replace(base, text=title), True, LEAK_RULES, "title")
    for name in components:
        found += [
            replace(f, message=f"component {name!r}: {f.message}")
            for f in check(replace(base, text=name), True, LEAK_RULES, "components")
        ]
    return found


def incident_findings(
    rt: Runtime, title: str, components: Sequence[str], severity: Severity = Severity.MAJOR
) -> list[Finding]:
    """What the guardrails say of a title and components a person gives an incident (open, rename)."""
    probe = Incident(
        id=0,
        title=title,
        status=IncidentStatus.INVESTIGATING,
        severity=severity,
        components=list(components),
        opened_at=rt.clock.now(),
        updated_at=rt.clock.now(),
    )
    return _order(
        field_findings(rt, base_draft(rt, title, probe, probe.status, rt.clock.now()), title, components)
    )


def template_findings(rt: Runtime, incident: Incident, channels: Iterable[ChannelKind]) -> list[Finding]:
    """The leak rules on what each channel's template adds around an update (rendered around a neutral
    title and text, so only the template's own words and settings are looked at)."""
    now = rt.clock.now()
    context = RenderContext(
        incident_id=incident.id,
        incident_title="Incident",
        incident_kind=incident.kind,
        incident_status=incident.status,
        incident_severity=incident.severity,
        opened_at=incident.opened_at,
        update_id=0,
        update_status=incident.status,
        message="Update.",
        next_update_at=None,
        published_at=now,
        organisation=rt.settings.organisation,
        status_page_url=rt.settings.status_page_url,
    )
    base = base_draft(rt, "", incident, incident.status, now)
    found: list[Finding] = []
    for channel in channels:
        if channel not in TEMPLATE_FILES:
            continue
        try:
            message = rt.renderer.render(channel, context, "en")
        except TemplateProblem as exc:  # delivery reports a broken template, with its file and line
            log.warning("guardrails: the %s template does not render: %s", channel.value, exc)
            continue
        for text in (message.subject, message.text, message.json_body or ""):
            found += check(replace(base, text=text), True, LEAK_RULES, f"template:{channel.value}")
    unique = {(f.rule, f.field, f.message): f for f in found}
    return list(unique.values())


def check_draft(
    rt: Runtime, incident: Incident, draft: UpdateDraft, channels: Iterable[ChannelKind] = ()
) -> list[Finding]:
    """Every finding for this draft of an update to ``incident`` (not yet written).

    An update written by someone gets every rule on its text; every update to customers that is not
    Tocsin's own holding or reminder text gets the title, component and template checks too."""
    if draft.kind in ("holding", "reminder", "maintenance", "resolution"):
        return []  # texts approved in advance, about an incident whose title customers already read
    public = _is_public(draft)
    goes_out = draft.publish_at or rt.clock.now()
    base = base_draft(rt, draft.message, incident, draft.status, goes_out)
    found: list[Finding] = []
    facts_owed = _data_facts_owed(incident)
    if draft.kind == "update":
        subject = replace(
            base,
            has_next_update=draft.next_update_at is not None,
            first_public=public and _first_public(rt, incident.id),
            promise_in=None if draft.next_update_at is None else draft.next_update_at - goes_out,
            escalated=incident.escalated_at is not None,
            has_impact_statement=draft.impact_statement is not None,
            data_facts_missing=facts_owed,
            signer_required=_signer_wanted(rt, incident),
            has_signer=draft.signer is not None,
        )
        found += check(subject, public)
    elif public and draft.kind == "first_notice":
        found += check(replace(base, data_facts_missing=facts_owed), True, frozenset({"data-facts-missing"}))
    if public:
        found += field_findings(rt, base, incident.title, incident.components)
        found += crisis_findings(base, incident, draft)
        found += template_findings(rt, incident, channels)
    return _order(found)


def _signer_wanted(rt: Runtime, incident: Incident) -> str | None:
    """Why the policy wants updates of ``incident`` signed (its severity, or its being a breach)."""
    policy = rt.policy.policy
    if policy.for_severity(incident.severity).needs_signer:
        return f"{incident.severity.value} incidents' updates"
    if incident.kind == SECURITY and policy.security.needs_signer:
        return "security incidents' updates"
    return None


def _data_facts_owed(incident: Incident) -> tuple[str, ...]:
    """A security incident's data facts not given yet (none owed by other kinds)."""
    if incident.kind != SECURITY:
        return ()
    return tuple((incident.data_facts or DataFacts()).missing())


def crisis_findings(base: Draft, incident: Incident, draft: UpdateDraft) -> list[Finding]:
    """The leak rules on the public words an impact statement and a security incident's facts carry."""
    texts = dict(draft.impact_statement.texts()) if draft.impact_statement else {}
    if incident.kind == SECURITY and incident.data_facts is not None:
        texts.update(incident.data_facts.texts())
    found: list[Finding] = []
    for name, text in texts.items():
        found += check(replace(base, text=text), True, LEAK_RULES, name)
    return found


def maintenance_findings(
    rt: Runtime, incident: Incident, message: str | None, title: str, components: Sequence[str]
) -> list[Finding]:
    """What the guardrails say of a maintenance window a person describes: its title, components and
    their own text (no leaks, no vague timing: the window itself is the promise)."""
    now = rt.clock.now()
    base = base_draft(rt, message or "", incident, IncidentStatus.IDENTIFIED, now)
    found = field_findings(rt, base, title, components)
    if message:
        found += check(base, True, MAINTENANCE_RULES)
    return _order(found)
