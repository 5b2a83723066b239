"""How many SMS segments a text costs, and how to shorten a text to a segment budget.

An SMS is sent in one of two encodings (3GPP TS 23.038):

* **GSM-7** when every character is in the GSM 03.38 basic set or its extension table. One segment holds
  160 septets; a split message holds 153 per segment (7 septets go to the concatenation header).
  Extension characters (``^ { } [ ] ~ | € \\`` and form feed) are sent as ESC + character: 2 septets.
* **UCS-2** (really UTF-16) as soon as one character is outside GSM-7, for the *whole* message: 70 code
  units in one segment, 67 per segment when split. Characters outside the BMP (most emoji) are a
  surrogate pair: 2 code units.

Segment counting packs characters greedily, the way handsets and Twilio do: an escape sequence (GSM-7)
or a surrogate pair (UCS-2) is never split across two segments, so a split segment can hold one unit
fewer than its nominal 153 / 67. Twilio's optional "smart encoding" (replacing curly quotes and the like
by GSM-7 look-alikes) is not modelled: the text is counted as given.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

Encoding = Literal["GSM-7", "UCS-2"]

GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
"""The GSM 03.38 default alphabet (the ESC code itself is not a character a text can contain)."""

GSM7_EXTENSION = frozenset("\f^{}\\[~]|€")
"""Characters of the GSM 03.38 extension table: each costs 2 septets (ESC + character)."""

GSM7_SINGLE, GSM7_MULTI = 160, 153
UCS2_SINGLE, UCS2_MULTI = 70, 67

GSM7_ELLIPSIS = "..."
UCS2_ELLIPSIS = "…"


@dataclass(frozen=True)
class SegmentCount:
    """``units`` are septets for GSM-7 and UTF-16 code units for UCS-2."""

    encoding: Encoding
    units: int
    segments: int


_LOOK_ALIKES = str.maketrans(
    {
        "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u2032": "'",
        "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u00ab": '"', "\u00bb": '"',
        "\u2013": "-", "\u2014": "-", "\u2212": "-",
        "\u2026": "...",
        "\u00a0": " ", "\u202f": " ", "\u2009": " ",
    }
)  # fmt: skip


def gsm_friendly(text: str) -> str:
    """Typographic quotes, dashes, ellipses and narrow spaces replaced by their GSM-7 look-alikes.

    One curly apostrophe makes a whole SMS UCS-2, which holds 70 characters a segment instead of 160
    (Twilio's optional "smart encoding" does the same on its side; doing it here keeps our count true)."""
    return text.translate(_LOOK_ALIKES)


def is_gsm7(text: str) -> bool:
    """Whether ``text`` can be sent in GSM-7 (basic set plus extension table)."""
    return all(ch in GSM7_BASIC or ch in GSM7_EXTENSION for ch in text)


def _char_units(ch: str, encoding: Encoding) -> int:
    if encoding == "GSM-7":
        return 2 if ch in GSM7_EXTENSION else 1
    return 2 if ord(ch) > 0xFFFF else 1


def count_segments(text: str) -> SegmentCount:
    """Encoding, units and segments of ``text``. The empty text is one (empty) segment."""
    encoding: Encoding = "GSM-7" if is_gsm7(text) else "UCS-2"
    sizes = [_char_units(ch, encoding) for ch in text]
    units = sum(sizes)
    single, multi = (GSM7_SINGLE, GSM7_MULTI) if encoding == "GSM-7" else (UCS2_SINGLE, UCS2_MULTI)
    if units <= single:
        return SegmentCount(encoding, units, 1)
    segments, used = 1, 0
    for size in sizes:  # greedy: a 2-unit character never straddles two segments
        if used + size > multi:
            segments, used = segments + 1, 0
        used += size
    return SegmentCount(encoding, units, segments)


def fit_to_segments(text: str, max_segments: int, link: str | None = None) -> str:
    """``text`` unchanged if it fits in ``max_segments``; otherwise the longest word-boundary prefix
    followed by an ellipsis and `` link`` (or only the ellipsis without a link) that fits.

    The ellipsis is ``...`` when the shortened result is GSM-7 (``…`` is not in GSM-7 and would switch
    the whole message to UCS-2, costing more than half its room), and ``…`` when the result is UCS-2
    anyway. A text whose only non-GSM-7 characters are cut off becomes GSM-7 and regains that room.
    If no word boundary leaves any text, the cut falls inside the first word instead.

    Raises ``ValueError`` if ``max_segments`` < 1, or if the link with an ellipsis alone does not fit.
    """
    if max_segments < 1:
        raise ValueError(f"max_segments must be at least 1, not {max_segments}")
    if count_segments(text).segments <= max_segments:
        return text
    tail = "" if not link else " " + link.strip()

    def shortened(prefix: str) -> str:
        ellipsis = GSM7_ELLIPSIS if is_gsm7(prefix + tail) else UCS2_ELLIPSIS
        return prefix + ellipsis + tail

    def fits(prefix: str) -> bool:
        return count_segments(shortened(prefix)).segments <= max_segments

    if not fits(""):
        raise ValueError(f"the link {link!r} does not fit in {max_segments} SMS segment(s)")

    # Word boundaries: cut just before each whitespace run, dropping trailing whitespace and dangling
    # separators. A longer cut never takes fewer segments, so the longest fitting one is found by
    # bisection over the cut positions (cheap even for a text the size of an email).
    ends = sorted({_clean_end(text, i) for i, ch in enumerate(text) if ch.isspace()} - {0})
    best = _longest_fitting(ends, lambda end: fits(text[:end]))
    if best is None:
        # One giant first word (or a URL): cut inside it.
        best = _longest_fitting(range(1, len(text)), lambda end: fits(text[:end])) or 0
    return shortened(text[:best])


_DANGLING = frozenset(" \t\r\n\f,;:-\u2013\u2014")  # whitespace, separators, en and em dash


def _clean_end(text: str, end: int) -> int:
    """Where ``text[:end]`` ends once trailing whitespace and dangling separators are dropped."""
    while end > 0 and text[end - 1] in _DANGLING:
        end -= 1
    return end


def _longest_fitting(ends: Sequence[int], fits: Callable[[int], bool]) -> int | None:
    """The largest of the ascending ``ends`` for which ``fits`` holds (``fits`` must be monotonic)."""
    low, high, found = 0, len(ends) - 1, None
    while low <= high:
        mid = (low + high) // 2
        if fits(ends[mid]):
            found, low = ends[mid], mid + 1
        else:
            high = mid - 1
    return found
