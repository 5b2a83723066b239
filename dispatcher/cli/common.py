"""What every command shares: settings, the runtime, one-line errors, durations."""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import timedelta
from typing import NoReturn, ParamSpec, TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from sqlalchemy.exc import OperationalError

from dispatcher.config import strict
from dispatcher.config.settings import Settings
from dispatcher.domain import durations
from dispatcher.domain.errors import ConfigurationError, TocsinError
from dispatcher.engine.runtime import Runtime, build_runtime

console = Console()
err_console = Console(stderr=True)

P = ParamSpec("P")
R = TypeVar("R")


def fail(message: str, code: int = 1) -> NoReturn:
    # Messages quote tables like [retry]: printed as text, never read as rich markup.
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def describe_validation(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error["loc"]) or "input"
        if where.isupper():  # a setting named by its environment alias: show the setting's name
            where = where.removeprefix("TOCSIN_").lower()
        parts.append(f"{where}: {error['msg']}")
    return "; ".join(parts)


def friendly_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Expected errors become one clear line on stderr and a non-zero exit, never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except TocsinError as exc:
            fail(str(exc))
        except ValidationError as exc:
            fail(describe_validation(exc))
        except OperationalError as exc:
            fail(f"database unreachable or locked: {str(exc.orig).splitlines()[0]}")
        except OSError as exc:
            fail(f"{exc.strerror or exc}: {exc.filename}" if getattr(exc, "filename", None) else str(exc))

    return wrapper


def load_settings() -> Settings:
    """The settings, checked strictly (unknown keys, provider names and options): a problem stops the
    command here with one message naming the file, the table and the key."""
    try:
        return strict.load_settings()
    except ConfigurationError as exc:
        fail(str(exc))


def runtime(settings: Settings | None = None) -> Runtime:
    return build_runtime(settings or load_settings())


def parse_duration(text: str) -> timedelta:
    """``90s``, ``45m``, ``2h``, ``1h30m``, ``1d``; a bare number is minutes."""
    try:
        return durations.parse_duration(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
