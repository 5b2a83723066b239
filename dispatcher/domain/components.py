"""Component words: the statuses a component can have and the slug that names its pages. Pure."""

from __future__ import annotations

import re
import unicodedata

from dispatcher.domain.errors import InvalidInput

STATUSES = ("operational", "degraded_performance", "partial_outage", "major_outage", "under_maintenance")
_ALIASES = {
    "degraded": "degraded_performance",
    "partial": "partial_outage",
    "major": "major_outage",
    "maintenance": "under_maintenance",
}


def slugify(name: str) -> str:
    """``"EU Checkout (beta)"`` -> ``"eu-checkout-beta"``: ASCII, lower case, for file names and ids."""
    plain = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", plain.lower()).strip("-")[:80]
    return slug or "component"


def clean_status(value: str) -> str:
    """A status as people type it (``degraded``, ``Partial outage``) -> its name; ``InvalidInput``."""
    words = "_".join(value.strip().lower().replace("-", " ").split())
    words = _ALIASES.get(words, words)
    if words not in STATUSES:
        raise InvalidInput(f"status: {value!r} is not one of {', '.join(STATUSES)}")
    return words
