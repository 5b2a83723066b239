"""What the guardrails look for: every word list and pattern in one place, and one finder per rule.

A finder takes a :class:`Draft` (plain values, no database) and yields :class:`Hit` s: what is wrong,
and where in the text when it is in the text. ``dispatcher.comms.guardrails`` gives each finder its rule id
and level and decides which drafts it applies to.

Word lists are plain phrases, matched case-insensitively on word boundaries, with any run of spaces
and either apostrophe (straight or curly) accepted. French past participles are listed with their
agreements.
"""

from __future__ import annotations

import ipaddress
import itertools
import math
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from dispatcher.domain.models import IncidentStatus, Severity

Level = Literal["error", "warn"]


@dataclass(frozen=True)
class Finding:
    rule: str
    level: Level
    message: str
    span: tuple[int, int] | None = None
    """Where in the text the problem is (start, end), when it is in the text."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "level": self.level,
            "message": self.message,
            "span": list(self.span) if self.span else None,
        }

Span = tuple[int, int]


@dataclass(frozen=True)
class Hit:
    message: str
    span: Span | None = None


@dataclass(frozen=True)
class Draft:
    """Everything the rules look at, as plain values."""

    text: str
    update_status: IncidentStatus
    incident_status: IncidentStatus
    severity: Severity
    has_next_update: bool
    first_public: bool
    """No earlier public update on this incident went out."""
    own_email_domains: frozenset[str] = field(default_factory=frozenset)
    """Addresses at these domains may appear in public text (the organisation's own support desk)."""


# ---------------------------------------------------------------------------------------------------
# Word lists
# ---------------------------------------------------------------------------------------------------

VAGUE_TIMING = (
    "as soon as possible",
    "asap",
    "shortly",
    "soon",
    "in a bit",
    "momentarily",
    "dès que possible",
    "sous peu",
    "bientôt",
)

NO_ETA_YET = (
    "we don't know yet",
    "we do not know yet",
    "we don't yet know",
    "we do not yet know",
    "no eta yet",
    "no eta",
    "no estimate yet",
    "not yet known",
    "nous ne savons pas encore",
    "on ne sait pas encore",
    "pas encore d'estimation",
    "pas d'eta",
)

RESOLVED_CLAIMS = (
    "resolved",
    "fixed",
    "restored",
    "back to normal",
    "fully operational",
    "résolu", "résolue", "résolus", "résolues",
    "corrigé", "corrigée", "corrigés", "corrigées",
    "rétabli", "rétablie", "rétablis", "rétablies",
)  # fmt: skip

NOT_A_CLAIM_WHEN_BEFORE = (
    # negation: "not yet resolved", "isn't fixed" (any word ending in n't), "n'est pas rétabli"
    "not", "no", "never", "yet", "ne", "pas", "non", "jamais",
    # a future or a condition: "will be restored", "once it is fixed", "until service is restored"
    "be", "being", "will", "once", "until", "till", "when", "whenever", "after", "before", "if",
    "get", "getting", "bring", "sera", "seront", "être", "quand", "lorsque", "dès", "fois", "soit",
    # only in part: "partially restored"
    "partially", "partly", "partiellement",
)  # fmt: skip
"""A resolution word is not a claim when one of these is among the four words before it (same sentence)."""

APOLOGIES = (
    "sorry",
    "apologise", "apologize", "apologises", "apologizes", "apologising", "apologizing",
    "apology", "apologies",
    "regret", "regrets",
    "désolé", "désolée", "désolés", "désolées",
    "excuse", "excuses",
)  # fmt: skip

INTERNAL_DOMAIN_SUFFIXES = ("internal", "local", "localdomain", "corp", "lan", "intranet", "home.arpa")
SERVER_ENVIRONMENTS = ("prod", "production", "preprod", "staging", "stg", "dev", "qa", "uat")
SERVER_ROLES = (
    "db", "pg", "postgres", "mysql", "redis", "mongo", "kafka", "rabbit", "rabbitmq", "es", "elastic",
    "web", "app", "worker", "cache", "lb", "k8s", "node", "srv", "server", "host", "vm",
)  # fmt: skip

PRIVATE_NETWORKS = tuple(
    ipaddress.ip_network(net)
    for net in (
        "10.0.0.0/8",  # RFC 1918
        "172.16.0.0/12",
        "192.168.0.0/16",
        "127.0.0.0/8",  # loopback
        "169.254.0.0/16",  # link-local
        "::1/128",
        "fc00::/7",  # unique local addresses
        "fe80::/10",
    )
)

STACK_TRACE_MARKERS = (
    r"Traceback \(most recent call last\)",
    r'File "[^"\n]+", line \d+',
    r"Exception in thread \S+",
    r"\bat (?:[A-Za-z_$][\w$]*\.)+[\w$<>]+ ?\(",  # Java, JavaScript frames: at com.foo.Bar.run(
    r"\bgoroutine \d+ \[",
)

SECRET_MARKERS = (
    r"\b[sr]k_(?:live|test)_[A-Za-z0-9]{8,}",  # Stripe
    r"\bA(?:KIA|SIA)[0-9A-Z]{16}\b",  # AWS access key id
    r"\bgh[pousr]_[A-Za-z0-9]{20,}",  # GitHub tokens
    r"\bgithub_pat_\w{20,}",
    r"\bxox[abpors]-[A-Za-z0-9-]{10,}",  # Slack
    r"\beyJ[A-Za-z0-9_-]{8,}(?:\.[A-Za-z0-9_-]+){1,2}",  # JWT
    r"\b[0-9a-fA-F]{32,}\b",  # hex keys and hashes
)

LONG_RUN_MIN = 32
"""Base64-looking runs at least this long count as secrets when they look random (see below)."""
RANDOM_ENOUGH_BITS = 4.0
"""Shannon entropy per character above which a base64-looking run is taken for a key, not words."""
MIN_CLASS_CHANGES = 0.4
"""Random base64 switches between upper case, lower case and digits at about 0.6 of its characters;
words, even joined ones ("Donaudampfschiff…123"), rarely do."""
MAX_SEPARATOR_SHARE = 0.2
"""Random base64 has few of / + _ -; a URL path or a slug has one every few characters."""


# ---------------------------------------------------------------------------------------------------
# Patterns built from the lists
# ---------------------------------------------------------------------------------------------------


APOSTROPHE = "['\u2019]"
"""A straight or a curly apostrophe, in a pattern."""


def phrases(words: Iterable[str]) -> re.Pattern[str]:
    """One case-insensitive pattern for every phrase, longest first, on word boundaries."""
    parts = []
    for word in sorted(words, key=len, reverse=True):
        part = re.escape(word).replace(r"\ ", r"\s+").replace("'", APOSTROPHE)
        parts.append(part)
    return re.compile(r"(?<!\w)(?:" + "|".join(parts) + r")(?!\w)", re.IGNORECASE)


VAGUE_TIMING_RE = phrases(VAGUE_TIMING)
NO_ETA_YET_RE = phrases(NO_ETA_YET)
RESOLVED_RE = phrases(RESOLVED_CLAIMS)
APOLOGY_RE = phrases(APOLOGIES)

_NUMBER_WORDS = (
    r"\d+(?:[.,]\d+)?(?:\s*(?:-|to|à)\s*\d+)?|an?|one|two|three|four|five|six|ten|fifteen|twenty|thirty"
    r"|forty-five|half an?|une?|deux|trois|quatre|cinq|dix|quinze|vingt|trente"
)
_UNITS = r"seconds?|secs?|minutes?|mins?|hours?|hrs?|h|days?|heures?|jours?"
_MONTHS = (
    r"jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sep(?:t(?:ember)?)?"
    r"|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?|janvier|février|mars|avril|mai|juin|juillet|août"
    r"|septembre|octobre|novembre|décembre"
)
_DAYS = (
    r"monday|tuesday|wednesday|thursday|friday|saturday|sunday|tomorrow|tonight"
    r"|lundi|mardi|mercredi|jeudi|vendredi|samedi|dimanche|demain"
)

ETA_RE = re.compile(
    "|".join(
        (
            r"\b(?:[01]?\d|2[0-3])(?::[0-5]\d|h(?:[0-5]\d)?)\b",  # 14:30, 14h30, 15h
            r"\b(?:1[0-2]|0?[1-9])(?::[0-5]\d)?\s?(?:[ap]m\b|[ap]\.m\.)",  # 3pm, 3:30 p.m.
            rf"\b(?:by|before|until|around|at|avant|vers|à|d{APOSTROPHE}ici)\s+(?:noon|midnight|midi|minuit)\b",
            # within 2 hours, in 30 minutes, in the next hour, dans 20 minutes
            rf"\b(?:within|in|under|dans|d{APOSTROPHE}ici|sous|en)\s+(?:(?:the\s+next|les\s+prochaines?)\s+"
            rf"(?:(?:{_NUMBER_WORDS})\s*)?|(?:about\s+|around\s+|roughly\s+|approximately\s+|environ\s+"
            rf"|moins\s+de\s+)?(?:{_NUMBER_WORDS})\s*)(?:{_UNITS})\b",
            r"\b\d{4}-\d{2}-\d{2}\b",  # 2026-01-05
            r"\b\d{1,2}/\d{1,2}(?:/\d{2,4})?\b",  # 05/01, 5/1/2026
            rf"\b(?:{_MONTHS})\.?\s+\d{{1,2}}(?:st|nd|rd|th)?\b",  # January 5
            rf"\b\d{{1,2}}(?:st|nd|rd|th|er)?\s+(?:{_MONTHS})\b",  # 5 January, 1er mars
            # by tomorrow, before Monday, d'ici demain
            rf"\b(?:by|before|on|until|avant|d{APOSTROPHE}ici|jusqu{APOSTROPHE}à)\s+(?:{_DAYS})\b",
        )
    ),
    re.IGNORECASE,
)

INTERNAL_HOST_RE = re.compile(
    "|".join(
        (
            # db-3.internal, build.corp, printer.local
            r"(?<![\w.@-])[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*"
            r"\.(?:" + "|".join(re.escape(s) for s in INTERNAL_DOMAIN_SUFFIXES) + r")(?![\w-]|\.\w)",
            # prod-db-01, staging-api2 (not a ticket number such as DEV-123)
            r"(?<![\w.-])(?:" + "|".join(SERVER_ENVIRONMENTS) + r")(?:-[a-z][a-z0-9]*)+-?\d+[a-z0-9]*"
            r"(?![\w-])",
            # db-3, web01, k8s-node-12 (a server role followed by its number)
            r"(?<![\w.-])(?:" + "|".join(SERVER_ROLES) + r")-?\d{1,3}[a-z]?(?![\w-])",
        )
    ),
    re.IGNORECASE,
)

IPV4_CANDIDATE_RE = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w.]\d)")
IPV6_CANDIDATE_RE = re.compile(
    r"(?<![\w:.])(?:[0-9a-f]{0,4}:){2,7}(?:[0-9a-f]{1,4}|(?:\d{1,3}\.){3}\d{1,3})?(?![\w:])", re.IGNORECASE
)
STACK_TRACE_RE = re.compile("|".join(STACK_TRACE_MARKERS))
EMAIL_RE = re.compile(r"(?<![\w.+-])[\w.+-]+@([A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9-]+)+)")
SECRET_RE = re.compile("|".join(SECRET_MARKERS))
BASE64_RUN_RE = re.compile(rf"(?<![A-Za-z0-9+/_-])[A-Za-z0-9+/_-]{{{LONG_RUN_MIN},}}={{0,2}}")
NO_SEPARATORS = str.maketrans("", "", "/+_-")
SENTENCE_END_RE = re.compile(r"[.!?;:\n]")
WORD_RE = re.compile(r"[\w'\u2019]+")


