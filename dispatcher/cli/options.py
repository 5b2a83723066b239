"""The options ``tocsin publish``, ``tocsin preview`` and ``tocsin drafts`` take for an update's words
(a template, its values, texts per language and channel), light enough for ``tocsin --help``: the work
is in ``dispatcher.cli.compose``."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import typer

from dispatcher.domain.vocabulary import IncidentStatus

TEXT_OPTIONS_HELP = (
    "Other texts: --message-LOCALE TEXT (the message in another language, e.g. --message-fr), "
    "--sms-text[-LOCALE] TEXT, --x-text[-LOCALE] TEXT (short texts), --email-text[-LOCALE] TEXT "
    "(a longer email body); --texts FILE holds them as TOML, one table per locale."
)

TEXTS_CONTEXT = {"allow_extra_args": True, "ignore_unknown_options": True}
"""Commands that take ``--message-fr`` and friends (any locale) parse them from the extra arguments."""

TemplateOption = Annotated[
    str | None, typer.Option(help="Write it from this message template (`tocsin templates list`).")
]
VarOption = Annotated[
    list[str] | None,
    typer.Option("--var", help="A template's value: name=value, or name.fr=value for one language."),
]
TextsOption = Annotated[Path | None, typer.Option(help=TEXT_OPTIONS_HELP)]


@dataclass
class Composed:
    """What the command line said about the update's words."""

    message: str | None = None
    status: IncidentStatus | None = None
    next_update_in: str | None = None
    template: str | None = None
    variables: list[str] | None = None
    texts_file: Path | None = None
    extra: list[str] = field(default_factory=list)
