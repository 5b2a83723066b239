"""The console's session: a signed cookie naming the API token that logged in, and a CSRF token.

The cookie holds no secret the browser could reuse elsewhere: only the token's id and name, a random CSRF
token, a random session id (kept on the server, see ``dispatcher.access.console_sessions``: logging out
ends it there) and when the session ends, signed with HMAC-SHA256 under ``settings.console_secret``
(or a key made at start-up). It is HttpOnly and SameSite=Strict; every POST must also carry the CSRF
token in a form field or an ``X-CSRF-Token`` header, so a forged cross-site form fails even where
SameSite is not honoured.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import asdict, dataclass

SESSION_COOKIE = "tocsin_console"
LOGIN_COOKIE = "tocsin_console_login"
SESSION_SECONDS = 12 * 3600
LOGIN_FORM_SECONDS = 3600


@dataclass(frozen=True)
class Session:
    token_id: int
    actor: str
    """Who is acting: the token's name, recorded as author, approver and actor of status changes."""
    csrf: str
    expires: float
    sid: str = ""
    """Random session id; the store keeps its hash, so logging out ends the session on the server."""


class CookieSigner:
    """Signs and checks small JSON payloads; anything altered, expired or malformed reads as None."""

    def __init__(self, key: bytes) -> None:
        self._key = hashlib.sha256(b"tocsin-console-session\0" + key).digest()

    def _mac(self, body: bytes) -> str:
        return (
            base64.urlsafe_b64encode(hmac.new(self._key, body, hashlib.sha256).digest()).decode().rstrip("=")
        )

    def dumps(self, payload: dict[str, object]) -> str:
        body = base64.urlsafe_b64encode(json.dumps(payload, separators=(",", ":")).encode()).decode()
        return f"{body.rstrip('=')}.{self._mac(body.rstrip('=').encode())}"

    def loads(self, value: str | None) -> dict[str, object] | None:
        if not value or value.count(".") != 1:
            return None
        body, mac = value.split(".")
        if not hmac.compare_digest(mac, self._mac(body.encode())):
            return None
        try:
            payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        except ValueError:
            return None
        return payload if isinstance(payload, dict) else None

    def new_session(self, token_id: int, actor: str, now: float | None = None) -> tuple[Session, str]:
        session = Session(
            token_id=token_id,
            actor=actor,
            csrf=secrets.token_urlsafe(24),
            expires=(now or time.time()) + SESSION_SECONDS,
            sid=secrets.token_urlsafe(32),
        )
        return session, self.dumps(asdict(session))

    def read_session(self, value: str | None, now: float | None = None) -> Session | None:
        payload = self.loads(value)
        if payload is None:
            return None
        try:
            session = Session(
                token_id=int(payload["token_id"]),  # type: ignore[call-overload]
                actor=str(payload["actor"]),
                csrf=str(payload["csrf"]),
                expires=float(payload["expires"]),  # type: ignore[arg-type]
                sid=str(payload.get("sid", "")),
            )
        except (KeyError, TypeError, ValueError):
            return None
        return session if session.expires > (now or time.time()) else None

    def login_nonce(self) -> tuple[str, str]:
        """A CSRF token for the login form (no session yet) and the cookie that vouches for it."""
        nonce = secrets.token_urlsafe(24)
        return nonce, self.dumps({"login": nonce, "expires": time.time() + LOGIN_FORM_SECONDS})

    def check_login_nonce(self, cookie: str | None, given: str) -> bool:
        payload = self.loads(cookie)
        if payload is None or not given:
            return False
        expires = payload.get("expires")
        if not isinstance(expires, int | float) or expires < time.time():
            return False
        return hmac.compare_digest(str(payload.get("login", "")), given)


def csrf_matches(session: Session, given: str | None) -> bool:
    return bool(given) and hmac.compare_digest(session.csrf, given or "")
