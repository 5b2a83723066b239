"""Who is running a command: a personal token (``--token`` or ``$TOCSIN_TOKEN``), or a plain name.

Whatever a second person must check (approving, rejecting, writing an update that waits for approval)
needs the personal token: the name it proves is compared by the token, so nobody approves their own
update by typing someone else's name. Everything else accepts ``--as NAME`` (or ``$TOCSIN_USER``, or
the operating-system user) for the timeline.
"""

from __future__ import annotations

import getpass
import os
from typing import TYPE_CHECKING, Annotated

import typer

from dispatcher.access.scopes import Scope
from dispatcher.domain.errors import InvalidInput
from dispatcher.domain.identity import Identity
from dispatcher.domain.vocabulary import ComponentImpact

if TYPE_CHECKING:
    from dispatcher.engine.runtime import Runtime

TOKEN_VARIABLE = "TOCSIN_TOKEN"


def default_actor() -> str:
    """Who is acting: ``$TOCSIN_USER``, else the operating-system user."""
    given = os.environ.get("TOCSIN_USER", "").strip()
    if given:
        return given
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return "unknown"


AsOption = Annotated[
    str | None, typer.Option("--as", help="Who you are (default: $TOCSIN_USER or your OS user).")
]
TokenOption = Annotated[
    str | None,
    typer.Option(
        "--token",
        help=f"Your personal API token (or ${TOKEN_VARIABLE}): proves who you are. Needed to approve or "
        "reject, and to write an update that waits for approval.",
        show_default=False,
    ),
]


def identify(rt: Runtime, as_: str | None, token: str | None, needed_for: str | None = None) -> Identity:
    """The identity of the person running the command.

    A token (``--token``, else ``$TOCSIN_TOKEN``) proves it; ``--as`` may then only repeat the token's
    name. ``needed_for`` (e.g. ``"approving"``): a token is required, a typed name is refused."""
    secret = token if token is not None else os.environ.get(TOKEN_VARIABLE, "")
    where = "--token" if token is not None else f"${TOKEN_VARIABLE}"
    if secret.strip():
        from dispatcher.access.identity import prove

        who = prove(rt, secret, Scope.PUBLISH, where)
        if as_ and as_.strip().casefold() != who.name.casefold():
            raise InvalidInput(f"--as: your token says you are {who.name}, not {as_.strip()}; leave --as out")
        return who
    if needed_for:
        raise InvalidInput(
            f"{needed_for} needs your personal token, which proves who you are (--as is not enough): "
            f"--token or ${TOKEN_VARIABLE} (`tocsin tokens create NAME --scope publish`)"
        )
    return Identity(as_ or default_actor())


def parse_impact(given: list[str] | None) -> dict[str, ComponentImpact] | None:
    """``["api=degraded", "checkout=major_outage"]`` → component → impact; ``InvalidInput`` naming a
    bad one."""
    found: dict[str, ComponentImpact] = {}
    for item in given or []:
        name, sep, level = item.partition("=")
        if not sep or not name.strip():
            raise InvalidInput(f"--impact: {item!r} is not COMPONENT=LEVEL (e.g. checkout=partial_outage)")
        try:
            found[name.strip()] = ComponentImpact(level.strip())
        except ValueError:
            levels = ", ".join(i.value for i in ComponentImpact)
            raise InvalidInput(f"--impact: {level.strip()!r} is not one of {levels}") from None
    return found or None
