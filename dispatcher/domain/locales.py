"""Locale tags: what a valid one looks like, and which folders or texts to try for it."""

from __future__ import annotations

import re

DEFAULT_LOCALE = "en"
LOCALE_PATTERN = re.compile(r"^[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{2,8})*$")
"""A BCP 47-like tag (``en``, ``fr-CA``, ``pt_BR``): language, then optional subtags."""


def locale_candidates(locale: str) -> list[str]:
    """Locale folders to try, most specific first: ``fr_ca`` -> ``["fr-CA", "fr"]``.

    Anything that does not look like a locale tag gives ``[]`` (default templates only), so a locale
    can never point outside the template folders.
    """
    if not locale or not LOCALE_PATTERN.match(locale):
        return []
    lang, *rest = locale.replace("_", "-").split("-")
    lang = lang.lower()
    subtags = [part.upper() if len(part) == 2 else part for part in rest]
    full = "-".join([lang, *subtags])
    return [full, lang] if full != lang else [lang]
