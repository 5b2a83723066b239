"""The adapter contract every provider follows: Tocsin's public plugin API.

Third-party providers implement this (and register under the ``tocsin.channels`` entry point group);
nothing else in ``channels/`` is promised to stay stable.

An adapter declares what it can do (``Capabilities``), takes one rendered ``Message`` and the batch of
``Recipient``s it goes to, and returns one ``Result`` per recipient. A failure of the whole call raises
one of three typed errors, which the dispatcher's retry policy maps to an action:

* ``TransientError``   - timeouts, 5xx, 429: retry later (honouring ``retry_after``);
* ``PermanentError``   - bad request, invalid address: never retried;
* ``ProviderUnavailable`` - credentials broken or provider down: move on to the next provider.

An adapter that makes one request per recipient (or per group of them) may also offer ``send_stream``:
the same results, handed over as each request completes, so the dispatcher records them in small
windows instead of after the whole batch (a worker killed mid-batch then re-sends only what was in
flight). A recipient the adapter stopped before reaching (``Result.untried``: the provider asked to
wait, failed several requests in a row, or could not be reached) is owed again without counting an
attempt. ``results_of`` is how the dispatcher reads either kind of adapter.

An adapter that keeps several such requests in flight at once (``Capabilities.paced``) takes a ``Pace``
from the dispatcher with ``send_stream(message, recipients, pace=...)`` and asks it before each request:
the dispatcher answers with the provider account's pause and rate limit, shared by every worker, and says
when to send no more. The adapter then still hands over the results of the requests already on the wire,
so nothing that reached the provider goes unrecorded, and leaves the rest without a result (owed again,
uncounted).
"""

from __future__ import annotations

import enum
from collections.abc import Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

if TYPE_CHECKING:  # an annotation only: importing this module (``ChannelKind``) stays free of pydantic
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
    paced: bool = False
    """``send_stream`` takes a ``Pace`` and keeps several requests in flight (see the module docstring)."""


class Pace(Protocol):
    """Asked by a paced adapter before each request. Returns 0.0 to send it now, the seconds to wait
    before asking again (the account is paused, or the rate limit's next token is not there yet), or None
    to send no more in this call. Called from the thread that reads the stream."""

    def __call__(self) -> float | None: ...


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
    published_at: datetime | None = None
    """When the update was published: nothing this message caused can be older (X looks up a post it
    may have made already, after an answer that was lost)."""
    sender_name: str | None = None
    """Email: the From display name of this message (a signed update: "Jane Doe, Example Corp");
    None: the provider's configured ``from_name``."""


MESSAGE_ID_PREFIX = "tocsin-"

MANAGE_URL_PLACEHOLDER = "%tocsin_manage_url%"
"""Where an email's text and HTML show the recipient's own "manage or stop these updates" link: email
adapters put ``Recipient.manage_url`` (else its one-click ``unsubscribe_url``) in its place for each
recipient (``personalise``)."""


def personal_link(recipient: Recipient) -> str:
    """The link a recipient's body shows: their manage page, else their one-click unsubscribe link."""
    return recipient.manage_url or recipient.unsubscribe_url or ""


def personalise(text: str, recipient: Recipient) -> str:
    """``text`` with ``MANAGE_URL_PLACEHOLDER`` replaced by the recipient's own link (empty if none)."""
    return text.replace(MANAGE_URL_PLACEHOLDER, personal_link(recipient))


@dataclass(frozen=True)
class Recipient:
    """One owed delivery in a batch: the ledger row id and the address it goes to."""

    delivery_id: int
    address: str
    name: str | None = None
    secret: str | None = field(default=None, repr=False)
    """Per-endpoint signing secret for webhooks (``whsec_…``); never printed."""
    unsubscribe_url: str | None = None
    manage_url: str | None = None
    """Email: this recipient's signed one-click unsubscribe link (RFC 8058). Email adapters send it as
    ``List-Unsubscribe`` with ``List-Unsubscribe-Post: List-Unsubscribe=One-Click``.
    manage_url: this recipient's own signed "manage your subscription" page: the body's visible "manage
    or stop these updates" link (``MANAGE_URL_PLACEHOLDER``) and ``List-Help`` (RFC 2369).

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
    UNTRIED = "untried"
    """No request for this recipient reached the provider (the adapter stopped before it): owed again,
    without counting an attempt."""


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

    @classmethod
    def untried(cls, delivery_id: int, why: str, retry_after: float | None = None) -> Result:
        """Not sent, not attempted: ``retry_after`` is the provider's request to wait (a 429 given to
        another recipient of the same account), if that is why."""
        return cls(delivery_id, Outcome.UNTRIED, error=why, retry_after=retry_after)


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


def results_of(
    adapter: Adapter, message: Message, recipients: Sequence[Recipient], pace: Pace | None = None
) -> Generator[list[Result], None, None]:
    """The adapter's results, one list per completed provider request: from ``send_stream`` when the
    adapter has it (given ``pace`` when the adapter is paced), else ``send``'s whole answer at once. Typed
    errors raise while iterating; they concern every recipient that has no result yet."""
    stream = getattr(adapter, "send_stream", None)
    if stream is not None and pace is not None and adapter.capabilities.paced:
        yield from stream(message, recipients, pace=pace)
        return
    if stream is not None:
        yield from stream(message, recipients)
        return
    yield adapter.send(message, recipients)


def collected(stream: Iterator[list[Result]], recipients: Sequence[Recipient]) -> list[Result]:
    """``send`` for an adapter that streams: every result of ``stream``, in one list.

    A typed error raised before any result is raised; raised later, it concerns only the recipients
    still without a result, which get one from it (``failed`` for a permanent error, ``untried`` when the
    provider became unavailable, ``retry`` otherwise), so what was already sent is never lost to a raise.
    """
    results: list[Result] = []
    try:
        for group in stream:
            results.extend(group)
    except ChannelError as exc:
        if not results:
            raise
        answered = {r.delivery_id for r in results}
        rest = [r for r in recipients if r.delivery_id not in answered]
        if isinstance(exc, PermanentError):
            results.extend(Result.failed(r.delivery_id, exc.message) for r in rest)
        elif isinstance(exc, ProviderUnavailable):
            results.extend(Result.untried(r.delivery_id, exc.message) for r in rest)
        else:
            after = exc.retry_after if isinstance(exc, TransientError) else None
            results.extend(Result.retry(r.delivery_id, exc.message, after) for r in rest)
    return results


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
