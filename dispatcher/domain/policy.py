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
import re
import tomllib
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from channels.base import ChannelKind
from dispatcher.domain.durations import no_unit, parse_duration
from dispatcher.domain.errors import ConfigurationError
from dispatcher.domain.models import AUDIENCE_NAME_PATTERN, Severity


def _duration(value: Any) -> Any:
    if isinstance(value, str):
        return parse_duration(value)
    if isinstance(value, int | float) and not isinstance(value, bool) and value != 0:
        # TOML's bare 30 is a number with no unit: refused, as everywhere else Tocsin reads a duration.
        raise ValueError(no_unit(value))
    return value


Duration = Annotated[timedelta, BeforeValidator(_duration)]


def _per_locale(value: Any) -> Any:
    """A text for every locale: a plain string is the English one."""
    return {"en": value} if isinstance(value, str) else value


LocaleTexts = Annotated[dict[str, str], BeforeValidator(_per_locale)]


def check_texts(name: str, texts: dict[str, str], placeholders: tuple[str, ...]) -> None:
    """An English text (the fallback), and only the placeholders Tocsin fills in."""
    if "en" not in texts:
        raise ValueError(f"{name} needs an 'en' text (the fallback locale)")
    for locale, text in texts.items():
        unknown = sorted(set(re.findall(r"\{(\w*)\}", text)) - set(placeholders))
        if unknown:
            allowed = ", ".join("{" + p + "}" for p in placeholders) or "none"
            raise ValueError(f"{name}.{locale}: unknown placeholder {{{unknown[0]}}} (allowed: {allowed})")


DEFAULT_FIRST_NOTICE = {
    "en": (
        "We are aware of a problem with {components} and are investigating. We are sorry for the "
        "disruption."
    ),
    "fr": (
        "Nous avons connaissance d'un problème touchant {components} et nous l'analysons. Nous sommes "
        "désolés pour la gêne occasionnée."
    ),
}
"""The built-in pre-approved first notice: said at once, so four eyes never delay the first word. Words
only: every channel's layout states the promise in the reader's own time."""

DEFAULT_FIRST_WORD = {
    Severity.CRITICAL: timedelta(minutes=10),
    Severity.MAJOR: timedelta(minutes=20),
    Severity.MINOR: timedelta(minutes=60),
}
"""How long an incident may go without a public word, per severity, unless the policy says otherwise."""


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
    first_word: Duration | None = None
    """How long an open incident may go without a released public update before its owner and staff
    are reminded (at twice this, the escalation contacts are paged). None: the built-in budget of the
    severity (``DEFAULT_FIRST_WORD``); zero: no watchdog."""
    first_notice: LocaleTexts = Field(default_factory=lambda: dict(DEFAULT_FIRST_NOTICE))
    """The pre-approved first notice per locale (``{components}``): released with one command, without
    waiting for approval. A sentence with ``{next_update}`` (older policies) is left out: the layout
    states the promise in each reader's time."""
    auto_first_notice: bool = False
    """Send the first notice by itself when the first-word budget passes with nothing said."""
    report_within: Duration | None = None
    """A post-incident report is owed this long after resolving (e.g. ``5d``); None: none is owed."""
    needs_signer: bool = False
    """Public updates written by someone must be signed by a signatory (``--signer``)."""

    @model_validator(mode="after")
    def _notice_placeholders(self) -> SeverityPolicy:
        check_texts("first_notice", self.first_notice, ("components", "next_update"))
        return self


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


class EscalationPolicy(BaseModel):
    """Who is paged when something drags on, and when."""

    model_config = ConfigDict(extra="forbid")

    contacts: list[str] = Field(default_factory=list)
    """Email addresses (or subscribers' external ids) paged when an incident has had no public word for
    twice its first-word budget, and when one drags on and no senior approver is named."""
    senior_approver: str | None = None
    """Paged with the owner when an incident drags on (email address or a subscriber's external id)."""
    after_holdings: int = Field(default=3, ge=1)
    """After this many holding messages in a row, the next missed promise escalates instead."""
    after: Duration = timedelta(hours=3)
    """Or after this long without a real public update."""
    approval_nudge_after: Duration = timedelta(minutes=10)
    """A public update waiting this long for approval nudges staff and the senior approver."""


