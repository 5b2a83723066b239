"""X's weighted text length (twitter-text v3 configuration) and shortening a text to fit it.

The rules (``parseTweet`` in twitter-text v3, which X applies to ``POST /2/tweets``):

* the text is NFC-normalised first;
* a URL weighs 23 whatever its length (X wraps every link in a t.co link);
* an emoji weighs 2, including a whole emoji *sequence* (ZWJ family, flag, keycap, skin tone, ``❤️`` with
  its variation selector);
* any other code point weighs 1 in the ranges U+0000-U+10FF, U+2000-U+200D, U+2010-U+201F and
  U+2032-U+2037, and 2 everywhere else (CJK, most symbols, ``…``).

Approximations, documented because they can make our count differ from X's:

* URLs: ``http(s)://`` URLs end at whitespace or at the first character outside the ASCII URL set;
  trailing ``.,:;!?'")]`` are not part of a URL. Bare domains (``example.com/path``) are recognised with
  a fixed list of common generic TLDs plus any two-letter TLD (standing in for the ccTLDs); twitter-text
  uses the full IANA list, so ``node.js`` counts 23 here (an over-count, the safe direction) while a
  domain on an exotic TLD is counted character by character.
* Emoji: sequences are recognised by a hand-written pattern (pictographic blocks, U+1F000-U+1FAFF and the
  older emoji in U+2000-U+2BFF, with modifiers, variation selectors, ZWJ joins, flags, keycaps and tag
  sequences) rather than twemoji's generated list. ``©``/``®`` count as emoji only with U+FE0F.

When counts disagree X answers 400, which the adapter reports as a permanent error naming X's message.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterator

MAX_WEIGHTED_LENGTH = 280
URL_WEIGHT = 23
EMOJI_WEIGHT = 2
ELLIPSIS = "\u2026"

_LIGHT_RANGES = ((0, 4351), (8192, 8205), (8208, 8223), (8242, 8247))

_TLDS = (
    "com|net|org|info|biz|name|pro|mobi|aero|asia|coop|jobs|museum|travel|xxx|edu|gov|mil|int|arpa"
    "|app|dev|page|cloud|online|site|tech|store|shop|blog|news|link|live|email|network|systems|services"
    "|status|support|help|digital|software|codes|tools|world|today|company|solutions|global|group"
    "|xyz|top|club|space|website|host|io|ai|co|me|tv|ly"
    "|[a-z]{2}"
)
_LABEL = r"[a-z0-9](?:[a-z0-9_-]{0,61}[a-z0-9])?"
_URL_CHARS = r"[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]"
_URL_TRAILING = ".,:;!?'\")]"
# twitter-text: a URL cannot start right after a letter, digit, @, $ or # (or their full-width forms);
# a URL without protocol cannot start right after - _ . or / either.
_URL = (
    r"(?<![A-Za-z0-9@$#\uff20\uff03])"
    rf"(?:https?://{_URL_CHARS}+"
    rf"|(?<![-_./])(?:{_LABEL}\.)+(?:{_TLDS})(?![a-z0-9_-])(?::\d{{1,5}})?(?:/{_URL_CHARS}*)?)"
)

_PICTOGRAPHIC = (
    "\u203c\u2049\u2122\u2139\u2194-\u2199\u21a9\u21aa\u231a\u231b\u2328\u23cf\u23e9-\u23f3\u23f8-\u23fa"
    "\u24c2\u25aa\u25ab\u25b6\u25c0\u25fb-\u25fe\u2600-\u27bf\u2934\u2935\u2b05-\u2b07\u2b1b\u2b1c"
    "\u2b50\u2b55\u3030\u303d\u3297\u3299\U0001f000-\U0001faff"
)
_MODIFIER = "[\U0001f3fb-\U0001f3ff]"
_EMOJI_ELEMENT = (
    "(?:[\U0001f1e6-\U0001f1ff]{2}"  # a flag: two regional indicators
    "|[0-9#*]\ufe0f?\u20e3"  # keycap
    "|[\u00a9\u00ae]\ufe0f"  # text-default emoji that weigh 1 alone
    "|\U0001f3f4[\U000e0020-\U000e007e]+\U000e007f"  # subdivision flag (tag sequence)
    f"|[{_PICTOGRAPHIC}](?:\ufe0f|{_MODIFIER})?)"
)
_EMOJI = f"{_EMOJI_ELEMENT}(?:\u200d{_EMOJI_ELEMENT})*\ufe0f?"


@functools.cache
def _token_pattern() -> re.Pattern[str]:
    """Compiled on first use: it takes tens of milliseconds, which every process importing this module
    (``tocsin publish`` among them) would otherwise pay without measuring any text."""
    return re.compile(rf"(?P<url>{_URL})|(?P<emoji>{_EMOJI})|(?P<char>.)", re.IGNORECASE | re.DOTALL)


def _char_weight(char: str) -> int:
    code = ord(char)
    return 1 if any(lo <= code <= hi for lo, hi in _LIGHT_RANGES) else 2


def tokens(text: str) -> Iterator[tuple[str, int]]:
    """Split an (already NFC-normalised) text into (piece, weight): URLs, emoji sequences, code points.

    Cutting a text between pieces never splits a URL or an emoji sequence."""
    for match in _token_pattern().finditer(text):
        url = match.group("url")
        if url is not None:
            stripped = url.rstrip(_URL_TRAILING)
            if stripped.lower() in ("http://", "https://", "http:", "https:", "http", "https"):
                stripped = ""
            if stripped:
                yield stripped, URL_WEIGHT
            for char in url[len(stripped) :]:
                yield char, _char_weight(char)
        elif match.group("emoji") is not None:
            yield match.group("emoji"), EMOJI_WEIGHT
        else:
            char = match.group("char")
            yield char, _char_weight(char)


def weighted_length(text: str) -> int:
    """X's weighted length of ``text`` (see the module docstring)."""
    return sum(weight for _, weight in tokens(unicodedata.normalize("NFC", text)))


