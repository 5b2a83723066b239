"""Names in the configuration that must mean something: provider names, checked against the registry
(built-ins and ``tocsin.channels`` entry points) when the settings load, with a "did you mean"."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping, Sequence

from pydantic_core import PydanticCustomError

from channels import registry

UNKNOWN_PROVIDER = "unknown_provider"
"""The pydantic error type of a provider name the registry does not know."""


def nearest(word: str, candidates: Iterable[str]) -> str | None:
    """The candidate closest to ``word`` (a typo's likely meaning), or None when none is close."""
    pool = list(candidates)
    lowered = {c.lower(): c for c in pool}
    if word.lower() in lowered:  # a case slip: "SendGrid" for "sendgrid"
        return lowered[word.lower()]
    found = difflib.get_close_matches(word, pool, n=1, cutoff=0.6)
    return found[0] if found else None


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """`` (did you mean `x`?)`` or nothing."""
    guess = nearest(word, candidates)
    return f" (did you mean `{guess}`?)" if guess is not None and guess != word else ""


def check_provider_names(paths: Mapping[str, Sequence[str]], *, table: bool = False) -> None:
    """Raise one ``unknown_provider`` error naming every unknown provider under its dotted path
    (``channels.email.providers``, or ``providers.sendgird`` for a table named after no provider)."""
    known = sorted(registry.available())
    unknown = [(path, name) for path, names in paths.items() for name in names if name not in known]
    if not unknown:
        return
    problems = [{"path": path, "name": name, "hint": did_you_mean(name, known)} for path, name in unknown]
    listed = "; ".join(f"unknown provider `{p['name']}`{p['hint']}" for p in problems)
    raise PydanticCustomError(
        UNKNOWN_PROVIDER,
        "{listed}; known providers: {known}",
        {"listed": listed, "known": ", ".join(known), "problems": problems, "table": table},
    )
