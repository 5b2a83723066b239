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
from datetime import datetime, timedelta
from typing import Any, Literal

import phonenumbers

from dispatcher.domain.crisis import DATA_FACT_LABELS
from dispatcher.domain.models import IncidentStatus, Severity

Level = Literal["error", "warn"]


@dataclass(frozen=True)
class Finding:
    rule: str
    level: Level
    message: str
    span: tuple[int, int] | None = None
    """Where in the text the problem is (start, end), when it is in the text."""
    field: str = "message"
    """Which public-facing string: ``message``, ``title``, ``components``, or a channel's template
    output (``template:email``); ``span`` points into that string."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "level": self.level,
            "message": self.message,
            "span": list(self.span) if self.span else None,
            "field": self.field,
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
    now: datetime | None = None
    """When the text goes out: a clock time before it is no ETA. None: any clock time counts."""
    internal_domains: frozenset[str] = field(default_factory=frozenset)
    """The organisation's own internal DNS zones (policy ``guardrails.internal_domains``)."""
    public_phone_numbers: frozenset[str] = field(default_factory=frozenset)
    """Phone numbers (E.164) customers may read: the support line."""
    region: str = "US"
    """Where a phone number written without ``+`` is read."""
    promise_in: timedelta | None = None
    """How far ahead the next update is promised."""
    cadence: timedelta | None = None
    """The severity's cadence: a promise further ahead is an error."""
    escalated: bool = False
    """The incident drags on (too many holding messages): the next public update must be a real one."""
    holding_texts: tuple[str, ...] = ()
    """The policy's holding messages (a text like them is no real update)."""
    has_impact_statement: bool = False
    """The update says who is affected, what does not work, since when or what to do meanwhile."""
    data_facts_missing: tuple[str, ...] = ()
    """A security incident's data facts not given yet (``dispatcher.domain.crisis.DATA_FACT_LABELS``)."""
    signer_required: str | None = None
    """Why the policy wants this update signed (``critical incidents``), or None."""
    has_signer: bool = False


# ---------------------------------------------------------------------------------------------------
# Word lists
# ---------------------------------------------------------------------------------------------------