# ---------------------------------------------------------------------------------------------------
# Finders, one per rule
# ---------------------------------------------------------------------------------------------------


def _quoted(text: str, span: Span) -> str:
    return f"“{text[span[0] : span[1]]}”"


def _not_overlapping(matches: Iterable[re.Match[str]]) -> Iterator[re.Match[str]]:
    taken: list[Span] = []
    for m in sorted(matches, key=lambda m: (m.start(), -m.end())):
        if any(m.start() < end and start < m.end() for start, end in taken):
            continue
        taken.append(m.span())
        yield m


def vague_timing(draft: Draft) -> Iterator[Hit]:
    """Vague timing ("soon") with no time given and no plain "we don't know yet"."""
    if ETA_RE.search(draft.text) or NO_ETA_YET_RE.search(draft.text):
        return
    for m in VAGUE_TIMING_RE.finditer(draft.text):
        yield Hit(
            f"vague timing {_quoted(draft.text, m.span())} with no time: give one (“by 14:30”, "
            "“within 2 hours”) or say “we don't know yet”",
            m.span(),
        )


def internal_hostnames(draft: Draft) -> Iterator[Hit]:
    for m in _not_overlapping(INTERNAL_HOST_RE.finditer(draft.text)):
        yield Hit(f"internal host name {_quoted(draft.text, m.span())} in public text", m.span())


