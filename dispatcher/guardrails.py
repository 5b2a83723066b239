"""Guardrails: checks on an update's text and context before it is published (see issue 5).

``error`` findings block publishing unless overridden with a recorded reason; ``warn`` only reports.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from dispatcher.models import Incident, UpdateDraft
from dispatcher.runtime import Runtime


@dataclass(frozen=True)
class Finding:
    rule: str
    level: Literal["error", "warn"]
    message: str
    span: tuple[int, int] | None = None
    """Where in the text the problem is (start, end), when it is in the text."""


def check_draft(rt: Runtime, incident: Incident, draft: UpdateDraft) -> list[Finding]:
    """Every finding for this draft of an update to ``incident`` (not yet written)."""
    return []
