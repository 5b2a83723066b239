"""What crisis-comms practice asks an update to say beyond status and ETA (issue 17).

- ``ImpactStatement``: who is affected, what does not work, since when, what to do meanwhile. Optional
  on every update; a major or critical first public update without one gets a warning.
- ``DataFacts``: for a ``security`` incident, what data may be affected, what is not, what customers
  should do and what the company is doing. Required (or overridden with a recorded reason) before any
  public update of a security incident.

Both are plain values: the store keeps them as JSON, the templates show them first and briefly.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator

from dispatcher.domain.text_safety import refuse_control_characters

__all__ = ["DATA_FACT_LABELS", "INCIDENT_KINDS", "SECURITY", "DataFacts", "ImpactStatement"]

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
