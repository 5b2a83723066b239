"""A documented JSON body any system can send, signed with a shared secret (or sent with the token).

Body::

    {"key": "db-primary-down", "status": "firing", "title": "Primary database unreachable",
     "severity": "critical", "components": ["api", "checkout"], "message": "replication lag 90s",
     "occurred_at": "2026-01-01T09:12:00Z"}

Signature: ``X-Tocsin-Timestamp: <unix seconds>`` and ``X-Tocsin-Signature: sha256=<hex>``, the hex
HMAC-SHA256 with the shared secret of ``<timestamp>.<raw body>``. The timestamp is inside what is signed,
so a captured request cannot be replayed later with a fresh one; requests more than five minutes from
now are refused. A repeat of the same body within those five minutes is a repeat delivery: it changes
and sends nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator

from dispatcher.domain.models import Severity
from dispatcher.domain.policy import MonitoringPolicy
from dispatcher.ingest.alerts import AlertGroup, AlertLine, AlertStatus, clip_title

SIGNATURE_HEADER = "X-Tocsin-Signature"
TIMESTAMP_HEADER = "X-Tocsin-Timestamp"
MAX_SKEW_SECONDS = 300


_EDGE = " \t\n\r"
"""What is trimmed from either end of ``key`` and ``title``: the only blanks the request guard allows
among control characters (``dispatcher.domain.text_safety``), so the description can state the rule."""
_TEXT = r"[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]"
_SOLID = r"[^ \t\n\r\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]"
KEY_PATTERN = rf"^[ \t\n\r]*{_SOLID}{_TEXT}*$"
"""At least one character that is not blank."""
TITLE_PATTERN = rf"^[ \t\n\r]*{_SOLID}{_TEXT}+{_SOLID}[ \t\n\r]*$"
"""At least three characters once the blanks at either end are trimmed."""


class GenericAlert(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: str = Field(max_length=300, pattern=KEY_PATTERN)
    """Your id for the problem: the same key is the same incident."""
    status: AlertStatus
    title: str = Field(max_length=200, pattern=TITLE_PATTERN)
    severity: Severity | None = None
    """minor, major or critical; unset: the policy's ``monitoring.default_severity``."""
    components: list[str] = Field(default_factory=list, max_length=50)
    message: str | None = Field(default=None, max_length=2000)
    """Shown to the on-call with the notice; never to the public."""
    occurred_at: datetime | None = None
    """When this happened at the source. Send a new one for each new occurrence: the same body twice is
    taken as one delivery sent twice."""

    @field_validator("key", "title", "message")
    @classmethod
    def _trim(cls, value: str | None) -> str | None:
        return None if value is None else value.strip(_EDGE)

    @field_validator("components")
    @classmethod
    def _clean(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(c.strip(_EDGE) for c in value if c.strip(_EDGE)))


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The ``X-Tocsin-Signature`` value for ``body`` sent at ``timestamp`` (unix seconds, as text)."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def check_signature(secret: str, body: bytes, signature: str, timestamp: str, now: datetime) -> str | None:
    """None when the signature is good and fresh; otherwise what is wrong, in one line."""
    if not signature or not timestamp:
        return f"missing {SIGNATURE_HEADER} or {TIMESTAMP_HEADER}"
    try:
        sent = int(timestamp)
    except ValueError:
        return f"{TIMESTAMP_HEADER} must be unix seconds"
    if abs(now.timestamp() - sent) > MAX_SKEW_SECONDS:
        return (
            f"{TIMESTAMP_HEADER} is more than {MAX_SKEW_SECONDS // 60} minutes from now (stale or replayed)"
        )
    if not hmac.compare_digest(sign(secret, timestamp, body).encode(), signature.strip().encode()):
        return f"{SIGNATURE_HEADER} does not match the body"
    return None


def to_group(body: GenericAlert, monitoring: MonitoringPolicy) -> AlertGroup:
    material = json.dumps(body.model_dump(mode="json"), sort_keys=True)
    return AlertGroup(
        source="generic",
        key=body.key,
        status=body.status,
        title=clip_title(body.title),
        severity=body.severity or monitoring.default_severity,
        components=body.components,
        alerts=[AlertLine(name=body.key, status=body.status, summary=body.title, starts_at=body.occurred_at)],
        detail=body.message,
        dedupe_material=material,
    )
