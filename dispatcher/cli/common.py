"""What every command shares: settings, the runtime, one-line errors, durations.

The CLI starts in a fraction of a second because its modules import only typer, rich and the domain's
enums at import time: a command imports the use cases, the store and the providers it needs when it
runs (``tocsin --help`` needs none of them).
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, NoReturn, ParamSpec, TypeVar

import typer
from rich.console import Console

from dispatcher.domain import durations
from dispatcher.domain.errors import TocsinError

if TYPE_CHECKING:
    from pydantic import ValidationError

    from dispatcher.config.settings import Settings
    from dispatcher.engine.runtime import Runtime

console = Console()
err_console = Console(stderr=True)

P = ParamSpec("P")
R = TypeVar("R")


def fail(message: str, code: int = 1) -> NoReturn:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
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
        except OSError as exc:
            fail(f"{exc.strerror or exc}: {exc.filename}" if getattr(exc, "filename", None) else str(exc))
        except Exception as exc:
            message = _expected_library_error(exc)
            if message is None:
                raise
            fail(message)

    return wrapper


def _expected_library_error(exc: Exception) -> str | None:
    """One line for the library errors a user can act on: bad input, an unreachable database.

    A library's error can only be raised once the library is imported, so one that is not imported yet
    is not imported for the check (the commands that need neither stay quick)."""
    if "pydantic" in sys.modules:
        from pydantic import ValidationError

        if isinstance(exc, ValidationError):
            return describe_validation(exc)
    if "sqlalchemy" in sys.modules:
        from sqlalchemy.exc import OperationalError

        if isinstance(exc, OperationalError):
            return f"database unreachable or locked: {str(exc.orig).splitlines()[0]}"
    return None


def load_settings() -> Settings:
    from pydantic import ValidationError

    from dispatcher.config.settings import Settings

    try:
        return Settings()
    except ValidationError as exc:
        fail(f"configuration: {describe_validation(exc)}")
    except ValueError as exc:  # a broken tocsin.toml
        fail(f"configuration: {exc}")


def runtime(settings: Settings | None = None) -> Runtime:
    from dispatcher.engine.runtime import build_runtime

    return build_runtime(settings or load_settings())


def parse_duration(text: str) -> timedelta:
    """``90s``, ``45m``, ``2h``, ``1h30m``, ``1d``; a bare number is minutes."""
    try:
        return durations.parse_duration(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
