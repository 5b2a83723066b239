"""What ``tocsin publish``, ``tocsin preview`` and ``tocsin drafts save`` share: an update draft from a
message or a template, texts in other languages and per channel, and a promise. (Their options are in
``dispatcher.cli.options``, which ``tocsin --help`` reads without importing this.)"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from dispatcher.cli.common import parse_duration
from dispatcher.cli.options import (
    TEXTS_CONTEXT,
    Composed,
    TemplateOption,
    TextsOption,
    VarOption,
)
from dispatcher.cli.texts import (
    merge_texts,
    parse_text_options,
    parse_vars,
    read_texts_file,
)
from dispatcher.comms.incidents import get_incident
from dispatcher.comms.message_templates import draft_from_template
from dispatcher.domain.errors import InvalidInput
from dispatcher.domain.models import UpdateDraft
from dispatcher.domain.update_texts import LocaleText
from dispatcher.engine.runtime import Runtime


def promise(rt: Runtime, incident_id: int, next_update_in: str | None, start: datetime) -> timedelta | None:
    """``--next-update-in``: a duration, or ``cadence`` for the severity policy's."""
    if not next_update_in:
        return None
    if next_update_in.strip().lower() == "cadence":
        return rt.policy.policy.for_severity(get_incident(rt, incident_id).severity).cadence
    return parse_duration(next_update_in, "--next-update-in")


def _with_texts(
    base: dict[str, LocaleText] | None, extra: dict[str, LocaleText] | None
) -> dict[str, LocaleText]:
    """The template's texts with the command line's laid over them, field by field."""
    merged = dict(base or {})
    for locale, text in (extra or {}).items():
        given = {k: v for k, v in text.model_dump().items() if v is not None}
        merged[locale] = merged[locale].model_copy(update=given) if locale in merged else text
    return merged


def compose(
    rt: Runtime, incident_id: int, said: Composed, *, author: str | None, start: datetime, **more: Any
) -> UpdateDraft:
    """The draft the command line describes (``more``: audience, channels, idempotency_key…)."""
    default = rt.settings.default_locale
    given = read_texts_file(said.texts_file) if said.texts_file is not None else {}
    for locale, fields in parse_text_options(said.extra, default).items():
        given.setdefault(locale, {}).update(fields)
    message, texts = merge_texts(said.message, given, default)
    wait = promise(rt, incident_id, said.next_update_in, start)
    if said.template:
        draft = draft_from_template(
            rt, incident_id, said.template, parse_vars(said.variables), author=author, start=start
        )
        changes: dict[str, Any] = {"texts": _with_texts(draft.texts, texts) or None, **more}
        if message is not None:
            changes["message"] = message
        if said.status is not None:
            changes["status"] = said.status
        if wait is not None:
            changes["next_update_at"] = start + wait
        return UpdateDraft.model_validate({**draft.model_dump(), **changes})
    if said.variables:
        raise InvalidInput("--var: give --template too")
    if message is None:
        raise InvalidInput("--message: say what you know (or use --template)")
    if said.status is None:
        raise InvalidInput("--status: the incident's status as of this update (or use --template)")
    return UpdateDraft(
        incident_id=incident_id,
        status=said.status,
        message=message,
        texts=texts,
        next_update_at=None if wait is None else start + wait,
        author=author,
        **more,
    )


__all__ = ["TEXTS_CONTEXT", "Composed", "TemplateOption", "TextsOption", "VarOption", "compose", "promise"]
