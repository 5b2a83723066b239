"""Message templates: the words for situations every team meets, written and reviewed before the outage.

A template is one TOML file (``message-templates/degraded.toml``), kept under version control beside
``policy.toml``; its name is the file's name. It says which status the update carries, how soon the next
update is promised (else the severity's cadence), whether it may go out without a second person
(``pre_approved``), which values it needs (``[variables]``), and its texts per locale: the message, and
optionally a short SMS text, a short X text and a longer email body::

    title = "Degraded performance"
    status = "investigating"
    next_update_in = "30m"

    [variables.workaround]
    description = "What customers can do meanwhile"

    [texts.en]
    message = "Since {started}, {components} is slower than usual. {workaround} We are sorry."
    sms = "{components} slower than usual. {workaround}"

    [texts.fr]
    message = "Depuis {started}, {components} est plus lent que d'habitude. {workaround} Désolés."

Placeholders are ``{name}``: a variable the template declares, or one Tocsin knows (``BUILT_IN``).
``{started}`` stays in the text and reads in each reader's own time. The promise of the next update is
never a placeholder: every channel's layout states it in the reader's time (``next_update_in`` sets it).
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from dispatcher.domain.durations import parse_duration
from dispatcher.domain.errors import ConfigurationError, InvalidInput
from dispatcher.domain.locales import locale_candidates
from dispatcher.domain.models import IncidentStatus, Severity
from dispatcher.domain.update_texts import LocaleText, normalise_locale

__all__ = [
    "BUILT_IN",
    "NAME_PATTERN",
    "Filled",
    "MessageTemplate",
    "TemplateVariable",
    "fill",
    "parse_template",
]

NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")
PLACEHOLDER = re.compile(r"\{(\w*)\}")

BUILT_IN = {
    "components": "the incident's components (\"our services\" when it names none)",
    "started": "when it started, in each reader's own time",
    "title": "the incident's title",
    "organisation": "your organisation's name",
    "status_page": "the status page's address (status_page_url)",
}
"""Placeholders every template may use; Tocsin fills them in."""

KEPT_AS_IS = ("started",)
"""Built-in placeholders left in the text and filled in per reader when it is rendered."""

NOT_A_PLACEHOLDER = {
    "next_update": "the promise is stated by every channel's layout in each reader's own time: "
    "set next_update_in instead"
}

OUR_SERVICES = {"en": "our services", "fr": "nos services"}
"""``{components}`` of an incident that names none, per language."""


def _duration(value: Any) -> Any:
    return parse_duration(value) if isinstance(value, str) else value


class TemplateVariable(BaseModel):
    model_config = ConfigDict(extra="forbid")

    description: str = ""
    required: bool = True
    """A required variable must be given when the template is used; an optional one may be left out."""
    example: str | None = None
    """Used by ``tocsin templates check`` to fill the template in (default: ``<name>``)."""


class MessageTemplate(BaseModel):
    """One template file; see the module docstring."""

    model_config = ConfigDict(extra="forbid")

    name: str
    title: str = Field(min_length=1, max_length=200)
    description: str = ""
    status: IncidentStatus
    severity: Severity | None = None
    """The severity it is written for, shown in ``tocsin templates list`` (it does not change any)."""
    next_update_in: Annotated[timedelta | None, BeforeValidator(_duration)] = None
    """The promise; none: the severity's cadence (no promise once resolved)."""
    pre_approved: bool = False
    """Used as written (only its variables filled in), it needs no second person's approval."""
    audience: str = "public"
    variables: dict[str, TemplateVariable] = Field(default_factory=dict)
    texts: dict[str, LocaleText]

    @model_validator(mode="after")
    def _consistent(self) -> MessageTemplate:
        if not NAME_PATTERN.match(self.name):
            raise ValueError(f"name {self.name!r}: lower-case letters, digits and '-' only")
        clash = sorted(set(self.variables) & set(BUILT_IN))
        if clash:
            raise ValueError(f"variables.{clash[0]}: a built-in placeholder, it cannot be declared")
        for name in self.variables:
            if name in NOT_A_PLACEHOLDER or not re.fullmatch(r"[a-z][a-z0-9_]*", name):
                raise ValueError(f"variables.{name}: not a usable variable name")
        texts: dict[str, LocaleText] = {}
        for tag, text in self.texts.items():
            try:
                locale = normalise_locale(tag)
            except ValueError as exc:
                raise ValueError(f"texts.{tag}: {exc}") from None
            if text.message is None:
                raise ValueError(f"texts.{tag}.message: every language needs its message")
            for field, words in text.items():
                self._check_placeholders(f"texts.{tag}.{field}", words)
            texts[locale] = text
        self.texts = texts
        return self

    def _check_placeholders(self, where: str, words: str) -> None:
        for name in PLACEHOLDER.findall(words):
            if name in NOT_A_PLACEHOLDER:
                raise ValueError(f"{where}: {{{name}}}: {NOT_A_PLACEHOLDER[name]}")
            if name not in BUILT_IN and name not in self.variables:
                known = ", ".join("{" + n + "}" for n in [*BUILT_IN, *self.variables])
                raise ValueError(f"{where}: unknown placeholder {{{name}}} (known: {known})")

    def languages(self) -> list[str]:
        return sorted(self.texts)

    def uses(self, placeholder: str) -> bool:
        return any(f"{{{placeholder}}}" in words for text in self.texts.values() for _, words in text.items())


