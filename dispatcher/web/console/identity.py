"""Who is logging in: an API token (``dispatcher.access.tokens``), whose scopes decide what the console
allows."""

from __future__ import annotations

from dispatcher.access.tokens import ApiToken, Scope, authenticate, get_token
from dispatcher.domain.errors import NotFound
from dispatcher.engine.runtime import Runtime

__all__ = ["ApiToken", "Scope", "live_token", "verify_token"]


def verify_token(rt: Runtime, secret: str) -> ApiToken | None:
    """The live (not revoked) token ``secret`` is, or None."""
    secret = secret.strip()
    if not secret:
        return None
    token = authenticate(rt, secret)
    return None if token is None or token.revoked else token


def live_token(rt: Runtime, token_id: int) -> ApiToken | None:
    """A session lasts only as long as its token: revoking the token logs the console out."""
    try:
        token = get_token(rt, token_id)
    except NotFound:
        return None
    return None if token.revoked else token
