"""What crisis-comms practice asks an update to say beyond status and ETA (issue 17).

- ``ImpactStatement``: who is affected, what does not work, since when, what to do meanwhile. Optional
  on every update; a major or critical first public update without one gets a warning.
- ``DataFacts``: for a ``security`` incident, what data may be affected, what is not, what customers
  should do and what the company is doing. Required (or overridden with a recorded reason) before any
  public update of a security incident.

Both are plain values: the store keeps them as JSON, the templates show them first and briefly.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pydantic import BaseModel, ConfigDict, Field, field_validator

from dispatcher.domain.durations import parse_duration
from dispatcher.domain.text_safety import refuse_control_characters

__all__ = [
    "DATA_FACT_LABELS",
    "INCIDENT_KINDS",
    "REPORT_LABELS",
    "REPORT_SECTIONS",
    "SECURITY",
    "DataFacts",
    "ImpactStatement",
    "PostIncidentReport",
    "Signer",
    "parse_report_markdown",
    "report_notice_text",
    "since_time",
]

SECURITY = "security"
"""The kind of an incident about a breach or a data exposure."""

INCIDENT_KINDS = ("incident", SECURITY)
"""Kinds that are something broken (not a planned maintenance window): first word, promises, flapping."""


class ImpactStatement(BaseModel):
    """Who, what, since when, what to do meanwhile: short phrases, each optional."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, frozen=True)

    who: str | None = Field(
        default=None, max_length=200, description="Who is affected: all customers, EU, Pro plan, 5%."
    )
    not_working: str | None = Field(default=None, max_length=300, description="What does not work.")
    since: datetime | None = Field(default=None, description="Since when (with a time zone).")
    workaround: str | None = Field(default=None, max_length=500, description="What to do meanwhile.")

    @field_validator("who", "not_working", "workaround")
    @classmethod
    def _clean(cls, value: str | None) -> str | None:
        if value is None:
            return None
        return refuse_control_characters(value) or None

    @field_validator("since")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("give a time zone (e.g. 2026-01-01T09:05:00Z)")
        return value

    @property
    def is_empty(self) -> bool:
        return not (self.who or self.not_working or self.since or self.workaround)

    def texts(self) -> dict[str, str]:
        """The public words it carries, by field (the guardrails check them like the message)."""
        given = {"who": self.who, "not_working": self.not_working, "workaround": self.workaround}
        return {f"impact.{name}": text for name, text in given.items() if text}


DATA_FACT_LABELS = {
    "data_affected": "what data may be affected",
    "data_not_affected": "what data is not affected",
    "customer_actions": "what customers should do",
    "company_actions": "what the company is doing",
}
"""The four facts a security incident owes its readers, in the order messages show them."""


class DataFacts(BaseModel):
    """The facts of a security or data incident. All four are owed before it goes public."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, frozen=True)

    data_affected: str | None = Field(default=None, max_length=500)
    data_not_affected: str | None = Field(default=None, max_length=500)
    customer_actions: str | None = Field(default=None, max_length=500)
    company_actions: str | None = Field(default=None, max_length=500)

    @field_validator("data_affected", "data_not_affected", "customer_actions", "company_actions")
    @classmethod
    def _clean(cls, value: str | None) -> str | None:
        if value is None:
            return None
        return refuse_control_characters(value) or None

    def missing(self) -> list[str]:
        """The facts not given yet, by field name."""
        return [name for name in DATA_FACT_LABELS if not getattr(self, name)]

    def merged(self, other: DataFacts) -> DataFacts:
        """These facts with every fact ``other`` gives replacing ours."""
        return self.model_copy(update=other.model_dump(exclude_none=True))

    def texts(self) -> dict[str, str]:
        return {f"data_facts.{k}": v for k in DATA_FACT_LABELS if (v := getattr(self, k))}


REPORT_SECTIONS = {
    "summary": ("summary",),
    "impact": ("impact", "customer impact"),
    "root_cause": ("root cause", "cause"),
    "actions_taken": ("what we did", "what was done", "resolution", "actions taken"),
    "prevention": (
        "what we will do",
        "what will be done",
        "prevention",
        "preventing a repeat",
        "what we will do to prevent it",
    ),
}
"""The post-incident report's sections, and the ``## headings`` a Markdown file may give each."""

REPORT_LABELS = {
    "summary": "Summary",
    "impact": "Impact",
    "root_cause": "Root cause",
    "actions_taken": "What we did",
    "prevention": "What we will do so it does not happen again",
}


