"""Small HTTP details every HTTP-based adapter shares: ``Retry-After`` and base URLs."""

from __future__ import annotations

import email.utils
import time
from collections.abc import Mapping


def retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds to wait from ``Retry-After`` (delta-seconds or an HTTP date), or None."""
    value = headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None
    return max(0.0, when - (time.time() if now is None else now))


def seconds_until_epoch(value: str | None, now: float | None = None) -> float | None:
    """Seconds until a rate-limit reset given as epoch seconds (``X-RateLimit-Reset``), or None."""
    if not value:
        return None
    try:
        return max(0.0, float(value) - (time.time() if now is None else now))
    except ValueError:
        return None


def base_url(value: str) -> str:
    """A provider base URL: http(s) only, no trailing slash (for pydantic validators)."""
    if not value.startswith(("http://", "https://")):
        raise ValueError("base_url must start with http:// or https://")
    return value.rstrip("/")
