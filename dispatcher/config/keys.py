"""Key material: the HMAC key that signs links in messages (confirm a signup, unsubscribe), and the
signed tokens themselves.

The key is ``signing_key`` (``TOCSIN_SIGNING_KEY``); else derived from ``webhook_secret``; else, on a
SQLite file, a random key kept in a file beside the database (created once, mode 0600). On PostgreSQL
without either setting there is no key every process would share, and links cannot be made.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import threading
from datetime import datetime, timedelta
from pathlib import Path
from typing import Literal

from sqlalchemy.engine import make_url

from dispatcher.config.settings import Settings
from dispatcher.domain.errors import ConfigurationError

Purpose = Literal["confirm", "unsubscribe", "manage", "verify"]
CODES: dict[str, str] = {"confirm": "c", "unsubscribe": "u", "manage": "m", "verify": "v"}
CONFIRM_VALID_FOR = timedelta(days=7)
UNSUBSCRIBE_VALID_FOR = timedelta(days=400)
"""An unsubscribe link must keep working for as long as people keep old emails around."""
MANAGE_VALID_FOR = UNSUBSCRIBE_VALID_FOR
"""The "manage your subscription" link in every message lives as long as the unsubscribe link."""
VERIFY_VALID_FOR = timedelta(minutes=15)
"""An SMS confirmation code (and the page that takes it) is good for this long."""

_key_lock = threading.Lock()
_file_keys: dict[str, bytes] = {}


def signing_key(settings: Settings) -> bytes:
    """The HMAC key for consent links (see the module docstring for where it comes from)."""
    if settings.signing_key is not None:
        return settings.signing_key.get_secret_value().encode()
    if settings.webhook_secret is not None:
        return hmac.new(
            settings.webhook_secret.get_secret_value().encode(), b"tocsin consent links v1", hashlib.sha256
        ).digest()
    url = make_url(settings.database_url)
    database = url.database
    if url.get_backend_name() != "sqlite" or not database or database == ":memory:":
        raise ConfigurationError(
            "signing_key: set TOCSIN_SIGNING_KEY (or webhook_secret): subscribe and unsubscribe links "
            "need a key every Tocsin process shares"
        )
    return _key_file(Path(database).resolve().with_name(Path(database).name + ".signing-key"))


def _key_file(path: Path) -> bytes:
    """Read the key at ``path``, creating it first (atomically, mode 0600) if there is none."""
    with _key_lock:
        cached = _file_keys.get(str(path))
        if cached is not None:
            return cached
        if not path.exists():
            temp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                os.write(fd, secrets.token_hex(32).encode() + b"\n")
            finally:
                os.close(fd)
            try:
                os.link(temp, path)  # fails if another process made one first: theirs wins
            except FileExistsError:
                pass
            finally:
                temp.unlink()
        key = path.read_text(encoding="ascii").strip().encode()
        if len(key) < 32:
            raise ConfigurationError(f"{path}: signing key too short; delete the file to make a new one")
        _file_keys[str(path)] = key
        return key


# --- tokens ----------------------------------------------------------------------------------------


def signature(key: bytes, code: str, point_id: int, expires: int, address: str) -> str:
    payload = f"{code}.{point_id}.{expires}.{address.casefold()}".encode()
    digest = hmac.new(key, payload, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def make_token(key: bytes, purpose: Purpose, point_id: int, address: str, expires: datetime) -> str:
    code = CODES[purpose]
    stamp = int(expires.timestamp())
    return f"{code}.{point_id}.{stamp}.{signature(key, code, point_id, stamp, address)}"
