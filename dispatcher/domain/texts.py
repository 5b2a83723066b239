"""The texts Tocsin writes itself, in each language: holding messages and maintenance notices.

Updates Tocsin writes store the English text; every other language, and every reader's own times, are
produced here when the update is rendered for a reader (``localized_message``). What people write is
never touched.

Each fact once: the layout of every channel states the promise of the next update in the reader's time,
so a holding message is words only. A policy text that still says ``{next_update}`` has that sentence
left out (``words_only``); maintenance notices name their window in the reader's time.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from dispatcher.domain.locales import locale_candidates
from dispatcher.domain.models import Incident, Update
from dispatcher.domain.policy import Policy, PromisePolicy
from dispatcher.domain.reader_time import ReaderClock

OPEN_STAGES = ("scheduled", "reminded", "in_progress")
"""Maintenance stages of a window that has not ended."""
STAGES = (*OPEN_STAGES, "completed", "cancelled")
CHANGES = ("rescheduled", "extended")
"""Notices of a window moved or made longer (not stages: the stage stays or goes back to scheduled)."""


def hhmm(value: datetime) -> str:
    return value.strftime("%H:%M UTC")


def iso_z(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def when(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


# --- holding messages ----------------------------------------------------------------------------


NEXT_UPDATE = "{next_update}"
_SENTENCES = re.compile(r"(?<=[.!?…])\s+")


def words_only(text: str, next_update: datetime | None = None) -> str:
    """``text`` without the sentence that states the promise (``{next_update}``): the layout says it.

    A text that is nothing but that sentence keeps it, with the time in UTC (``next_update``)."""
    if NEXT_UPDATE not in text:
        return text
    kept = [s for s in _SENTENCES.split(text.strip()) if NEXT_UPDATE not in s]
    if kept:
        return " ".join(kept)
    return text.replace(NEXT_UPDATE, hhmm(next_update) if next_update is not None else "")


def holding_text(promise: PromisePolicy, locale: str | None, next_update: datetime | None = None) -> str:
    """The approved holding message in ``locale`` (``fr-CA`` → ``fr`` → ``en``): words only, since every
    channel's layout states the new promise in the reader's own time."""
    texts = {key.replace("_", "-").lower(): text for key, text in promise.holding_message.items()}
    candidates = [c.lower() for c in locale_candidates(locale or "")] + ["en"]
    text = next(texts[c] for c in candidates if c in texts)
    return words_only(text, next_update)


def _in_locale(texts: dict[str, str], locale: str | None) -> tuple[str, str]:
    """(language found, text) for ``locale`` (``fr-CA`` → ``fr`` → ``en``)."""
    known = {key.replace("_", "-").lower(): text for key, text in texts.items()}
    candidates = [c.lower() for c in locale_candidates(locale or "")] + ["en"]
    found = next(c for c in candidates if c in known)
    return found, known[found]


SOME_SERVICES = {"en": "some of our services", "fr": "certains de nos services"}
"""What a first notice's ``{components}`` says when the incident names none."""
ALL_SERVICES = {"en": "all services", "fr": "tous les services"}
"""What a resolution's ``{components}`` says when the incident names none."""


def _components(incident: Incident, language: str, fallback: dict[str, str] = SOME_SERVICES) -> str:
    base = language.split("-")[0]
    return ", ".join(incident.components) or fallback.get(base, fallback["en"])


# --- first notice and resolution -----------------------------------------------------------------


def first_notice_text(policy: Policy, incident: Incident, locale: str | None, next_update: datetime) -> str:
    """The severity's pre-approved first notice in ``locale``, naming the components: words only, since
    every channel's layout states the promise (``next_update``) in the reader's own time."""
    language, text = _in_locale(policy.for_severity(incident.severity).first_notice, locale)
    return words_only(text.replace("{components}", _components(incident, language)), next_update)


def resolution_text(policy: Policy, incident: Incident, locale: str | None) -> str:
    """The policy's resolution text in ``locale``: what people hear when an incident is resolved
    without a text of its own."""
    language, text = _in_locale(policy.resolution.message, locale)
    return text.replace("{components}", _components(incident, language, ALL_SERVICES))


# --- maintenance notices -------------------------------------------------------------------------

