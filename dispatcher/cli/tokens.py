"""``tocsin tokens …``: API tokens for ``tocsin api`` (shown once at creation, stored hashed)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from dispatcher.access.scopes import Scope
from dispatcher.cli.common import console, err_console, friendly_errors, runtime

app = typer.Typer(
    help="API tokens for `tocsin api`: scopes read, publish, subscribers, admin (admin holds all).",
    no_args_is_help=True,
)


@app.command("create")
@friendly_errors
def create(
    name: Annotated[str, typer.Argument(help="Who or what uses it, e.g. 'pagerduty-bridge'.")],
    scope: Annotated[
        list[Scope],
        typer.Option("--scope", help="read, publish, subscribers or admin (repeatable).", show_default=False),
    ],
) -> None:
    """Create a token and print it once: it cannot be shown again (only its hash is kept)."""
    from dispatcher.access.tokens import create_token

    token, secret = create_token(runtime(), name, scope)
    err_console.print(
        f"created token {token.id} ({token.name}; scopes {', '.join(s.value for s in token.scopes)}). "
        "Store it now: it is not shown again.",
        highlight=False,
    )
    print(secret)


@app.command("list")
@friendly_errors
def list_() -> None:
    """List tokens (id, name, scopes, prefix, when created, last used and revoked); never the tokens."""
    from dispatcher.access.tokens import list_tokens

    table = Table("id", "name", "scopes", "prefix", "created (UTC)", "last used (UTC)", "revoked (UTC)")

    def when(moment: object) -> str:
        return "-" if moment is None else f"{moment:%Y-%m-%d %H:%M}"

    for t in list_tokens(runtime()):
        table.add_row(
            str(t.id),
            t.name,
            ", ".join(s.value for s in t.scopes),
            t.prefix + "…",
            when(t.created_at),
            when(t.last_used_at),
            when(t.revoked_at),
        )
    console.print(table)


@app.command("revoke")
@friendly_errors
def revoke(token_id: Annotated[int, typer.Argument(help="Token id (see `tocsin tokens list`).")]) -> None:
    """Revoke a token: requests with it get 401 from then on."""
    from dispatcher.access.tokens import revoke_token

    token = revoke_token(runtime(), token_id)
    console.print(f"revoked token {token.id} ({token.name})", highlight=False)
