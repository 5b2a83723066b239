"""Where message templates come from: the packaged starter set, then your own folder.

The starter set (``templates/messages/*.toml`` in the package: English and French) is always there.
Files in ``message_templates_dir`` (default ``message-templates/`` beside ``policy.toml``) add templates
or replace a starter one of the same name. Each file is one template, named by its file name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from dispatcher.config.resources import templates_root
from dispatcher.config.settings import Settings
from dispatcher.domain.errors import ConfigurationError, NotFound
from dispatcher.domain.message_templates import NAME_PATTERN, MessageTemplate, parse_template

SUFFIX = ".toml"


def starter_dir() -> Path:
    return templates_root() / "messages"


@dataclass(frozen=True)
class LoadedTemplate:
    template: MessageTemplate
    path: Path
    starter: bool
    """From the packaged starter set (not overridden by a file of yours)."""


@dataclass
class Library:
    templates: dict[str, LoadedTemplate] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    """Files that could not be loaded, each ``<path>: <what is wrong>``."""
    folder: Path | None = None
    """Your folder, when it exists."""

    def get(self, name: str) -> LoadedTemplate:
        found = self.templates.get(name.strip())
        if found is None:
            known = ", ".join(sorted(self.templates)) or "none"
            raise NotFound(f"no message template {name!r} (templates: {known})")
        return found


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix == SUFFIX)


def load_library(settings: Settings, *, strict: bool = True) -> Library:
    """The templates; ``strict``: the first broken file raises ``ConfigurationError`` naming it, else
    every problem is collected in ``Library.problems`` (``tocsin templates check``)."""
    library = Library()
    folders = [(starter_dir(), True)]
    own = settings.message_templates_dir
    if own.is_dir():
        library.folder = own
        folders.append((own, False))
    elif own.exists():
        library.problems.append(f"{own}: not a folder (message_templates_dir)")
    for folder, starter in folders:
        for path in _files(folder):
            name = path.stem
            try:
                if not NAME_PATTERN.match(name):
                    why = "a template's name is lower-case letters, digits and '-'"
                    raise ConfigurationError(f"{path}: {why}")
                template = parse_template(path.read_text(encoding="utf-8"), name, str(path))
            except (ConfigurationError, OSError, UnicodeDecodeError) as exc:
                if strict:
                    raise ConfigurationError(str(exc)) from None
                library.problems.append(str(exc))
                continue
            library.templates[name] = LoadedTemplate(template, path, starter)
    if strict and library.problems:
        raise ConfigurationError(library.problems[0])
    return library