def parse_template(text: str, name: str, source: str) -> MessageTemplate:
    """A template file's contents; ``ConfigurationError`` naming the file and the field that is wrong."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"{source}: not valid TOML ({exc})") from None
    data.setdefault("name", name)
    if data["name"] != name:
        raise ConfigurationError(f"{source}: name: {data['name']!r} differs from the file's name {name!r}")
    try:
        return MessageTemplate.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(top level)'}: "
            + str(err["msg"]).removeprefix("Value error, ")
            for err in exc.errors()
        )
        raise ConfigurationError(f"{source}: {problems}") from None


@dataclass(frozen=True)
class Filled:
    """A template with its values in: the update's message (default language) and its other texts."""

    message: str
    texts: dict[str, LocaleText]


def _value(values: dict[str, str], name: str, locale: str) -> str | None:
    """``name.fr-CA``, then ``name.fr``, then ``name``."""
    for candidate in [*locale_candidates(locale), ""]:
        key = f"{name}.{candidate}" if candidate else name
        if key in values:
            return values[key]
    return None


def _tidy(text: str) -> str:
    """No double spaces or space before punctuation where an optional value was left out."""
    text = re.sub(r"[ \t]{2,}", " ", text)
    return re.sub(r" ([.,;])", r"\1", text).strip()


def fill(
    template: MessageTemplate,
    values: dict[str, str],
    built_in: dict[str, dict[str, str]],
    default_locale: str,
) -> Filled:
    """The texts of ``template`` with ``values`` (``name`` for every language, ``name.fr`` for one)
    and the ``built_in`` values per language (``{"components": {"en": …, "fr": …}}``).

    ``InvalidInput`` names an unknown value, a missing required one, or a template without a text in
    the default language."""
    unknown = sorted({key.split(".")[0] for key in values} - set(template.variables))
    if unknown:
        known = ", ".join(template.variables) or "none"
        raise InvalidInput(
            f"vars.{unknown[0]}: template {template.name!r} has no such value (it takes: {known})"
        )
    default = normalise_locale(default_locale)
    if default not in template.texts:
        raise InvalidInput(
            f"template {template.name!r} has no text in {default} (the default language); "
            f"it has {', '.join(template.languages())}"
        )
    texts: dict[str, LocaleText] = {}
    for locale, text in template.texts.items():
        filled = {f: _fill_one(template, words, values, built_in, locale) for f, words in text.items()}
        texts[locale] = LocaleText.model_validate(filled)
    message = texts[default].message
    assert message is not None
    texts[default] = texts[default].model_copy(update={"message": None})
    return Filled(message, {loc: t for loc, t in texts.items() if t.items()})


def _fill_one(
    template: MessageTemplate,
    words: str,
    values: dict[str, str],
    built_in: dict[str, dict[str, str]],
    locale: str,
) -> str:
    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name in KEPT_AS_IS:
            return match.group(0)
        if name in BUILT_IN:
            per_language = built_in.get(name, {})
            language = (locale_candidates(locale) or ["en"])[-1]
            return per_language.get(locale) or per_language.get(language) or per_language.get("en", "")
        given = _value(values, name, locale)
        if given is None:
            if template.variables[name].required:
                raise InvalidInput(
                    f"vars.{name}: template {template.name!r} needs it "
                    f"({template.variables[name].description or name}; --var {name}=…)"
                )
            return ""
        return given.strip()

    return _tidy(PLACEHOLDER.sub(replace, words))
