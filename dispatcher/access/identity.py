"""Identities proven by tokens: the CLI's personal token, the API's bearer token, the console's session.

Four eyes compare who wrote an update with who approves it. Those must be facts, so they come from the
token a request carries, never from a name someone typed (``dispatcher.domain.identity``).
"""

from __future__ import annotations

from dispatcher.access.tokens import ApiToken, Scope, authenticate
from dispatcher.domain.errors import InvalidInput
from dispatcher.domain.identity import Identity
from dispatcher.engine.runtime import Runtime

API_PREFIX = "api:"
"""What the timeline shows before a token's name when it acted through the HTTP API."""


def of_token(token: ApiToken, prefix: str = "") -> Identity:
    """The identity a (checked) token proves; ``prefix`` marks where it acted (``api:``)."""
    return Identity(f"{prefix}{token.name}", token.id, token.name)


def prove(rt: Runtime, secret: str, scope: Scope = Scope.PUBLISH, what: str = "token") -> Identity:
    """The identity behind a personal token, which must be live and hold ``scope``; ``InvalidInput``
    naming ``what`` (the option or variable it came from) otherwise."""
    token = authenticate(rt, secret.strip()) if secret.strip() else None
    if token is None:
        raise InvalidInput(f"{what}: not a known token (`tocsin tokens create NAME --scope publish`)")
    if token.revoked:
        raise InvalidInput(f"{what}: the token {token.prefix}… was revoked")
    if not token.allows(scope):
        held = ", ".join(s.value for s in token.scopes)
        raise InvalidInput(f"{what}: this needs the {scope.value!r} scope; the token has {held}")
    return of_token(token)