def _private(candidate: str) -> bool:
    try:
        address = ipaddress.ip_address(candidate)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in net for net in PRIVATE_NETWORKS if net.version == address.version)


def private_addresses(draft: Draft) -> Iterator[Hit]:
    candidates = [*IPV4_CANDIDATE_RE.finditer(draft.text), *IPV6_CANDIDATE_RE.finditer(draft.text)]
    for m in _not_overlapping(candidates):
        if _private(m.group()):
            yield Hit(f"private network address {_quoted(draft.text, m.span())} in public text", m.span())


def stack_traces(draft: Draft) -> Iterator[Hit]:
    for m in STACK_TRACE_RE.finditer(draft.text):
        yield Hit(f"stack trace {_quoted(draft.text, m.span())} in public text", m.span())


def email_addresses(draft: Draft) -> Iterator[Hit]:
    for m in EMAIL_RE.finditer(draft.text):
        if m.group(1).lower().rstrip(".") in draft.own_email_domains:
            continue
        yield Hit(f"email address {_quoted(draft.text, m.span())} in public text", m.span())


def _bits_per_char(text: str) -> float:
    counts = Counter(text)
    return -sum(n / len(text) * math.log2(n / len(text)) for n in counts.values())


def _class_changes(text: str) -> float:
    """How often two neighbours differ in kind (upper, lower, digit): about 0.6 in random base64."""
    kinds = ["u" if c.isupper() else "l" if c.islower() else "d" for c in text]
    return sum(a != b for a, b in itertools.pairwise(kinds)) / max(len(kinds) - 1, 1)