class GuardrailPolicy(BaseModel):
    """What the guardrails need to know about the organisation."""

    model_config = ConfigDict(extra="forbid")

    internal_domains: list[str] = Field(default_factory=list)
    """Your own internal DNS zones (``corp.acme.io``): host names in them never reach the public.
    ``.internal``, ``.corp``, ``.local``, ``.lan`` are always internal."""
    public_phone_numbers: list[str] = Field(default_factory=list)
    """Phone numbers customers may read (your support line); any other number in public text is an error."""


class ResolutionPolicy(BaseModel):
    """What the public is told when an incident is resolved without a text of its own."""

    model_config = ConfigDict(extra="forbid")

    message: LocaleTexts = Field(
        default_factory=lambda: {
            "en": (
                "This incident is resolved and everything works normally again ({components}). "
                "We are sorry for the disruption."
            ),
            "fr": (
                "Cet incident est résolu et tout fonctionne de nouveau normalement ({components}). "
                "Nous sommes désolés pour la gêne occasionnée."
            ),
        }
    )

    @model_validator(mode="after")
    def _placeholders(self) -> ResolutionPolicy:
        check_texts("resolution.message", self.message, ("components",))
        return self


class ReportPolicy(BaseModel):
    """Post-incident reports: when their owner is reminded (the deadline is per severity)."""

    model_config = ConfigDict(extra="forbid")

    remind_before: Duration = timedelta(days=1)
    """The incident's owner (and staff) are reminded this long before the report is due."""


class Signatory(BaseModel):
    """Someone who may sign updates: the email's From name and signature, the status page, webhooks."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str = Field(min_length=1, max_length=100)
    role: str = Field(min_length=1, max_length=100)


class SecurityPolicy(BaseModel):
    """What a ``security`` incident (a breach, a data incident) asks for beyond its severity's rules."""

    model_config = ConfigDict(extra="forbid")

    needs_signer: bool = False
    """Its public updates must be signed by a signatory."""
    needs_approval: bool = False
    """Its public updates wait for a second person, whatever the severity says."""
    approver_role: str | None = None
    """Only someone in this role (``[roles]``) may approve them."""


class LifecyclePolicy(BaseModel):
    model_config = ConfigDict(extra="forbid")

    flap_window: Duration = timedelta(hours=2)
    """A resolved incident that breaks again within this time is reopened, not opened anew."""


class MaintenancePolicy(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reminder_before: Duration = timedelta(minutes=60)
    completion_grace: Duration = timedelta(minutes=15)
    """The window is called complete this long after its end (time to extend an overrun), unless
    someone finishes it first."""


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
    escalation: EscalationPolicy = Field(default_factory=EscalationPolicy)
    guardrails: GuardrailPolicy = Field(default_factory=GuardrailPolicy)
    resolution: ResolutionPolicy = Field(default_factory=ResolutionPolicy)
    report: ReportPolicy = Field(default_factory=ReportPolicy)
    signatories: dict[str, Signatory] = Field(default_factory=dict)
    """Who may sign updates, by a short name (``ceo``): ``--signer ceo``."""
    security: SecurityPolicy = Field(default_factory=SecurityPolicy)
    roles: dict[str, list[str]] = Field(default_factory=dict)
    """Role → the names of the tokens of the people in it (``security-lead = ["ada"]``)."""

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
        role = self.security.approver_role
        if role is not None and role not in self.roles:
            raise ValueError(f"security.approver_role: no role named {role!r} in [roles]")
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

    def for_incident(self, severity: Severity | str, kind: str) -> SeverityPolicy:
        """The severity's rules, with what a ``security`` incident asks for beyond them (approval)."""
        rules = self.for_severity(severity)
        if kind == "security" and self.security.needs_approval and not rules.needs_approval:
            return rules.model_copy(update={"needs_approval": True})
        return rules

    def first_word_budget(self, severity: Severity | str) -> timedelta:
        """How long an incident of ``severity`` may go without a public word (zero: no watchdog)."""
        given = self.for_severity(severity).first_word
        return DEFAULT_FIRST_WORD[Severity(severity)] if given is None else given


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