VAGUE_TIMING = (
    "as soon as possible",
    "as soon as we can",
    "as quickly as possible",
    "as quickly as we can",
    "as fast as possible",
    "as fast as we can",
    "asap",
    "shortly",
    "soon",
    "sooner or later",
    "in a bit",
    "in a while",
    "in a little while",
    "momentarily",
    "imminently",
    "any minute",
    "any moment",
    "before long",
    "in due course",
    "at the earliest opportunity",
    "in the near future",
    "in the coming hours",
    "in the coming days",
    "in the next few hours",
    "in the next few days",
    "over the next few hours",
    "later today",
    "dès que possible",
    "au plus vite",
    "au plus tôt",
    "le plus rapidement possible",
    "dans les plus brefs délais",
    "sous peu",
    "bientôt",
    "prochainement",
    "dans les prochaines heures",
    "dans les heures à venir",
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
    "recovered",
    "back to normal",
    "fully operational",
    "working normally",
    "working normally again",
    "working again",
    "operating normally",
    "running normally",
    "errors have stopped",
    "no more errors",
    "all good",
    "up and running",
    "back online",
    "fonctionne normalement", "fonctionnent normalement",
    "fonctionne à nouveau", "fonctionnent à nouveau",
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
INTERNAL_LABELS = frozenset({"internal", "corp", "intranet", "lan", "local", "localdomain", "int", "priv"})
"""A host name with one of these labels anywhere (``grafana.corp.acme.io``) is an internal one."""
CLOUD_REGION_RE = re.compile(
    r"^(?:us|eu|ap|sa|ca|me|af|il|mx)-(?:gov-)?(?:north|south|east|west|central|northeast|northwest"
    r"|southeast|southwest)-\d$"
)
"""Cloud regions (``eu-west-1``) are public names, not hosts."""
SERVER_ENVIRONMENTS = ("prod", "production", "preprod", "staging", "stg", "dev", "qa", "uat")
SERVER_ROLES = (
    "db", "pg", "postgres", "mysql", "redis", "mongo", "kafka", "rabbit", "rabbitmq", "es", "elastic",
    "web", "app", "worker", "cache", "lb", "k8s", "node", "srv", "server", "host", "vm",
)  # fmt: skip


STACK_TRACE_MARKERS = (
    r"Traceback \(most recent call last\)",
    r'File "[^"\n]+", line \d+',
    r"Exception in thread \S+",
    r"\bat (?:[A-Za-z_$][\w$]*\.)+[\w$<>]+ ?\(",  # Java, JavaScript frames: at com.foo.Bar.run(
    r"\bat (?:[a-z_$][\w$]*\.)*[A-Z][a-z0-9]+[A-Z][\w$]*\.[a-z_$][\w$]*",  # at PaymentService.charge
    r"\bgoroutine \d+ \[",
    # Exception classes: psycopg2.OperationalError, java.lang.NullPointerException, TimeoutException
    r"\b(?:[a-z_][a-z0-9_]*\.)+[A-Z][A-Za-z0-9]*(?:Error|Exception|Fault)\b",
    r"\b[A-Z][a-z0-9]+(?:[A-Z][a-z0-9]+)*(?:Error|Exception)\b",
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
            # db-3, web01, k8s-node-12, pg-primary-1, redis-cache-7 (a server role, its number)
            r"(?<![\w.-])(?:" + "|".join(SERVER_ROLES) + r")(?:-[a-z][a-z0-9]*)*-?\d{1,3}[a-z]?(?![\w-])",
        )
    ),
    re.IGNORECASE,
)
NUMBERED_HOST_RE = re.compile(r"(?<![\w./-])[a-z][a-z0-9]*(?:-[a-z][a-z0-9]*)+-\d{1,4}[a-z]?(?![\w-])")
"""Lower-case names of three or more dashed parts ending in a number (``checkout-api-3``): how machines,
pods and containers are named, never how people write (case-sensitive: ``DEV-123`` is a ticket)."""
HOST_NAME_RE = re.compile(
    r"(?<![\w.@-])(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)+[a-z](?:[a-z0-9-]*[a-z0-9])?(?![\w-]|\.\w)",
    re.IGNORECASE,
)
"""Any dotted host name, to check against the internal labels and the configured internal zones."""

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
SENTENCE_RE = re.compile(r"[^.!?\n]*(?:[.!?]+(?=\s|$)|\n|$)")
"""A sentence: up to a full stop, question or exclamation mark followed by a space, or a line end
(``3 p.m.`` and ``1.2.3`` stay inside their sentence)."""
CARD_CANDIDATE_RE = re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])")
ACCOUNT_RE = re.compile(
    r"\b(?:acct|account|a/c|customer|cust|client|member|user|order|invoice|subscription|contract|iban)"
    r"(?:\s*(?:#|no\.?|nr\.?|number|num|id|ref)\b)?\s*[:#]?\s*(?=[A-Z0-9-]*\d)[A-Z0-9][A-Z0-9-]{3,}\b",
    re.IGNORECASE,
)
PERSON_RE = re.compile(
    r"\b(?:[Cc]ustomer|[Cc]lient|[Uu]ser|[Mm]ember|[Mm]r\.?|[Mm]rs\.?|[Mm]s\.?)\s+"
    r"([A-Z][a-z]+(?:[-'][A-Z][a-z]+)?\s+[A-Z][a-z]+(?:[-'][A-Z][a-z]+)?)\b"
)
NOT_NAMES = frozenset(
    {"Success", "Support", "Service", "Services", "Care", "Experience", "Portal", "Data", "Accounts",
     "Account", "Team", "Dashboard", "Api", "API", "Login", "Sign", "Settings", "Billing", "Area"}
)  # fmt: skip
"""Capitalised words after "customer" that make a product name, not a person's ("Customer Success Team")."""
PAST_MARKERS_RE = re.compile(
    r"\b(?:since|from|started|starting|began|beginning|at\s+around|earlier|ago|depuis|à\s+partir\s+de)"
    r"\W+(?:\w+\W+){0,2}$",
    re.IGNORECASE,
)
"""Words before a time that make it when something began, not when something will happen."""
CLOCK_24H_RE = re.compile(r"^([01]?\d|2[0-3])(?::([0-5]\d)|h([0-5]\d)?)$", re.IGNORECASE)
CLOCK_12H_RE = re.compile(r"^(1[0-2]|0?[1-9])(?::([0-5]\d))?\s?([ap])\.?\s?m\.?$", re.IGNORECASE)
ISO_DATE_RE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")
HOLDING_PHRASES_RE = phrases(
    (
        "no new information",
        "no news",
        "nothing new",
        "no update yet",
        "still working on this issue",
        "still investigating",
        "pas d'information nouvelle",
        "rien de nouveau",
        "toujours en cours d'analyse",
    )
)
"""Wording of a holding message: after an escalation the next public update must say something new."""
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