def _random_looking(m: re.Match[str]) -> bool:
    """Mixed case and digits, few separators, high entropy: a key, not a URL path or a long word."""
    run = m.group().rstrip("=")
    separators = sum(c in "/+_-" for c in run)
    return (
        any(c.isupper() for c in run)
        and any(c.islower() for c in run)
        and separators <= len(run) * MAX_SEPARATOR_SHARE
        and _class_changes(run.translate(NO_SEPARATORS)) >= MIN_CLASS_CHANGES
        and _bits_per_char(run) >= RANDOM_ENOUGH_BITS
    )


def secrets(draft: Draft) -> Iterator[Hit]:
    known = list(SECRET_RE.finditer(draft.text))
    runs = [m for m in BASE64_RUN_RE.finditer(draft.text) if _random_looking(m)]
    for m in _not_overlapping([*known, *runs]):
        shown = m.group()[:8] + "…"
        yield Hit(f"what looks like a token or secret (“{shown}”) in public text", m.span())


def _is_claim(text: str, start: int) -> bool:
    sentence = text[:start]
    ends = list(SENTENCE_END_RE.finditer(sentence))
    if ends:
        sentence = sentence[ends[-1].end() :]
    before = [w.lower() for w in WORD_RE.findall(sentence)][-4:]
    for word in before:
        if word in NOT_A_CLAIM_WHEN_BEFORE or word.endswith(("n't", "n\u2019t")):
            return False
        if word.startswith(("n'", "n\u2019")):  # French "n'est", "n'a"
            return False
    return True


def premature_resolution(draft: Draft) -> Iterator[Hit]:
    """Saying it is fixed while the incident is not in monitoring and the update does not move it on."""
    if draft.incident_status is IncidentStatus.MONITORING or draft.update_status in (
        IncidentStatus.MONITORING,
        IncidentStatus.RESOLVED,
    ):
        return
    for m in RESOLVED_RE.finditer(draft.text):
        if _is_claim(draft.text, m.start()):
            yield Hit(
                f"the text says {_quoted(draft.text, m.span())} but the status is "
                f"{draft.update_status.value}: publish it as monitoring or resolved, or reword it",
                m.span(),
            )


def missing_next_update(draft: Draft) -> Iterator[Hit]:
    if draft.update_status is not IncidentStatus.RESOLVED and not draft.has_next_update:
        yield Hit("no next update time on an unresolved incident: promise one (e.g. --next-update-in 30m)")


def missing_apology(draft: Draft) -> Iterator[Hit]:
    if (
        draft.first_public
        and draft.severity in (Severity.MAJOR, Severity.CRITICAL)
        and not APOLOGY_RE.search(draft.text)
    ):
        yield Hit(f"first public update of a {draft.severity.value} incident with no apology")
