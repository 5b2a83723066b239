"""The severity policy: a ``policy.toml`` the user keeps under version control.

Per severity it says which channels and audiences an update goes to, how often updates are promised
(the cadence), how long an incident must stay in ``monitoring`` before it may be called resolved, and
whether public updates need a second person's approval. It also holds the approved holding message
("no news yet"), named audience segments, and what monitoring may do by itself.

Every update records the version of the policy it was sent under: the file's ``version`` if it has
one, otherwise a digest of its contents (so an edit is always a new version).
"""

from __future__ import annotations

import hashlib
import tomllib
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from channels.base import ChannelKind
from dispatcher.domain.durations import parse_duration
from dispatcher.domain.errors import ConfigurationError
from dispatcher.domain.models import AUDIENCE_NAME_PATTERN, Severity


def _duration(value: Any) -> Any:
    if isinstance(value, str):
        return parse_duration(value)
    if isinstance(value, int | float):
        return timedelta(minutes=value)
    return value


Duration = Annotated[timedelta, BeforeValidator(_duration)]


class SeverityPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid")

    channels: list[ChannelKind] | None = None
    """Channels public updates of this severity go to; None: every enabled channel."""
    audiences: list[str] = Field(default_factory=lambda: ["public", "internal"])
    """Audiences an update of this severity may address: public, internal, or segment names."""
    cadence: Duration
    """How soon the next update is promised when the author gives no time."""
    resolve_hold: Duration = timedelta(0)
    """How long the incident must have been in ``monitoring`` before it may be resolved."""
    needs_approval: bool = False
    """Public updates wait for a second, different person to approve them."""


class Segment(BaseModel):
    """A named part of the audience. A subscriber is in it when it matches every field given."""

    model_config = ConfigDict(extra="forbid")

    components: list[str] = Field(default_factory=list)
    regions: list[str] = Field(default_factory=list)
    plans: list[str] = Field(default_factory=list)
    tags: list[str] = Field(default_factory=list)


class PromisePolicy(BaseModel):
    model_config = ConfigDict(extra="forbid")

    remind_before: Duration = timedelta(minutes=5)
    """Remind the owner and the internal audience this long before a promised update is due."""
    holding_message: dict[str, str] = Field(
        default_factory=lambda: {
            "en": (
                "We are still working on this issue. There is no new information yet. "
                "We are sorry for the disruption."
            ),
            "fr": (
                "Nous travaillons toujours sur ce problème. Pas d'information nouvelle pour le moment. "
                "Nous sommes désolés pour la gêne occasionnée."
            ),
        }
    )
    """The approved "no news yet" words per locale. Every channel's layout states the new promise in the
    reader's own time, so the text does not; a sentence with ``{next_update}`` (older policies) is left
    out when the message is rendered (``dispatcher.domain.texts.words_only``)."""

    @model_validator(mode="after")
    def _english_fallback(self) -> PromisePolicy:
        if "en" not in self.holding_message:
            raise ValueError("holding_message needs an 'en' text (the fallback locale)")
        for locale, text in self.holding_message.items():
            if not text.strip():
                raise ValueError(f"holding_message.{locale} is empty")
        return self


class LifecyclePolicy(BaseModel):
    model_config = ConfigDict(extra="forbid")

    flap_window: Duration = timedelta(hours=2)
    """A resolved incident that breaks again within this time is reopened, not opened anew."""


class MaintenancePolicy(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reminder_before: Duration = timedelta(minutes=60)


class MonitoringPolicy(BaseModel):
    """What alerts from monitoring (Alertmanager, Grafana, generic) may do without a person."""

    model_config = ConfigDict(extra="forbid")

    may_publish_public: bool = False
    severity_label: str = "severity"
    severity_map: dict[str, Severity] = Field(
        default_factory=lambda: {
            "critical": Severity.CRITICAL,
            "page": Severity.CRITICAL,
            "major": Severity.MAJOR,
            "error": Severity.MAJOR,
            "warning": Severity.MINOR,
            "minor": Severity.MINOR,
            "info": Severity.MINOR,
        }
    )
    default_severity: Severity = Severity.MAJOR


def _default_severities() -> dict[Severity, SeverityPolicy]:
    return {
        Severity.CRITICAL: SeverityPolicy(
            cadence=timedelta(minutes=30), resolve_hold=timedelta(minutes=30), needs_approval=True
        ),
        Severity.MAJOR: SeverityPolicy(cadence=timedelta(minutes=60), resolve_hold=timedelta(minutes=30)),
        Severity.MINOR: SeverityPolicy(cadence=timedelta(hours=3)),
    }


class Policy(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: str | None = None
    severity: dict[Severity, SeverityPolicy] = Field(default_factory=_default_severities)
    promise: PromisePolicy = Field(default_factory=PromisePolicy)
    lifecycle: LifecyclePolicy = Field(default_factory=LifecyclePolicy)
    maintenance: MaintenancePolicy = Field(default_factory=MaintenancePolicy)
    monitoring: MonitoringPolicy = Field(default_factory=MonitoringPolicy)
    segments: dict[str, Segment] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _every_severity(self) -> Policy:
        missing = [s.value for s in Severity if s not in self.severity]
        if missing:
            raise ValueError(f"severity: no policy for {', '.join(missing)}")
        badly_named = [name for name in self.segments if not AUDIENCE_NAME_PATTERN.match(name)]
        if badly_named:
            raise ValueError(
                f"segments: {', '.join(badly_named)}: a segment name is letters, digits, '.', '_' or '-' "
                "(at most 50, starting with a letter or digit)"
            )
        reserved = {"public", "internal"} & set(self.segments)
        if reserved:
            raise ValueError(f"segments: {', '.join(sorted(reserved))} is a built-in audience name")
        for sev, rules in self.severity.items():
            known = {"public", "internal", *self.segments}
            unknown = [a for a in rules.audiences if a not in known]
            if unknown:
                raise ValueError(f"severity.{sev.value}.audiences: no segment named {', '.join(unknown)}")
        return self

    def for_severity(self, severity: Severity | str) -> SeverityPolicy:
        return self.severity[Severity(severity)]


DEFAULT_POLICY_FILE = "policy.toml"


class LoadedPolicy(BaseModel):
    policy: Policy
    version: str
    """``policy.version`` if the file sets one, else ``sha256:<first 12 hex>`` of the file (``builtin``)."""
    path: Path | None


def parse_policy(text: str, source: str = DEFAULT_POLICY_FILE) -> Policy:
    """Parse and validate; a ``ConfigurationError`` names the file and the field that is wrong."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"{source}: not valid TOML ({exc})") from None
    try:
        return Policy.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(top level)'}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigurationError(f"{source}: {problems}") from None


def load_policy(path: Path | None) -> LoadedPolicy:
    """The policy at ``path``; with no path, or no file there, the built-in defaults."""
    if path is None or not path.exists():
        return LoadedPolicy(policy=Policy(), version="builtin", path=None)
    text = path.read_text(encoding="utf-8")
    policy = parse_policy(text, str(path))
    version = policy.version or "sha256:" + hashlib.sha256(text.encode()).hexdigest()[:12]
    return LoadedPolicy(policy=policy, version=version, path=path)
