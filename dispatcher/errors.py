"""Expected errors: each carries a message a user can act on. Interfaces print them as one line."""

from __future__ import annotations


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