class PostIncidentReport(BaseModel):
    """What happened, who was hit and when, why, what was done, and what will prevent a repeat."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, frozen=True)

    summary: str = Field(min_length=1, max_length=4000)
    impact: str = Field(min_length=1, max_length=4000)
    root_cause: str = Field(min_length=1, max_length=8000)
    actions_taken: str = Field(min_length=1, max_length=8000)
    prevention: str = Field(min_length=1, max_length=8000)

    @field_validator("summary", "impact", "root_cause", "actions_taken", "prevention")
    @classmethod
    def _clean(cls, value: str) -> str:
        return refuse_control_characters(value)

    def texts(self) -> dict[str, str]:
        return {f"report.{name}": getattr(self, name) for name in REPORT_SECTIONS}


def _section_of(heading: str) -> str | None:
    words = " ".join(heading.strip().strip("#").strip().rstrip(":").lower().split())
    return next((name for name, names in REPORT_SECTIONS.items() if words in names), None)


def parse_report_markdown(text: str) -> PostIncidentReport:
    """A report from Markdown: a ``## heading`` per section (``## Summary``, ``## Impact``, ``## Root
    cause``, ``## What we did``, ``## What we will do``); a ``# title`` line is ignored. ``ValueError``
    naming the sections missing, or a heading it does not know."""
    found: dict[str, list[str]] = {}
    current: str | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        if line.startswith("## "):
            current = _section_of(line)
            if current is None:
                known = ", ".join(names[0] for names in REPORT_SECTIONS.values())
                raise ValueError(f"line {number}: {line.strip()!r} is not a report section ({known})")
            found[current] = []
        elif line.startswith("# ") and current is None:
            continue
        elif current is not None:
            found[current].append(line)
        elif line.strip():
            raise ValueError(f"line {number}: text before the first section (start with '## Summary')")
    sections = {name: "\n".join(lines).strip() for name, lines in found.items()}
    missing = [names[0].capitalize() for name, names in REPORT_SECTIONS.items() if not sections.get(name)]
    if missing:
        raise ValueError("the report has no " + ", no ".join(f"'## {m}'" for m in missing) + " section")
    return PostIncidentReport(**sections)


REPORT_NOTICE = {
    "en": 'Our post-incident report on "{title}" is published: what happened, why, and what we will do '
    "so it does not happen again. {link}",
    "fr": "Notre rapport sur l'incident « {title} » est publié : ce qui s'est passé, pourquoi, et ce que "
    "nous ferons pour que cela ne se reproduise pas. {link}",
}
"""The short notice that tells everyone told about an incident that its report is out."""


def report_notice_text(locale: str, title: str, link: str) -> str:
    template = REPORT_NOTICE.get(locale.split("-")[0].lower(), REPORT_NOTICE["en"])
    return template.format(title=title, link=link)


class Signer(BaseModel):
    """Who signs an update (a senior voice): one of the policy's signatories, as it was when signed."""

    model_config = ConfigDict(frozen=True)

    key: str
    """The signatory's name in the policy (``ceo``)."""
    name: str
    role: str

    @property
    def line(self) -> str:
        return f"{self.name}, {self.role}"


def since_time(given: str, now: datetime) -> datetime:
    """When an impact began: ``09:05`` (UTC: today's, or yesterday's if that is still ahead) or an ISO
    time with a zone, not in the future. ``ValueError`` naming the text."""
    text = given.strip()
    try:
        clock = datetime.strptime(text, "%H:%M").time()
    except ValueError:
        clock = None
    if clock is not None:
        when = datetime.combine(now.astimezone(UTC).date(), clock, tzinfo=UTC)
        return when - timedelta(days=1) if when > now else when
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{given!r} is not a time like 09:05 or 2026-11-25T09:05Z") from None
    if when.tzinfo is None:
        raise ValueError(f"{given!r} needs a time zone, e.g. 2026-11-25T09:05Z")
    if when > now:
        raise ValueError(f"{given!r} is in the future")
    return when


def report_time(given: str, now: datetime) -> datetime:
    """When the post-incident report is promised: ``2026-12-01`` (17:00 UTC that day, the end of a
    working day), an ISO time with a zone, or a span from ``now`` (``5d``). ``ValueError`` naming the
    text; whether it is in the future is checked where it is saved or published."""
    text = given.strip()
    try:
        return now + parse_duration(text)
    except ValueError:
        pass
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{given!r} is not a date (2026-12-01) or a span (5d)") from None
    if len(text) == 10:  # a date alone: by the end of that working day
        when = when.replace(hour=17, tzinfo=UTC)
    if when.tzinfo is None:
        raise ValueError(f"{given!r} needs a time zone, e.g. 2026-12-01T17:00Z")
    return when
