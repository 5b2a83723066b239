"""Where Tocsin's packaged files are: found through ``importlib.resources`` by package, never by a
path relative to a module's own file, so moving a module cannot silently lose them.

A missing folder is a broken installation: it raises ``ConfigurationError`` naming what is missing.
"""

from __future__ import annotations

from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path

from dispatcher.domain.errors import ConfigurationError

MIGRATIONS_PACKAGE = "dispatcher.store"
MIGRATIONS_FOLDER = "migrations"


def _folder(resource: Traversable, what: str) -> Path:
    """A packaged folder as a filesystem path (Jinja2's and Alembic's loaders need one)."""
    if not resource.is_dir():
        raise ConfigurationError(f"Tocsin's {what} are missing from this installation ({resource})")
    return Path(str(resource))


def templates_root() -> Path:
    """The built-in message templates.

    A wheel carries them as ``dispatcher/_templates``; a source checkout (an editable install) keeps
    them in the top-level ``templates/`` folder beside the ``dispatcher`` package."""
    package = files("dispatcher")
    installed = package / "_templates"
    if installed.is_dir():
        return _folder(installed, "message templates")
    return _folder(Path(str(package)).parent / "templates", "message templates")


def migrations_root() -> Path:
    """The Alembic migrations (``script_location``)."""
    return _folder(files(MIGRATIONS_PACKAGE) / MIGRATIONS_FOLDER, "database migrations")