NOTICES: dict[str, dict[str, str]] = {
    "en": {
        "scheduled": "Scheduled maintenance: {title}. Window: {window}.",
        "custom": "{message}\n\nMaintenance window: {window}.",
        "reminded": (
            "Reminder: scheduled maintenance '{title}' starts at {start} (window: {window})."
        ),
        "in_progress": "Scheduled maintenance '{title}' is in progress until {end}.",
        "completed": "Scheduled maintenance '{title}' is complete.",
        "cancelled": "Scheduled maintenance '{title}' ({window}) is cancelled.",
        "rescheduled": "Scheduled maintenance '{title}' is moved to a new window: {window}.",
        "extended": "Scheduled maintenance '{title}' takes longer than planned: it now ends at {end}.",
        "window": "{start} to {end}",
    },
    "fr": {
        "scheduled": "Maintenance programmée : {title}. Créneau : {window}.",
        "custom": "{message}\n\nCréneau de maintenance : {window}.",
        "reminded": (
            "Rappel : la maintenance programmée « {title} » commence le {start} "
            "(créneau : {window})."
        ),
        "in_progress": "La maintenance programmée « {title} » est en cours jusqu'à {end}.",
        "completed": "La maintenance programmée « {title} » est terminée.",
        "cancelled": "La maintenance programmée « {title} » ({window}) est annulée.",
        "rescheduled": "La maintenance programmée « {title} » est déplacée : {window}.",
        "extended": (
            "La maintenance programmée « {title} » dure plus longtemps que prévu : elle se termine à {end}."
        ),
        "window": "du {start} au {end}",
    },
}
"""Tocsin's own maintenance texts per language; the update stores the English one, and subscribers
with another language get theirs when it is rendered (``localized_notice``). The affected components
are not in them: every template shows them once, in its own "Affected" line."""


def maintenance_notice(
    inc: Incident,
    stage: str,
    message: str | None = None,
    language: str = "en",
    clock: ReaderClock | None = None,
) -> str:
    """The notice of maintenance window ``inc`` at ``stage`` (``message``: someone's own text), with its
    times as ``clock``'s reader reads them (none: in UTC, as stored)."""
    assert inc.starts_at is not None and inc.ends_at is not None
    texts = NOTICES[language]
    if clock is None:
        start_at, end_at = inc.starts_at.astimezone(UTC), inc.ends_at.astimezone(UTC)
        start = when(start_at)
        until = end_at.strftime("%H:%M UTC") if end_at.date() == start_at.date() else when(end_at)
    else:
        start = clock.time(inc.starts_at)
        same_day = clock.local(inc.starts_at).date() == clock.local(inc.ends_at).date()
        until = clock.time(inc.ends_at, day=not same_day)
    fields = {
        "title": inc.title,
        "start": start,
        "end": until,
        "window": texts["window"].format(start=start, end=until),
        "message": message or "",
    }
    if message and stage in ("scheduled", *CHANGES):
        return texts["custom"].format(**fields)  # someone's own words, and the window as it now is
    if message:  # someone's own words, then what happened (completed early, cancelled…)
        return f"{message}\n\n{texts[stage].format(**fields)}"
    return texts[stage].format(**fields)


def localized_notice(inc: Incident, text: str, locale: str | None, clock: ReaderClock | None = None) -> str:
    """``text`` in ``locale``'s language and ``clock``'s times when it is one of Tocsin's English
    maintenance notices for ``inc`` (a text someone wrote is left as it is, but for the window line
    Tocsin added to it)."""
    language = next((c.lower() for c in locale_candidates(locale or "") if c.lower() in NOTICES), "en")
    if (language == "en" and clock is None) or inc.starts_at is None or inc.ends_at is None:
        return text
    for stage in (*STAGES, *CHANGES):
        if text == maintenance_notice(inc, stage):
            return maintenance_notice(inc, stage, language=language, clock=clock)
    window = maintenance_notice(inc, "scheduled", message="\0")  # the window line added to someone's text
    english = window.split("\0", 1)[1]
    theirs = maintenance_notice(inc, "scheduled", "\0", language, clock).split("\0", 1)[1]
    if text.endswith(english):
        return text[: -len(english)] + theirs
    return text


# --- any update ----------------------------------------------------------------------------------


def localized_message(
    promise: PromisePolicy,
    incident: Incident,
    upd: Update,
    locale: str | None,
    clock: ReaderClock | None = None,
    policy: Policy | None = None,
) -> str:
    """The text a recipient in ``locale`` reads for ``upd``: a holding message from the policy's
    approved texts (words only: the layout states the promise), a first notice or a resolution from the
    policy (when it is the policy's own English text, so an edited policy never rewrites what was sent),
    a maintenance notice from ``NOTICES`` in ``clock``'s times, or what someone wrote, untouched."""
    if not locale:
        return upd.message
    if upd.kind == "holding" and upd.next_update_at is not None:
        return holding_text(promise, locale, upd.next_update_at)
    if policy is not None and upd.kind == "first_notice" and upd.next_update_at is not None:
        due = upd.next_update_at
        if upd.message == first_notice_text(policy, incident, "en", due):
            return first_notice_text(policy, incident, locale, due)
    is_resolution = policy is not None and upd.kind == "resolution"
    if is_resolution and policy is not None and upd.message == resolution_text(policy, incident, "en"):
        return resolution_text(policy, incident, locale)
    if upd.kind == "maintenance":
        return localized_notice(incident, upd.message, locale, clock)
    return upd.message
