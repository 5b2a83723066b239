"""Scoped API tokens for the HTTP API.

A token is shown once, when it is created; the store keeps only its sha256 (and a short prefix so a
person can tell tokens apart in ``tocsin tokens list``). Scopes: ``read`` (incidents, updates,
deliveries, policy), ``publish`` (open incidents, change status, publish, approve, re-drive),
``subscribers`` (subscriber records and imports), ``admin`` (everything).
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict

from dispatcher.access.scopes import Scope as Scope  # re-exported: where it always was
from dispatcher.domain.errors import InvalidInput, NotFound

if TYPE_CHECKING:
    from dispatcher.engine.runtime import Runtime

# SQLAlchemy and the tables are imported by the functions that query: ``tocsin`` reads ``Scope`` to
# build its command line, and must not pay for the store to show its help.

TOKEN_PREFIX = "tcn_"
SHOWN_PREFIX_LENGTH = 12
LAST_USED_RESOLUTION = timedelta(minutes=1)
"""``last_used_at`` is written at most this often per token (no write on every request)."""


class ApiToken(BaseModel):
    """A stored token (never the secret itself)."""

    model_config = ConfigDict(frozen=True)

    id: int
    name: str
    scopes: list[Scope]
    prefix: str
    created_at: datetime
    revoked_at: datetime | None = None
    last_used_at: datetime | None = None

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None

    def allows(self, scope: Scope) -> bool:
        """``admin`` implies every scope."""
        return Scope.ADMIN in self.scopes or scope in self.scopes


def hash_token(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_token(rt: Runtime, name: str, scopes: Iterable[Scope | str]) -> tuple[ApiToken, str]:
    """Store a new token; returns it and its secret (the only time the secret is known)."""
    name = name.strip()
    if not name or len(name) > 100:
        raise InvalidInput("name: give a name of 1 to 100 characters")
    try:
        chosen = list(dict.fromkeys(Scope(s) for s in scopes))
    except ValueError as exc:
        raise InvalidInput(f"scope: {exc} (use {', '.join(s.value for s in Scope)})") from None
    if not chosen:
        raise InvalidInput(f"scope: give at least one of {', '.join(s.value for s in Scope)}")
    from sqlalchemy import insert

    from dispatcher.store.schema import api_tokens

    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    now = rt.clock.now()
    with rt.engine.begin() as conn:
        new_id = conn.execute(
            insert(api_tokens)
            .values(
                name=name,
                scopes=[s.value for s in chosen],
                token_hash=hash_token(secret),
                prefix=secret[:SHOWN_PREFIX_LENGTH],
                created_at=now,
            )
            .returning(api_tokens.c.id)
        ).scalar_one()
    return get_token(rt, int(new_id)), secret


def _from_row(row: object) -> ApiToken:
    return ApiToken.model_validate(row, from_attributes=True)


def get_token(rt: Runtime, token_id: int) -> ApiToken:
    from sqlalchemy import select

    from dispatcher.store.schema import api_tokens

    with rt.engine.connect() as conn:
        row = conn.execute(select(api_tokens).where(api_tokens.c.id == token_id)).first()
    if row is None:
        raise NotFound(f"no API token {token_id}")
    return _from_row(row)


def list_tokens(rt: Runtime) -> list[ApiToken]:
    from sqlalchemy import select

    from dispatcher.store.schema import api_tokens

    with rt.engine.connect() as conn:
        return [_from_row(r) for r in conn.execute(select(api_tokens).order_by(api_tokens.c.id))]


def revoke_token(rt: Runtime, token_id: int) -> ApiToken:
    """Revoke (idempotent: revoking a revoked token keeps its first revocation time)."""
    from sqlalchemy import update

    from dispatcher.store.schema import api_tokens

    with rt.engine.begin() as conn:
        found = conn.execute(
            update(api_tokens)
            .where(api_tokens.c.id == token_id, api_tokens.c.revoked_at.is_(None))
            .values(revoked_at=rt.clock.now())
        ).rowcount
    token = get_token(rt, token_id)
    if not found and not token.revoked:
        raise NotFound(f"no API token {token_id}")
    return token


def authenticate(rt: Runtime, secret: str) -> ApiToken | None:
    """The token with this secret (revoked or not), or None. Records when it was last used."""
    from sqlalchemy import select, update

    from dispatcher.store.schema import api_tokens

    with rt.engine.connect() as conn:
        row = conn.execute(select(api_tokens).where(api_tokens.c.token_hash == hash_token(secret))).first()
    if row is None:
        return None
    token = _from_row(row)
    now = rt.clock.now()
    if not token.revoked and (token.last_used_at is None or now - token.last_used_at > LAST_USED_RESOLUTION):
        with rt.engine.begin() as conn:
            conn.execute(update(api_tokens).where(api_tokens.c.id == token.id).values(last_used_at=now))
    return token
