"""The compose form's starting points and extra texts: a message template (with its values) or a saved
draft fills the form; fields ``text_<locale>_<field>`` carry the update's other languages and its SMS,
X and email texts; a draft opened in the form is saved back with the version it was opened at."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from dispatcher.comms.drafts import edit_draft, get_draft, save_draft
from dispatcher.comms.languages import reader_languages
from dispatcher.comms.message_templates import draft_from_template, library
from dispatcher.config.message_templates import LoadedTemplate
from dispatcher.domain.crisis import ImpactStatement
from dispatcher.domain.drafts import Draft, DraftContent, DraftState
from dispatcher.domain.errors import InvalidInput
from dispatcher.domain.locales import locale_candidates
from dispatcher.domain.models import UpdateDraft
from dispatcher.domain.update_texts import LocaleText
from dispatcher.engine.runtime import Runtime

TEXT_FIELDS = {
    "message": "Message",
    "sms": "SMS text (short)",
    "social": "X text (short)",
    "email": "Email text (long)",
}
"""The texts an update may carry per language, as the form labels them."""

_TEXT_FIELD = re.compile(r"^text_([A-Za-z]{2,3}(?:-[A-Za-z0-9]{2,8})*)_(message|sms|social|email)$")


@dataclass
class Picked:
    """What fills the compose form: a template (and the values it still needs) or a draft."""

    template: LoadedTemplate | None = None
    values: dict[str, str] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    """Required values not given yet: the form asks for them before filling anything in."""
    draft: Draft | None = None
    compose: dict[str, Any] | None = None


def _promise(wait: timedelta | None) -> str:
    if wait is None:
        return ""
    minutes = max(1, round(wait.total_seconds() / 60))
    return f"{minutes // 60}h" if minutes % 60 == 0 else f"{minutes}m"


def _texts_for_form(texts: Mapping[str, LocaleText] | None) -> dict[str, dict[str, str]]:
    return {loc: {f: words for f, words in text.items()} for loc, text in (texts or {}).items()}


def pick(rt: Runtime, incident_id: int, query: Mapping[str, str]) -> Picked | None:
    """The template or draft the query names (``template``, ``var_<name>``; ``draft``), if any."""
    if query.get("draft"):
        draft = get_draft(rt, int(query["draft"]))
        if draft.incident_id != incident_id or draft.state is not DraftState.OPEN:
            raise InvalidInput(f"draft {draft.id} is not an open draft of incident {incident_id}")
        return Picked(draft=draft, compose=_from_draft(draft))
    name = (query.get("template") or "").strip()
    if not name:
        return None
    loaded = library(rt).get(name)
    values = {k.removeprefix("var_"): v for k, v in query.items() if k.startswith("var_") and v.strip()}
    missing = [n for n, var in loaded.template.variables.items() if var.required and n not in values]
    if missing or (loaded.template.variables and "fill" not in query):
        return Picked(template=loaded, values=values, missing=missing)
    filled = draft_from_template(rt, incident_id, name, values, author=None)
    wait = None if filled.next_update_at is None else filled.next_update_at - rt.clock.now()
    compose = {
        "message": filled.message,
        "status": filled.status.value,
        "next_update_in": _promise(wait),
        "audience": str(filled.audience),
        "texts": _texts_for_form(filled.texts),
        "template": name,
        "template_vars": json.dumps(values, ensure_ascii=False) if values else "",
    }
    return Picked(template=loaded, values=values, compose=compose)


def _from_draft(draft: Draft) -> dict[str, Any]:
    compose: dict[str, Any] = {
        "message": draft.message,
        "status": draft.status.value,
        "next_update_in": _promise(draft.next_update_in),
        "audience": str(draft.audience),
        "texts": _texts_for_form(draft.texts),
        "internal_note": draft.internal_note or "",
        "impact": [f"{name}={level.value}" for name, level in (draft.impact or {}).items()],
        "template": draft.template or "",
        "template_vars": json.dumps(draft.template_vars, ensure_ascii=False) if draft.template_vars else "",
        "draft_id": draft.id,
        "draft_version": draft.version,
        **_statement_for_form(draft.impact_statement),
        "signer": draft.signer or "",
        "report_by": _form_time(draft.report_by),
    }
    if draft.channels is not None:
        compose["channels"] = [c.value for c in draft.channels]
    return compose


def _form_time(when: datetime | None) -> str:
    """A time as the form's fields read it back (``2026-11-25T09:05Z``); none: empty."""
    if when is None:
        return ""
    when = when.astimezone(UTC)
    whole_minute = when.second == 0 and when.microsecond == 0
    return when.strftime("%Y-%m-%dT%H:%MZ") if whole_minute else when.isoformat().replace("+00:00", "Z")


def _statement_for_form(statement: ImpactStatement | None) -> dict[str, str]:
    """The form's impact fields; "since" in the form the field reads back (``2026-11-25T09:05Z``)."""
    if statement is None:
        return {}
    return {
        "affects": statement.who or "",
        "not_working": statement.not_working or "",
        "since": _form_time(statement.since),
        "workaround": statement.workaround or "",
    }


def compose_languages(rt: Runtime, texts: Mapping[str, Any]) -> list[str]:
    """The languages the form offers a text for: the default one first, then every language the update
    has a text in, its subscribers read, or the starter templates speak."""
    default = locale_candidates(rt.settings.default_locale)[0]
    others = {*texts, *reader_languages(rt), "fr"} - {default}
    return [default, *sorted(others)]


def texts_of_form(form: Mapping[str, str]) -> dict[str, dict[str, str]]:
    """``text_fr_message`` and friends: ``{"fr": {"message": …}}`` (empty fields left out)."""
    texts: dict[str, dict[str, str]] = {}
    for name, value in form.items():
        match = _TEXT_FIELD.match(name)
        if match and value.strip():
            texts.setdefault(match.group(1), {})[match.group(2)] = value
    return texts


def form_texts(texts: Mapping[str, Mapping[str, str]]) -> dict[str, LocaleText]:
    return {loc: LocaleText.model_validate(dict(fields)) for loc, fields in texts.items() if fields}


def template_values(raw: str) -> dict[str, str] | None:
    if not raw.strip():
        return None
    try:
        values = json.loads(raw)
    except ValueError:
        raise InvalidInput("template_vars: not the form's own values (reload the page)") from None
    if not isinstance(values, dict) or not all(isinstance(v, str) for v in values.values()):
        raise InvalidInput("template_vars: not the form's own values (reload the page)")
    return {str(k): v for k, v in values.items()}


def save_form_draft(
    rt: Runtime, incident_id: int, opened: tuple[int | None, int | None], draft: UpdateDraft, actor: str
) -> Draft:
    """The form saved as a draft: the one it was opened from (``opened``: its id and the version it
    was opened at), or a new one."""
    draft_id, version = opened
    content = DraftContent(
        status=draft.status,
        message=draft.message,
        texts=draft.texts,
        next_update_in=None if draft.next_update_at is None else draft.next_update_at - rt.clock.now(),
        audience=draft.audience,
        channels=draft.channels,
        internal_note=draft.internal_note,
        impact=draft.impact,
        template=draft.template,
        template_vars=draft.template_vars,
        impact_statement=draft.impact_statement,
        signer=draft.signer,
        report_by=draft.report_by,
    )
    if draft_id is None:
        return save_draft(rt, incident_id, content, actor)
    changes = content.model_dump()
    return edit_draft(rt, draft_id, changes, actor, version)
