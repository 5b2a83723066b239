"""Typed configuration: ``TOCSIN_*`` environment variables, then ``tocsin.toml``, then defaults.

``REDIS_URL`` and ``DATABASE_URL`` are also read without the prefix, as most platforms set them so.
Every secret is a ``SecretStr`` and never appears in logs or ``repr``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from channels.base import ChannelKind
from dispatcher.config.guards import CanarySettings, LimitSettings, ReadinessSettings
from dispatcher.config.names import check_provider_names
from dispatcher.config.resources import templates_root
from dispatcher.domain.locales import LOCALE_PATTERN
from dispatcher.domain.quiet_hours import check_timezone

CONFIG_FILE_ENV = "TOCSIN_CONFIG"
DEFAULT_CONFIG_FILE = "tocsin.toml"


SVIX_SCHEDULE = (0.0, 5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0)
"""Customers' webhook endpoints: Svix's schedule, for an endpoint that may be down for hours."""
PROVIDER_API_SCHEDULE = (
    1.0,
    2.0,
    5.0,
    10.0,
    20.0,
    30.0,
    60.0,
    60.0,
    60.0,
    60.0,
    60.0,
    60.0,
    120.0,
    300.0,
    300.0,
)
"""Provider APIs (SendGrid, SMTP, Twilio, X, chat, status page): a transient error during the outage
being announced is retried within seconds, then every minute (about ten tries in the first five
minutes), then a few longer waits (about twenty minutes in all) before failover or a dead letter."""


class ChannelSettings(BaseModel):
    """One channel: its providers in failover order (primary first) and how big a batch may be."""

    model_config = ConfigDict(extra="forbid")  # a misspelt key is refused, never silently dropped
    providers: list[str] = Field(default_factory=lambda: ["outbox"], min_length=1)
    batch_size: int | None = Field(default=None, ge=1, le=10_000)
    """At most this many deliveries per provider call; default: the adapter's own maximum."""
    enabled: bool = True
    cap_messages: int | None = Field(default=None, ge=1)
    """At most this many messages per address on this channel per ``cap_window``; what is held back is
    merged into the next message, never dropped. Off by default."""
    cap_window: float = Field(default=3600.0, gt=0)
    max_segments: int | None = Field(default=None, ge=1, le=10)
    """SMS only: the segment budget (unset: 2). A longer text has its body shortened; the status word,
    the promise and the link are kept."""
    retry_schedule: list[float] | None = Field(default=None, max_length=100)
    """This channel's own retry waits (seconds), instead of ``retry.schedule``."""


class RateLimitSettings(BaseModel):
    """A provider account's sending rate, shared by every worker (through Redis when configured)."""

    model_config = ConfigDict(extra="forbid")

    per_second: float = Field(gt=0)
    burst: int = Field(default=1, ge=1, le=10_000)


class CircuitSettings(BaseModel):
    """When to stop calling a failing provider and move its rows to the next one."""

    model_config = ConfigDict(extra="forbid")

    failures: int = Field(default=3, ge=1)
    reset_after: float = Field(default=30.0, gt=0)


class RetrySettings(BaseModel):
    """How transient failures are retried (see ``dispatcher.engine.retry``)."""

    model_config = ConfigDict(extra="forbid")

    schedule: list[float] | None = Field(default=None, max_length=100)
    """Seconds to wait before each retry, for every channel; after the last one the delivery is failed.
    Unset: ``provider_schedule`` for provider APIs, ``endpoint_schedule`` for customers' webhooks."""
    provider_schedule: list[float] = Field(
        default_factory=lambda: list(PROVIDER_API_SCHEDULE), min_length=1, max_length=100
    )
    """Retry waits of the channels that go through a provider's API (all but webhooks)."""
    endpoint_schedule: list[float] = Field(
        default_factory=lambda: list(SVIX_SCHEDULE), min_length=1, max_length=100
    )
    """Retry waits of webhook deliveries to customers' endpoints (Svix's schedule)."""
    jitter: float = Field(default=0.1, ge=0, le=1)
    """Each wait is spread by up to this fraction, so many rows' retries do not land at once."""
    in_process_wait: float = Field(default=5.0, ge=0)
    """Waits up to this long are slept inside the worker; longer ones go back to the queue."""
    redrive_every: float = Field(default=15.0, gt=0)
    """Seconds between two looks at what the database still owes (the periodic re-drive)."""
    horizon_hours: float = Field(default=72.0, gt=0)
    """Owed deliveries of updates older than this are no longer re-driven."""
    lease_seconds: float = Field(default=300.0, gt=0)
    """A claimed batch not finished within this time is owed again (its worker is presumed dead)."""


