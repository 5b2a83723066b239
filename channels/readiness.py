"""Readiness probes: a harmless real call that proves a provider would carry a message now, without
sending one (SendGrid's API-key scopes, Twilio's account, X's ``users/me``, an SMTP login and NOOP…).

An adapter that can be probed has a ``probe()`` method returning a ``Readiness``; it never raises for
what the provider answers (a refusal is an answer: not ready, and why). Third-party adapters may add
one; an adapter without it is reported as "not probed", and the canary (``tocsin check --send``) is then
the only proof that it works.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class Readiness:
    """What a probe found: whether the provider would carry a message now, and what it saw or why not."""

    ready: bool
    detail: str

    @classmethod
    def ok(cls, detail: str) -> Readiness:
        return cls(True, detail)

    @classmethod
    def not_ready(cls, detail: str) -> Readiness:
        return cls(False, detail)


@runtime_checkable
class Probing(Protocol):
    """An adapter that can prove it works without sending."""

    def probe(self) -> Readiness: ...


NOT_PROBED = "not probed: this provider has no readiness probe (prove it with `tocsin check --send`)"


def folder_writable(folder: Path, what: str) -> Readiness:
    """Whether files can be written in ``folder`` (created if missing): one tiny file, then removed."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handle, name = tempfile.mkstemp(prefix=".tocsin-probe-", dir=folder)
        os.close(handle)
        os.unlink(name)
    except OSError as exc:
        return Readiness.not_ready(f"{what} {folder}: cannot write: {exc.strerror or exc}")
    return Readiness.ok(f"{what} {folder} is writable")