def fit_to_weighted(text: str, limit: int = MAX_WEIGHTED_LENGTH, link: str | None = None) -> str:
    """``text`` unchanged if it fits in ``limit``; else cut at a word boundary and ``"…"`` appended, or
    ``"… " + link`` when a link is given, so that the result weighs at most ``limit``.

    The link is only added when something was cut: it points readers to the full text. A word longer
    than half the room left is cut inside (never inside a URL or an emoji sequence) rather than leaving
    a stub. Raises ``ValueError`` when even the ellipsis and link alone do not fit.
    """
    if weighted_length(text) <= limit:
        return text
    return _cut(unicodedata.normalize("NFC", text), limit, link)


def urls(text: str) -> list[str]:
    """The URLs X would count at 23, in order (same recognition as ``weighted_length``)."""
    return [piece for piece, weight in tokens(unicodedata.normalize("NFC", text)) if weight == URL_WEIGHT]


def shorten_keeping_last_link(text: str, limit: int = MAX_WEIGHTED_LENGTH) -> str:
    """Like ``fit_to_weighted``, but when ``text`` holds URLs its last one (usually the status page)
    survives the cut: it is taken out of the text and appended after the ellipsis. A text without URLs
    is cut with no link."""
    if weighted_length(text) <= limit:
        return text
    normalized = unicodedata.normalize("NFC", text)
    found = urls(normalized)
    if not found:
        return _cut(normalized, limit, None)
    link = found[-1]
    at = normalized.rfind(link)
    body = (normalized[:at].rstrip() + " " + normalized[at + len(link) :].lstrip()).strip()
    return _cut(body, limit, link)


def _cut(normalized: str, limit: int, link: str | None) -> str:
    suffix = ELLIPSIS if link is None else f"{ELLIPSIS} {link}"
    room = limit - weighted_length(suffix)
    if room < 0:
        raise ValueError(f"the ellipsis and link alone weigh more than {limit}")
    # Joining the head and the suffix can change how the whole is tokenised (a cut word can become a
    # bare domain), so check the result and shrink the room until it fits.
    while room >= 0:
        head = _head(normalized, room)
        candidate = head + suffix if head else (ELLIPSIS if link is None else link)
        if weighted_length(candidate) <= limit:
            return candidate
        room -= 1
    return link if link is not None and weighted_length(link) <= limit else ""


def _head(text: str, room: int) -> str:
    """The longest start of ``text`` weighing at most ``room``, cut at a word boundary if sensible."""
    used = 0
    end = 0
    word_cut, word_cut_weight = 0, 0
    for piece, weight in tokens(text):
        if piece.isspace():
            word_cut, word_cut_weight = end, used
        if used + weight > room:
            break
        used += weight
        end += len(piece)
    else:
        return text.rstrip()
    # Cut at the last whitespace unless that throws away more than half of the room.
    if word_cut and word_cut_weight * 2 >= room:
        end = word_cut
    return text[:end].rstrip().rstrip(",;:-\u2013\u2014").rstrip()
