"""An update's other texts (other languages, SMS, X and email texts): validated, put through the same
guardrails as the message, and the languages subscribers read that an update does not speak.

The texts themselves are ``dispatcher.domain.update_texts``; readers get theirs when the update is
rendered. A major or critical update to customers that leaves out a language its subscribers read gets
a ``locale-missing`` warning: those readers get the default language, marked as such.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from pydantic import ValidationError
from sqlalchemy import select

from dispatcher.comms import guardrails
from dispatcher.domain.errors import InvalidInput
from dispatcher.domain.guardrail_rules import Finding
from dispatcher.domain.locales import locale_candidates
from dispatcher.domain.models import Audience, Incident, Severity, UpdateDraft
from dispatcher.domain.update_texts import LocaleText, check_locale_texts
from dispatcher.engine.runtime import Runtime
from dispatcher.store.schema import subscribers

LABELS = {"message": "message", "sms": "SMS text", "social": "X text", "email": "email text"}


def checked_texts(rt: Runtime, draft: UpdateDraft) -> dict[str, LocaleText]:
    """The draft's texts keyed by normalised locale; ``InvalidInput`` naming what is wrong."""
    try:
        return check_locale_texts(dict(draft.texts or {}), rt.settings.default_locale)
    except ValueError as exc:
        raise InvalidInput(str(exc)) from None


def stored_texts(texts: dict[str, LocaleText]) -> dict[str, Any] | None:
    """The texts as the ``updates.texts`` / ``drafts.texts`` JSON column keeps them."""
    return {loc: text.model_dump(exclude_none=True) for loc, text in texts.items()} or None


def loaded_texts(value: Any) -> dict[str, LocaleText] | None:
    """The JSON column back as texts (``None`` when empty)."""
    if not value:
        return None
    try:
        return {loc: LocaleText.model_validate(text) for loc, text in dict(value).items()}
    except ValidationError as exc:
        raise InvalidInput(f"texts: {exc.errors()[0]['msg']}") from None


def text_findings(rt: Runtime, incident: Incident, draft: UpdateDraft) -> list[Finding]:
    """The guardrails on every other text of the draft, each finding naming the text it is in
    (``texts.fr.sms: …``); its span points into that text, not the message, so it is left out."""
    found: list[Finding] = []
    for locale, text in checked_texts(rt, draft).items():
        for field, words in text.items():
            where = f"texts.{locale}.{field}"
            probe = draft.model_copy(update={"message": words, "texts": None})
            found += [
                replace(f, message=f"{where} ({LABELS[field]}): {f.message}", span=None)
                for f in guardrails.check_draft(rt, incident, probe)
            ]
    return found


def reader_languages(rt: Runtime) -> set[str]:
    """The languages subscribers read (``fr`` for ``fr-CA``)."""
    with rt.engine.connect() as conn:
        tags = conn.execute(select(subscribers.c.locale).distinct()).scalars().all()
    return {locale_candidates(tag)[-1] for tag in tags if locale_candidates(tag)}


def missing_languages(rt: Runtime, draft: UpdateDraft) -> list[str]:
    """Languages subscribers read that the draft has no text in (the default language always has one)."""
    spoken = {locale_candidates(rt.settings.default_locale)[-1]}
    spoken |= {locale_candidates(loc)[-1] for loc in checked_texts(rt, draft)}
    return sorted(reader_languages(rt) - spoken)


def locale_findings(rt: Runtime, incident: Incident, draft: UpdateDraft) -> list[Finding]:
    """A ``locale-missing`` warning for a major or critical update to customers that leaves out a
    language its subscribers read."""
    serious = Severity(incident.severity).rank >= Severity.MAJOR.rank
    if draft.kind != "update" or not serious or draft.audience is Audience.INTERNAL:
        return []
    missing = missing_languages(rt, draft)
    if not missing:
        return []
    default = rt.settings.default_locale
    return [
        Finding(
            "locale-missing",
            "warn",
            f"no text in {', '.join(missing)}: subscribers who read it get the {default} text, marked as "
            f"such (add it with --message-{missing[0]} or texts.{missing[0]}.message)",
        )
    ]


def draft_findings(rt: Runtime, incident: Incident, draft: UpdateDraft) -> list[Finding]:
    """What the guardrails say of the draft's other texts, and of the languages it leaves out."""
    return text_findings(rt, incident, draft) + locale_findings(rt, incident, draft)