def _sentences(text: str) -> Iterator[Span]:
    for m in SENTENCE_RE.finditer(text):
        if m.end() > m.start():
            yield m.span()


def _clock_minutes(eta: str) -> int | None:
    """Minutes after midnight for a clock time (``14:30``, ``15h``, ``3pm``); None for anything else."""
    found = CLOCK_24H_RE.match(eta.strip())
    if found:
        return int(found.group(1)) * 60 + int(found.group(2) or found.group(3) or 0)
    found = CLOCK_12H_RE.match(eta.strip())
    if found:
        hour = int(found.group(1)) % 12 + (12 if found.group(3).lower() == "p" else 0)
        return hour * 60 + int(found.group(2) or 0)
    return None


def _is_ahead(draft: Draft, text: str, m: re.Match[str]) -> bool:
    """Whether the time ``m`` found is still to come: not when something began ("since 09:12"), not a
    clock time in the 12 hours before the text goes out, not a past date."""
    if PAST_MARKERS_RE.search(text[max(0, m.start() - 40) : m.start()]):
        return False
    if draft.now is None:
        return True
    clock = _clock_minutes(m.group())
    if clock is not None:
        # Within the next 12 hours is ahead; within the last 12 hours has passed (read in UTC).
        ahead = (clock - (draft.now.hour * 60 + draft.now.minute)) % (24 * 60)
        return 0 < ahead <= 12 * 60
    found = ISO_DATE_RE.match(m.group())
    if found:
        return (int(found.group(1)), int(found.group(2)), int(found.group(3))) >= draft.now.timetuple()[:3]
    return True


def vague_timing(draft: Draft) -> Iterator[Hit]:
    """Vague timing ("soon", "as quickly as we can") in a sentence that gives no time still to come and
    does not plainly say "we don't know yet"."""
    text = draft.text
    for start, end in _sentences(text):
        sentence = text[start:end]
        vague = list(VAGUE_TIMING_RE.finditer(sentence))
        if not vague or NO_ETA_YET_RE.search(sentence):
            continue
        if any(_is_ahead(draft, sentence, eta) for eta in ETA_RE.finditer(sentence)):
            continue
        for m in vague:
            span = (start + m.start(), start + m.end())
            yield Hit(
                f"vague timing {_quoted(text, span)} with no time: give one still to come (“by 14:30”, "
                "“within 2 hours”) or say “we don't know yet” in the same sentence",
                span,
            )


def _internal_zone(host: str, draft: Draft) -> bool:
    labels = host.lower().rstrip(".").split(".")
    # Any label but the last (``.int`` is a real top-level domain: who.int).
    if any(label in INTERNAL_LABELS for label in labels[:-1]) or labels[-1] in INTERNAL_DOMAIN_SUFFIXES:
        return True
    name = ".".join(labels)
    return any(name == zone or name.endswith("." + zone) for zone in draft.internal_domains)


def internal_hostnames(draft: Draft) -> Iterator[Hit]:
    """Internal host names: internal zones (``db-3.internal``, ``grafana.corp.acme.io``, your
    ``internal_domains``) and machine names (``db-3``, ``pg-primary-1``, ``checkout-api-3``)."""
    text = draft.text
    found = [*INTERNAL_HOST_RE.finditer(text)]
    found += [m for m in NUMBERED_HOST_RE.finditer(text) if not CLOUD_REGION_RE.match(m.group())]
    found += [m for m in HOST_NAME_RE.finditer(text) if _internal_zone(m.group(), draft)]
    for m in _not_overlapping(found):
        yield Hit(f"internal host name {_quoted(text, m.span())} in public text", m.span())


def _private(candidate: str) -> bool:
    """Any address that is not on the public internet: RFC 1918, loopback, link-local, CGNAT
    (100.64.0.0/10), benchmarking, documentation, unique-local IPv6…"""
    try:
        address = ipaddress.ip_address(candidate)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return not address.is_global


def private_addresses(draft: Draft) -> Iterator[Hit]:
    candidates = [*IPV4_CANDIDATE_RE.finditer(draft.text), *IPV6_CANDIDATE_RE.finditer(draft.text)]
    for m in _not_overlapping(candidates):
        if _private(m.group()):
            yield Hit(f"non-public network address {_quoted(draft.text, m.span())} in public text", m.span())


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


