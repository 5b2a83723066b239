"""The adapter contract every provider follows: Tocsin's public plugin API.

Third-party providers implement this (and register under the ``tocsin.channels`` entry point group);
nothing else in ``channels/`` is promised to stay stable.

An adapter declares what it can do (``Capabilities``), takes one rendered ``Message`` and the batch of
``Recipient``s it goes to, and returns one ``Result`` per recipient. A failure of the whole call raises
one of three typed errors, which the dispatcher's retry policy maps to an action:

* ``TransientError``   - timeouts, 5xx, 429: retry later (honouring ``retry_after``);
* ``PermanentError``   - bad request, invalid address: never retried;
* ``ProviderUnavailable`` - credentials broken or provider down: move on to the next provider.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, runtime_checkable

from pydantic import BaseModel


class ChannelKind(enum.StrEnum):
    """A way to reach people. Direct kinds deliver per contact point; broadcast kinds post once."""

    EMAIL = "email"
    SMS = "sms"
    WEBHOOK = "webhook"
    SOCIAL = "social"
    CHAT = "chat"
    STATUSPAGE = "statuspage"
    """The static status site: rebuilt and published (directory, S3) on every public update."""

    @property
    def is_broadcast(self) -> bool:
        return self in (ChannelKind.SOCIAL, ChannelKind.CHAT, ChannelKind.STATUSPAGE)


class LengthRule(enum.StrEnum):
    """How a provider counts the length of a text."""

    NONE = "none"
    CHARACTERS = "characters"
    SMS_SEGMENTS = "sms_segments"
    X_WEIGHTED = "x_weighted"


@dataclass(frozen=True)
class Capabilities:
    """What an adapter can carry and how much of it at once."""

    kinds: frozenset[ChannelKind]
    max_batch: int
    broadcast: bool = False
    renders_html: bool = False
    max_text_length: int | None = None
    length_rule: LengthRule = LengthRule.NONE
    rate_limit_per_second: float | None = None


@dataclass(frozen=True)
class Message:
    """One update rendered for one channel (and locale). The same object goes to every recipient."""

    kind: ChannelKind
    update_id: int
    incident_id: int
    subject: str
    text: str
    html: str | None = None
    json_body: str | None = None
    """For webhooks: the exact JSON document to POST (rendered from the webhook template)."""
    reply_to_id: str | None = None
    """For threaded broadcast channels (X): the provider id of the post this one answers."""
    sender_name: str | None = None
    """Email: the From display name of this message (a signed update: "Jane Doe, Example Corp");
    None: the provider's configured ``from_name``."""


MESSAGE_ID_PREFIX = "tocsin-"


@dataclass(frozen=True)
class Recipient:
    """One owed delivery in a batch: the ledger row id and the address it goes to."""

    delivery_id: int
    address: str
    name: str | None = None
    secret: str | None = field(default=None, repr=False)
    """Per-endpoint signing secret for webhooks (``whsec_…``); never printed."""
    unsubscribe_url: str | None = None
    """Email: this recipient's signed one-click unsubscribe link (RFC 8058). Email adapters send it as
    ``List-Unsubscribe`` with ``List-Unsubscribe-Post: List-Unsubscribe=One-Click``.

    A ``delivery_id`` of 0 or less marks a message outside the delivery ledger (a subscription
    confirmation): adapters must not report it to the provider as a ledger row."""

    @property
    def message_id(self) -> str:
        """Stable id for this delivery, the same on every retry (webhook-id, SendGrid custom_args)."""
        return f"{MESSAGE_ID_PREFIX}{self.delivery_id}"


class Outcome(enum.StrEnum):
    SENT = "sent"
    RETRY = "retry"
    FAILED = "failed"
    OPTED_OUT = "opted_out"
    """The recipient told the provider to stop (e.g. replied STOP to an SMS): record it, never retry."""


@dataclass(frozen=True)
class Result:
    """What happened to one recipient of a batch."""

    delivery_id: int
    outcome: Outcome
    provider_message_id: str | None = None
    error: str | None = None
    retry_after: float | None = None

    @classmethod
    def sent(cls, delivery_id: int, provider_message_id: str | None = None) -> Result:
        return cls(delivery_id, Outcome.SENT, provider_message_id=provider_message_id)

    @classmethod
    def failed(cls, delivery_id: int, error: str) -> Result:
        return cls(delivery_id, Outcome.FAILED, error=error)

    @classmethod
    def retry(cls, delivery_id: int, error: str, retry_after: float | None = None) -> Result:
        return cls(delivery_id, Outcome.RETRY, error=error, retry_after=retry_after)

    @classmethod
    def opted_out(cls, delivery_id: int, error: str) -> Result:
        return cls(delivery_id, Outcome.OPTED_OUT, error=error)


class ChannelError(Exception):
    """Base of the three errors an adapter may raise for a whole call."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class TransientError(ChannelError):
    """Worth retrying later: timeouts, 5xx, 429. ``retry_after`` is the provider's own hint, seconds."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentError(ChannelError):
    """Retrying cannot help: the request or the address is wrong."""


class ProviderUnavailable(ChannelError):
    """This provider cannot carry anything now (auth broken, provider down): try the next one."""


@runtime_checkable
class Adapter(Protocol):
    """A provider adapter. Construct it with ``from_options``; ``send`` is called from worker threads."""

    name: ClassVar[str]
    capabilities: ClassVar[Capabilities]

    def send(self, message: Message, recipients: Sequence[Recipient]) -> list[Result]: ...

    def close(self) -> None: ...


class AdapterBase:
    """Convenience base: validates options with the adapter's ``Options`` model."""

    name: ClassVar[str]
    capabilities: ClassVar[Capabilities]
    Options: ClassVar[type[BaseModel]]

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> Adapter:
        adapter: Adapter = cls(cls.Options.model_validate(dict(options)))  # type: ignore[call-arg, assignment]
        return adapter

    def close(self) -> None:
        """Release connections; the default has none."""
