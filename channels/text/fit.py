"""Fit a short message (SMS, an X post) into its channel's budget by shortening its body only.

A short message has three parts: the **head** (who, the status word, the title), the **body** (what
someone wrote) and the **tail** (the promise of the next update, the link, the opt-out hint). A template
marks the body with ``BODY_START`` and ``BODY_END``; when the whole does not fit, the body is cut at a
word and ends with an ellipsis, so the reader still learns the status, when the next update comes and
where to read the rest. Only when even an empty body leaves the message too long is the head's title
cut too (its first words, the status, stay); the tail is never cut.

Inside the body, ``EXTRA_START`` and ``EXTRA_END`` mark what the layout adds that the reader can do
without (the list of affected components): it is left out first, and its loss alone does not count as
shortening the author's words.

A text without marks (a user's own template) is cut from its end, as before.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from channels.text.sms_segments import GSM7_ELLIPSIS, UCS2_ELLIPSIS, count_segments, fit_to_segments, is_gsm7
from channels.text.x_text import ELLIPSIS, MAX_WEIGHTED_LENGTH, fit_to_weighted, weighted_length

BODY_START = "\x02"
BODY_END = "\x03"
EXTRA_START = "\x0e"
EXTRA_END = "\x0f"
_EXTRAS = re.compile("\x0e[^\x0f]*\x0f")

_DANGLING = " \t\r\n,;:-\u2013\u2014"


@dataclass(frozen=True)
class Budget:
    """How long a channel's text may be, in its own terms."""

    name: str
    """``2 SMS segments``, ``280 weighted characters``: for messages about the budget."""
    fits: Callable[[str], bool]
    ellipsis: Callable[[str], str]
    """The ellipsis to end a cut body with, given the rest of the text (GSM-7 or not)."""
    cut_unmarked: Callable[[str, str | None], str]
    """How a text without body marks is cut (the whole text, from its end, keeping the link)."""


@dataclass(frozen=True)
class Fitted:
    text: str
    shortened: bool = False
    """The body (or, failing that, the title) had to be cut to fit."""
    over_budget: bool = False
    """Even cut to the bone it does not fit: the status, promise and link alone are too long."""


def sms_budget(max_segments: int) -> Budget:
    def ellipsis(rest: str) -> str:
        return GSM7_ELLIPSIS if is_gsm7(rest) else UCS2_ELLIPSIS

    return Budget(
        f"{max_segments} SMS segment(s)",
        lambda text: count_segments(text).segments <= max_segments,
        ellipsis,
        lambda text, link: fit_to_segments(text, max_segments, link),
    )


def x_budget(limit: int = MAX_WEIGHTED_LENGTH) -> Budget:
    return Budget(
        f"{limit} weighted characters",
        lambda text: weighted_length(text) <= limit,
        lambda rest: ELLIPSIS,
        lambda text, link: fit_to_weighted(text, limit, link),
    )


def strip_marks(text: str) -> str:
    """The text without its marks, extras kept (channels that are never shortened)."""
    for mark in (BODY_START, BODY_END, EXTRA_START, EXTRA_END):
        text = text.replace(mark, "")
    return text


def _join(*parts: str) -> str:
    return " ".join(p.strip() for p in parts if p.strip())


def fit(text: str, budget: Budget, link: str | None = None) -> Fitted:
    """``text`` (one line, maybe with body marks) within ``budget``; see the module docstring."""
    if BODY_START not in text or BODY_END not in text:
        plain = strip_marks(text)
        if budget.fits(plain):
            return Fitted(plain)
        try:
            return Fitted(budget.cut_unmarked(plain, link), shortened=True)
        except ValueError:
            return Fitted(plain, over_budget=True)
    head, rest = text.split(BODY_START, 1)
    body, tail = rest.split(BODY_END, 1)
    head, tail = strip_marks(head), strip_marks(tail)
    whole = _join(head, strip_marks(body), tail)
    if budget.fits(whole):
        return Fitted(whole)
    body = _EXTRAS.sub(" ", body)
    without_extras = _join(head, strip_marks(body), tail)
    if budget.fits(without_extras):
        return Fitted(without_extras)
    body = strip_marks(body)
    shortened = _shorten(head, body, tail, budget)
    if shortened is not None:
        return Fitted(shortened, shortened=True)
    # Not even the ellipsis fits between head and tail: cut the title (the head's end) as well.
    shortened = _shorten("", head, tail, budget)
    if shortened is not None:
        return Fitted(shortened, shortened=True)
    return Fitted(_join(head, budget.ellipsis(head + tail), tail), shortened=True, over_budget=True)


def _shorten(head: str, body: str, tail: str, budget: Budget) -> str | None:
    """The longest word-boundary cut of ``body`` with an ellipsis that fits, or None."""
    body = body.strip()

    def candidate(end: int) -> str:
        kept = body[:end].rstrip(_DANGLING)
        ellipsis = budget.ellipsis(head + kept + tail)
        return _join(head, kept + ellipsis, tail)

    if not budget.fits(candidate(0)):
        return None
    ends = sorted({i for i, ch in enumerate(body) if ch.isspace()})
    best = _longest(ends, lambda end: budget.fits(candidate(end)))
    return candidate(best or 0)


def _longest(ends: Sequence[int], fits: Callable[[int], bool]) -> int | None:
    """The largest of the ascending ``ends`` for which ``fits`` holds (a longer cut never fits better)."""
    low, high, found = 0, len(ends) - 1, None
    while low <= high:
        mid = (low + high) // 2
        if fits(ends[mid]):
            found, low = ends[mid], mid + 1
        else:
            high = mid - 1
    return found