def missing_impact_statement(draft: Draft) -> Iterator[Hit]:
    if (
        draft.first_public
        and draft.severity in (Severity.MAJOR, Severity.CRITICAL)
        and not draft.has_impact_statement
    ):
        yield Hit(
            f"first public update of a {draft.severity.value} incident says nothing of its impact: who is "
            "affected, what does not work, since when, what to do meanwhile (--affects, --not-working, "
            "--since, --workaround)"
        )


def missing_data_facts(draft: Draft) -> Iterator[Hit]:
    if draft.data_facts_missing:
        owed = "; ".join(DATA_FACT_LABELS[name] for name in draft.data_facts_missing)
        yield Hit(
            f"a security incident tells its readers about their data before anything else; missing: {owed} "
            "(`tocsin incident facts`)"
        )


def missing_signer(draft: Draft) -> Iterator[Hit]:
    if draft.signer_required and not draft.has_signer:
        yield Hit(
            f"the policy wants {draft.signer_required} signed by a senior voice: --signer NAME "
            "(one of the policy's [signatories])"
        )


def _luhn(digits: str) -> bool:
    total = 0
    for i, c in enumerate(reversed(digits)):
        d = int(c) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return total % 10 == 0


def card_numbers(draft: Draft) -> Iterator[Hit]:
    """Payment card numbers: 13 to 19 digits (spaces or dashes between) that pass the Luhn check."""
    for m in CARD_CANDIDATE_RE.finditer(draft.text):
        digits = re.sub(r"\D", "", m.group())
        if 13 <= len(digits) <= 19 and _luhn(digits):
            yield Hit(f"card number “…{digits[-4:]}” in public text", m.span())


def phone_numbers(draft: Draft) -> Iterator[Hit]:
    """Phone numbers (``phonenumbers`` finds them, read in ``draft.region`` when written without ``+``),
    except the support lines the policy lists."""
    try:
        matches = list(
            phonenumbers.PhoneNumberMatcher(draft.text, draft.region, leniency=phonenumbers.Leniency.VALID)
        )
    except Exception:  # an unknown region: the number cannot be read, nothing to report
        return
    for m in matches:
        e164 = phonenumbers.format_number(m.number, phonenumbers.PhoneNumberFormat.E164)
        if e164 in draft.public_phone_numbers:
            continue
        span = (m.start, m.end)
        yield Hit(
            f"phone number {_quoted(draft.text, span)} in public text (list your support line in the "
            "policy's guardrails.public_phone_numbers)",
            span,
        )


def customer_data(draft: Draft) -> Iterator[Hit]:
    """A customer's account, order or invoice number, or a customer's name (“customer Jane Doe”)."""
    for m in ACCOUNT_RE.finditer(draft.text):
        yield Hit(f"account or order identifier {_quoted(draft.text, m.span())} in public text", m.span())
    for m in PERSON_RE.finditer(draft.text):
        if NOT_NAMES.intersection(m.group(1).replace("-", " ").split()):
            continue
        yield Hit(f"a person's name {_quoted(draft.text, m.span(1))} in public text", m.span(1))


def promise_too_far(draft: Draft) -> Iterator[Hit]:
    """A next update promised later than the severity's cadence."""
    if draft.promise_in is None or draft.cadence is None or draft.update_status is IncidentStatus.RESOLVED:
        return
    if draft.promise_in > draft.cadence + timedelta(seconds=59):
        yield Hit(
            f"the next update is promised in {_span_words(draft.promise_in)}; {draft.severity.value} "
            f"incidents are updated at least every {_span_words(draft.cadence)}: promise it sooner, or "
            "give an override reason"
        )


def _span_words(span: timedelta) -> str:
    minutes = int(span.total_seconds() // 60)
    hours, rest = divmod(minutes, 60)
    return f"{hours}h{rest:02d}m" if hours and rest else f"{hours}h" if hours else f"{minutes}m"


def _normal(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


def holding_again(draft: Draft) -> Iterator[Hit]:
    """After an escalation, a “no news yet” text does not do: the next public update must say
    something new."""
    if not draft.escalated or draft.update_status is IncidentStatus.RESOLVED:
        return
    for holding in draft.holding_texts:
        # The policy's holding message, with any promise time: compare the words before the time.
        stem = _normal(holding.split("{next_update}")[0])
        if stem and stem in _normal(draft.text):
            yield Hit("this is the holding message again: the incident was escalated, so say what is new")
            return
    for m in HOLDING_PHRASES_RE.finditer(draft.text):
        yield Hit(
            f"{_quoted(draft.text, m.span())}: the incident was escalated after repeated holding "
            "messages; the next public update must say something new (or give an override reason)",
            m.span(),
        )
        return
