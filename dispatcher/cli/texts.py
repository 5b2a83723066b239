"""An update's other texts from the command line: ``--message-fr``, ``--sms-text``, ``--x-text-fr``,
``--email-text``, ``--texts FILE``; and a template's values, ``--var name=value``.

``--message-<locale> TEXT``       the message in another language (``--message-fr``, ``--message-fr-CA``)
``--sms-text[-<locale>] TEXT``    a short text for SMS (default language, or the one named)
``--x-text[-<locale>] TEXT``      a short text for X
``--email-text[-<locale>] TEXT``  a longer body for email
``--texts FILE``                  the same in a TOML file, one table per locale::

    [en]
    sms = "Checkout fails for some customers. Sorry."
    [fr]
    message = "Le paiement échoue pour certains clients. Nous sommes désolés."
    sms = "Le paiement échoue pour certains clients. Désolés."
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import typer
from pydantic import ValidationError

from dispatcher.cli.options import TEXT_OPTIONS_HELP
from dispatcher.domain.errors import InvalidInput
from dispatcher.domain.update_texts import LocaleText

_LOCALE = r"[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{2,8})*"
_OPTION = re.compile(rf"^--(message|sms-text|x-text|email-text)(?:-({_LOCALE}))?$")
_VAR = re.compile(rf"[a-z][a-z0-9_]*(?:\.{_LOCALE})?")
_FIELDS = {"message": "message", "sms-text": "sms", "x-text": "social", "email-text": "email"}


def parse_text_options(args: list[str], default_locale: str) -> dict[str, dict[str, str]]:
    """``{locale: {field: text}}`` from the command line's extra options (see the module docstring);
    ``typer.BadParameter`` naming an option Tocsin does not know."""
    found: dict[str, dict[str, str]] = {}
    rest = list(args)
    while rest:
        option = rest.pop(0)
        value: str | None = None
        if option.startswith("--") and "=" in option:
            option, value = option.split("=", 1)
        match = _OPTION.match(option)
        if match is None or (match.group(1) == "message" and match.group(2) is None):
            raise typer.BadParameter(f"no such option: {option} ({TEXT_OPTIONS_HELP})")
        if value is None:
            if not rest or rest[0].startswith("--"):
                raise typer.BadParameter(f"{option} needs a text")
            value = rest.pop(0)
        locale = match.group(2) or default_locale
        field = _FIELDS[match.group(1)]
        if field in found.setdefault(locale, {}):
            raise typer.BadParameter(f"{option} is given twice")
        found[locale][field] = value
    return found


def read_texts_file(path: Path) -> dict[str, dict[str, str]]:
    """``{locale: {field: text}}`` from a ``--texts`` TOML file."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise InvalidInput(f"{path}: not valid TOML ({exc})") from None
    texts: dict[str, dict[str, str]] = {}
    for locale, table in data.items():
        if not isinstance(table, dict) or not all(isinstance(v, str) for v in table.values()):
            raise InvalidInput(f"{path}: [{locale}] must be a table of texts (message, sms, social, email)")
        texts[locale] = dict(table)
    return texts


def merge_texts(
    main: str | None, given: dict[str, dict[str, str]], default_locale: str
) -> tuple[str | None, dict[str, LocaleText] | None]:
    """The update's message and its other texts: a default-language ``message`` from a file stands in
    for ``--message`` when none was given."""
    texts: dict[str, LocaleText] = {}
    for locale, fields in given.items():
        fields = dict(fields)
        if locale == default_locale and "message" in fields:
            own = fields.pop("message")
            if main is not None and main != own:
                raise InvalidInput(f"texts: {default_locale} message given twice (--message and the file)")
            main = own
        try:
            texts[locale] = LocaleText.model_validate(fields)
        except ValidationError as exc:
            error = exc.errors()[0]
            where = ".".join(str(p) for p in error["loc"])
            raise InvalidInput(f"texts.{locale}.{where}: {error['msg']}") from None
    return main, texts or None


def parse_vars(values: list[str] | None) -> dict[str, str]:
    """``--var workaround=Retry later`` (``--var workaround.fr=…`` for one language)."""
    found: dict[str, Any] = {}
    for item in values or []:
        name, sep, value = item.partition("=")
        if not sep or not _VAR.fullmatch(name.strip()):
            raise typer.BadParameter(f"--var {item!r}: give name=value (or name.fr=value for one language)")
        found[name.strip()] = value
    return found
