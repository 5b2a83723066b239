"""What every command shares: settings, the runtime, one-line errors, durations, ids.

The CLI starts in a fraction of a second because its modules import only typer, rich and the domain's
enums at import time: a command imports the use cases, the store and the providers it needs when it
runs (``tocsin --help`` needs none of them; ``tests/test_cli_startup.py`` checks it).
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Annotated, NoReturn, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from dispatcher.domain import durations, ids
from dispatcher.domain.errors import ConfigurationError, TocsinError

if TYPE_CHECKING:
    from pydantic import ValidationError

    from dispatcher.config.settings import Settings
    from dispatcher.engine.runtime import Runtime
    from dispatcher.runners.factory import Work

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
    """The settings, checked strictly (unknown keys, provider names and options): a problem stops the
    command here with one message naming the file, the table and the key."""
    from dispatcher.config import strict

    try:
        return strict.load_settings()
    except ConfigurationError as exc:
        fail(str(exc))


def runtime(settings: Settings | None = None) -> Runtime:
    from dispatcher.engine.runtime import build_runtime

    return build_runtime(settings or load_settings())


def require_broker(settings: Settings) -> None:
    """With ``REDIS_URL``, Redis must answer before anything is written or started: an update written
    while no worker can be told of it would read "published" and reach no one."""
    if settings.redis_url is None:
        return
    from dispatcher.config.show import mask_url
    from dispatcher.engine.readiness.services import check_broker

    found = check_broker(settings.redis_url)
    if found.problem is not None:
        why = found.problem.rstrip(".")
        fail(
            f"Redis unreachable at {mask_url(settings.redis_url)}: {why}; nothing was done "
            "(start Redis, or unset REDIS_URL to deliver from this process)"
        )


def work_here(rt: Runtime) -> Work:
    """Where this command's work goes (``dispatcher.runners.factory``), once the broker answers."""
    from dispatcher.runners.factory import work_for

    require_broker(rt.settings)
    return work_for(rt)


def parse_duration(text: str, flag: str) -> timedelta:
    """``90s``, ``45m``, ``2h``, ``1h30m``, ``1d``; a bare number is an error naming ``flag``."""
    try:
        return durations.parse_duration(text)
    except ValueError as exc:
        raise typer.BadParameter(f"{flag}: {exc}") from None


def _id_parser(kind: ids.IdKind) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            return ids.parse_id(text, kind)
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from None

    return parse


parse_incident_id = _id_parser(ids.IdKind.INCIDENT)
parse_update_id = _id_parser(ids.IdKind.UPDATE)

INCIDENT_HELP = "Incident id: inc-3 (or 3); see `tocsin incident list`."
UPDATE_HELP = "Update id: upd-7 (or 7); see `tocsin incident show inc-N`."
IncidentArg = Annotated[int, typer.Argument(parser=parse_incident_id, metavar="INCIDENT", help=INCIDENT_HELP)]
UpdateArg = Annotated[int, typer.Argument(parser=parse_update_id, metavar="UPDATE", help=UPDATE_HELP)]