def _default_channels() -> dict[ChannelKind, ChannelSettings]:
    defaults = {
        kind: ChannelSettings()
        for kind in (ChannelKind.EMAIL, ChannelKind.SMS, ChannelKind.WEBHOOK, ChannelKind.SOCIAL)
    }
    # Chat needs rooms to post to ([providers.apprise.rooms]): off until configured.
    defaults[ChannelKind.CHAT] = ChannelSettings(providers=["apprise"], enabled=False)
    # The status site needs somewhere to publish ([providers.statuspage] directory / s3_bucket).
    defaults[ChannelKind.STATUSPAGE] = ChannelSettings(providers=["statuspage"], enabled=False)
    return defaults


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="TOCSIN_",
        env_nested_delimiter="__",
        extra="forbid",
        validate_default=True,
    )

    database_url: str = Field(
        default="sqlite:///tocsin.db",
        validation_alias=AliasChoices("TOCSIN_DATABASE_URL", "DATABASE_URL", "database_url"),
    )
    redis_url: str | None = Field(
        default=None, validation_alias=AliasChoices("TOCSIN_REDIS_URL", "REDIS_URL", "redis_url")
    )
    organisation: str = "Example Corp"
    timezone: str = "UTC"
    """The organisation's IANA time zone: times in broadcast posts (X, chat, status page, with UTC beside)
    and for subscribers who have no zone of their own."""
    default_locale: str = "en"
    """The language an update is written in first; a reader whose language has no text gets this one,
    marked as such."""
    message_templates_dir: Path = Path("message-templates")
    """The message templates library (one TOML file per template) beside ``policy.toml``; its files add
    to, or replace by name, the packaged starter set."""
    status_page_url: str | None = None
    templates_dir: Path | None = None
    """A folder whose templates override the packaged ones (same relative paths)."""
    default_region: str = "US"
    """Region for phone numbers written without a leading + in imports."""
    channels: dict[ChannelKind, ChannelSettings] = Field(default_factory=_default_channels)
    providers: dict[str, dict[str, Any]] = Field(default_factory=dict, repr=False)
    """Options per provider, e.g. ``[providers.sendgrid] api_key = "…"``."""
    fanout_page_size: int = Field(default=2000, ge=1, le=100_000)
    retry: RetrySettings = Field(default_factory=RetrySettings)
    circuit_breaker: CircuitSettings = Field(default_factory=CircuitSettings)
    rate_limits: dict[str, RateLimitSettings] = Field(default_factory=dict)
    """Per provider, e.g. ``[rate_limits.twilio] per_second = 1``; default: the adapter's own."""
    webhook_secret: SecretStr | None = None
    """Signing secret for webhook endpoints that have none of their own."""
    signing_key: SecretStr | None = None
    """Signs subscribe-confirmation and unsubscribe links (HMAC-SHA256). Unset: derived from
    ``webhook_secret``; neither set: a key generated once into a file next to the SQLite database."""
    outbox_dir: Path = Path("outbox")
    tick_every: float = Field(default=30.0, gt=0)
    """Seconds between two runs of the periodic duties: scheduled updates, maintenance stages, promise
    reminders and holding messages (Celery beat; the embedded worker runs them on its own tick)."""
    policy_file: Path = Path("policy.toml")
    """The severity policy (see ``dispatcher.domain.policy``); built-in defaults when the file does not
    exist."""
    public_url: str | None = None
    """The address providers reach ``tocsin api`` at (e.g. behind a proxy); signed callbacks are checked
    against it."""
    sendgrid_event_public_key: SecretStr | None = None
    """The verification key of SendGrid's signed Event Webhook (base64, as SendGrid shows it)."""
    ingest_token: SecretStr | None = None
    """Bearer token monitoring sends to ``/ingest/*`` (Alertmanager ``http_config.authorization``, a
    Grafana contact point's Authorization header). An API token with the ``publish`` scope works too."""
    ingest_hmac_secret: SecretStr | None = None
    """Shared secret that signs ``/ingest/generic`` bodies (``X-Tocsin-Signature: sha256=<hex>``)."""
    metrics_port: int | None = Field(default=None, ge=1, le=65535)
    """The Celery worker serves Prometheus ``/metrics`` on this port; unset: no worker metrics server."""
    console_secret: SecretStr | None = None
    """Signs the web console's session cookies. Unset: a random key per process (sessions end on restart
    and are not shared between several ``tocsin api`` processes)."""
    limits: LimitSettings = Field(default_factory=LimitSettings)
    """Request body size and JSON depth limits of ``tocsin api``."""
    readiness: ReadinessSettings = Field(default_factory=ReadinessSettings)
    """How often the tick probes the providers (``tocsin check``, ``/readyz``)."""
    canary: CanarySettings = Field(default_factory=CanarySettings)
    """Your own contacts for ``tocsin check --send``."""

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        return check_timezone(value)

    @field_validator("default_locale")
    @classmethod
    def _locale_tag(cls, value: str) -> str:
        if not LOCALE_PATTERN.match(value.strip()):
            raise ValueError(f"{value!r} is not a locale tag such as en, fr or fr-CA")
        return value.strip()

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: str) -> str:
        if not value.startswith(("sqlite:", "postgresql:", "postgresql+psycopg:", "postgres:")):
            raise ValueError("must be a sqlite:/// path or a postgresql:// URL")
        if value.startswith("postgres:"):
            value = "postgresql" + value[len("postgres") :]
        if value.startswith("postgresql:"):
            value = "postgresql+psycopg:" + value[len("postgresql:") :]
        return value

    @field_validator("channels")
    @classmethod
    def _every_channel_configured(
        cls, value: dict[ChannelKind, ChannelSettings]
    ) -> dict[ChannelKind, ChannelSettings]:
        """Configuring one channel must not drop the defaults of the others; every provider named must
        exist (built in, or installed under the ``tocsin.channels`` entry point group)."""
        merged = {**_default_channels(), **value}
        check_provider_names({f"channels.{k.value}.providers": c.providers for k, c in merged.items()})
        return merged

    @field_validator("providers", "rate_limits")
    @classmethod
    def _known_provider_tables(cls, value: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        """``[providers.sendgird]`` would configure nothing: a table must be named after a provider."""
        check_provider_names({f"{info.field_name}.{name}": [name] for name in value}, table=True)
        return value

    @field_validator("public_url", "status_page_url")
    @classmethod
    def _web_address(cls, value: str | None) -> str | None:
        """Links in every message and the callbacks' signatures depend on it: http(s) with a host."""
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{value!r} must be an http:// or https:// URL with a host")
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        assert value is not None
        if not value.startswith(("redis://", "rediss://", "redis+socket://")):
            raise ValueError("must be a redis:// or rediss:// URL")
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_path = Path(os.environ.get(CONFIG_FILE_ENV, DEFAULT_CONFIG_FILE))
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls, toml_file=toml_path))

    def provider_options(self, name: str) -> dict[str, Any]:
        """Options for one provider, with Tocsin-wide defaults filled in."""
        options = {key: _json_if_structured(value) for key, value in self.providers.get(name, {}).items()}
        if name == "outbox":
            options.setdefault("directory", str(self.outbox_dir))
        if name == "webhook" and self.webhook_secret is not None:
            options.setdefault("default_secret", self.webhook_secret.get_secret_value())
        if name == "statuspage":
            user = [str(self.templates_dir)] if self.templates_dir is not None else []
            options.setdefault("template_dirs", [*user, str(templates_root())])
        return options

    def enabled_channels(self) -> list[ChannelKind]:
        return [kind for kind, cfg in self.channels.items() if cfg.enabled]


def _json_if_structured(value: Any) -> Any:
    """Options set through the environment arrive as text: ``'{"ops": "slack://…"}'`` means a table."""
    if isinstance(value, str) and value[:1] in ("{", "["):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def config_file_path() -> Path:
    return Path(os.environ.get(CONFIG_FILE_ENV, DEFAULT_CONFIG_FILE))
