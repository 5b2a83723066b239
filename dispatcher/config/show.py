"""The effective configuration, as ``tocsin config show`` prints it: every secret masked."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from dispatcher.config.settings import Settings

MASK = "********"
_SECRET_KEY = re.compile(r"(key|token|secret|password|passwd|credential)", re.IGNORECASE)
_PUBLIC_KEYS = {"sendgrid_event_public_key"}
"""Named like a secret but not one: shown."""


def mask_url(url: str) -> str:
    """Hide the password of a URL (``postgresql://user:pw@host/db``), keep the rest."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username or ''}:{MASK}@{parts.hostname or ''}"
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


def _masked(key: str, value: Any) -> Any:
    if key == "rooms":  # chat room URLs carry their tokens
        return {room: MASK for room in value} if isinstance(value, dict) else MASK
    if isinstance(value, dict):
        return {k: _masked(k, v) for k, v in value.items()}
    if isinstance(value, list):
        return [_masked(key, item) for item in value]
    if value is None:
        return None
    if key not in _PUBLIC_KEYS and _SECRET_KEY.search(key):
        return MASK
    if isinstance(value, str) and "://" in value:
        return mask_url(value)
    return value


def effective_config(settings: Settings) -> dict[str, Any]:
    """Every setting with its effective value; secrets, passwords in URLs and chat room URLs masked."""
    dumped = settings.model_dump(mode="json")
    return {key: _masked(key, value) for key, value in dumped.items()}
