"""Guardrails: checks on an update's text and context before it is published (see issue 5).

``error`` findings block publishing unless overridden with a recorded reason; ``warn`` only reports.
The rules are the table ``RULES`` below; what each looks for (word lists, patterns) is in
``dispatcher.domain.guardrail_rules``.

Only updates written by someone (``kind == "update"``) are checked: holding messages, reminders and
maintenance notices come from texts approved in advance. Internal updates skip the public-text rules.
Email addresses at the organisation's own domain (the status page's host, or that host without its
first label: ``status.example.com`` allows ``support@example.com``) may appear in public text.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from sqlalchemy import func, select

from dispatcher.domain import guardrail_rules as rules
from dispatcher.domain.guardrail_rules import Draft, Finding, Hit, Level
from dispatcher.domain.models import Audience, Incident, UpdateDraft, UpdateState
from dispatcher.engine.runtime import Runtime
from dispatcher.store.schema import updates


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
    Rule("next-update-missing", "error", "public", rules.missing_next_update),
    Rule("apology-missing", "warn", "public", rules.missing_apology),
)


def check(draft: Draft, public: bool) -> list[Finding]:
    """Every finding for ``draft``: errors first, then in the order they appear in the text."""
    found = [
        Finding(rule.id, rule.level, hit.message, hit.span)
        for rule in RULES
        if public or rule.applies_to == "any"
        for hit in rule.find(draft)
    ]
    return sorted(found, key=lambda f: (f.level != "error", f.span is None, f.span or (0, 0)))


def errors(findings: Iterable[Finding]) -> list[Finding]:
    """The findings that block publishing (unless overridden with a reason)."""
    return [f for f in findings if f.level == "error"]


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


def check_draft(rt: Runtime, incident: Incident, draft: UpdateDraft) -> list[Finding]:
    """Every finding for this draft of an update to ``incident`` (not yet written)."""
    if draft.kind != "update":
        return []
    public = _is_public(draft)
    subject = Draft(
        text=draft.message,
        update_status=draft.status,
        incident_status=incident.status,
        severity=incident.severity,
        has_next_update=draft.next_update_at is not None,
        first_public=public and _first_public(rt, incident.id),
        own_email_domains=own_email_domains(rt.settings.status_page_url),
    )
    return check(subject, public)
