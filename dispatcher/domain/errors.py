"""Expected errors: each carries a message a user can act on. Interfaces print them as one line."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dispatcher.domain.guardrail_rules import Finding


class TocsinError(Exception):
    """An expected failure with a clear, one-line message (no traceback for the user)."""


class NotFound(TocsinError):
    pass


class InvalidInput(TocsinError):
    pass


class ConfigurationError(TocsinError):
    pass


class NotInitialised(TocsinError):
    pass


class GuardrailsBlocked(InvalidInput):
    """A draft has guardrail findings of level ``error`` and no override reason."""

    def __init__(self, findings: Sequence[Finding]) -> None:
        self.findings = list(findings)
        listed = "; ".join(
            ("" if f.field == "message" else f"{f.field} ") + f"{f.rule}: {f.message}"
            for f in self.findings
            if f.level == "error"
        )
        super().__init__(f"guardrails: {listed} (fix the text, or give an override reason)")
