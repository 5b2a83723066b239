"""Settings of the safety nets: request limits, channel readiness probes, and the canary contacts that
``tocsin check --send`` writes to.

Kept apart from ``settings.py`` so that file stays the one table of what Tocsin does; these say how it
protects itself and how it proves its channels still work.
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, field_validator

MIB = 1024 * 1024
_E164 = re.compile(r"^\+[1-9]\d{6,14}$")


class LimitSettings(BaseModel):
    """What one HTTP request may carry. Checked while the body is read, before authentication."""

    model_config = ConfigDict(extra="forbid")

    max_body_bytes: int = Field(default=4 * MIB, ge=1024, le=1024 * MIB)
    """Largest request body (413 beyond it); CSV imports have their own limit."""
    max_import_bytes: int = Field(default=20 * MIB, ge=1024, le=4096 * MIB)
    """Largest CSV body of a subscriber import (``/subscribers/import``, the console's import)."""
    max_json_depth: int = Field(default=32, ge=2, le=500)
    """Deepest nesting of arrays and objects a JSON body may have (400 beyond it)."""


class ReadinessSettings(BaseModel):
    """How often the tick probes every configured provider (``tocsin check`` probes on demand)."""

    model_config = ConfigDict(extra="forbid")

    probe_every: float = Field(default=300.0, ge=0)
    """Seconds between two rounds of readiness probes run by the tick; 0 turns the periodic probes off."""
    probe_timeout: float = Field(default=10.0, gt=0, le=120)
    """Seconds one probe may take before its provider counts as not ready."""


class CanarySettings(BaseModel):
    """Who receives the marked test message of ``tocsin check --send``: your own addresses, never
    customers. Social posts and the status page are public, so they are only probed, never sent to."""

    model_config = ConfigDict(extra="forbid")

    email: list[str] = Field(default_factory=list, max_length=20)
    """Staff email addresses."""
    sms: list[str] = Field(default_factory=list, max_length=5)
    """Canary phone numbers, E.164 (``+447911123456``)."""
    webhook: list[str] = Field(default_factory=list, max_length=5)
    """Canary webhook endpoints (http:// or https://)."""
    chat: list[str] = Field(default_factory=list, max_length=10)
    """Chat room names (of ``[providers.apprise.rooms]``) that get the test message."""
    wait: float = Field(default=30.0, ge=0, le=600)
    """Seconds ``check --send`` waits for the providers to confirm delivery (status callbacks, events)."""

    @field_validator("email")
    @classmethod
    def _emails(cls, values: list[str]) -> list[str]:
        if not values:
            return []
        # imported when there is an address to check: every command reads these settings
        from email_validator import EmailNotValidError, validate_email

        checked = []
        for value in values:
            try:
                checked.append(validate_email(value, check_deliverability=False).normalized)
            except EmailNotValidError as exc:
                raise ValueError(f"{value!r} is not an email address: {exc}") from None
        return checked

    @field_validator("sms")
    @classmethod
    def _numbers(cls, values: list[str]) -> list[str]:
        for value in values:
            if not _E164.match(value):
                raise ValueError(f"{value!r} is not an E.164 number like +447911123456")
        return values

    @field_validator("webhook")
    @classmethod
    def _urls(cls, values: list[str]) -> list[str]:
        for value in values:
            if not value.startswith(("http://", "https://")):
                raise ValueError(f"{value!r} must start with http:// or https://")
        return values
