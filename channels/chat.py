"""Chat rooms through Apprise: Slack, Microsoft Teams, Discord, Mattermost, Telegram, plain JSON, ...

The adapter's options map a **room name** to an Apprise URL (``slack://…``, ``msteams://…``,
``discord://…``, ``mmost://…``, ``tgram://…``, ``json://host/path`` …). Each ``Recipient.address`` is a
room name: the dispatcher writes one ledger row per room, and each room gets one ``notify`` call with the
update's subject as title and its text as a Markdown body (Apprise converts Markdown to what each service
understands), and each room's result is handed over as soon as it answered (``send_stream``). A room
that answered gets ``sent`` with the room name as ``provider_message_id`` (Apprise
returns no id from the services); one that did not gets ``retry`` (Apprise reports a status and log
lines, never an HTTP status, so we cannot tell a bad webhook from an outage); a name that is not
configured gets ``failed``.

Apprise URLs carry secrets (webhook tokens, bot tokens, passwords): they are ``SecretStr`` options and
every message this module produces shows them through ``redact`` (scheme and host only). Apprise's own
logging of a URL it cannot load is silenced while the URLs are parsed.

Throttling: Apprise sleeps between two requests of one service instance (``request_rate_per_sec`` on the
plugin, 5.5 s by default for many services). The adapter keeps one plugin instance per room for its
lifetime and sets that attribute to ``throttle_seconds`` (0 by default: Tocsin's own rate limiter paces
sends; ``None`` keeps Apprise's per-service defaults). Posts to one room are serialised, so the throttle
holds across worker threads; different rooms are posted concurrently.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import re
import threading
from collections.abc import Iterator, Sequence
from typing import ClassVar

from apprise import Apprise, AppriseAsset, AppriseResult, NotifyFormat, PersistentStoreMode
from apprise.plugins.base import NotifyBase
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from requests import RequestException

from channels.base import (
    AdapterBase,
    Capabilities,
    ChannelKind,
    Message,
    PermanentError,
    Recipient,
    Result,
)
from channels.readiness import Readiness

log = logging.getLogger(__name__)

MAX_ROOMS_PER_CALL = 50
_MASK = "***"
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*")
_DNS_NAME = re.compile(r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z][A-Za-z0-9-]*\.?")
_IPV4 = re.compile(r"\d{1,3}(?:\.\d{1,3}){3}")


# ---------------------------------------------------------------------------------------------- secrets


def _split_url(url: str) -> tuple[str, str, str, str] | None:
    """(scheme, host, port, rest) of ``scheme://[userinfo@]host[:port][rest]``, or None if not a URL."""
    scheme, sep, remainder = url.strip().partition("://")
    if not sep or not _SCHEME.fullmatch(scheme):
        return None
    pieces = re.split(r"(?=[/?#])", remainder, maxsplit=1)
    authority, rest = pieces[0], (pieces[1] if len(pieces) > 1 else "")
    userinfo, at, hostport = authority.rpartition("@")
    if at:
        rest = f"{userinfo}@{rest}"  # anything but the host counts as the rest, to be masked
    if hostport.startswith("["):
        host, _, port = hostport[1:].partition("]")
        host, port = f"[{host}]", port.removeprefix(":")
    else:
        host, _, port = hostport.partition(":")
    return scheme.lower(), host, port, rest


def _public_host(host: str) -> bool:
    """Whether ``host`` looks like a real host name or address. Several Apprise schemes put a token where
    the host goes (``tgram://<bot token>/…``, ``slack://<token>/…``, ``discord://<id>/<token>``): those
    are masked too."""
    return (
        host.lower() == "localhost"
        or bool(_IPV4.fullmatch(host))
        or (host.startswith("[") and host.endswith("]"))
        or bool(_DNS_NAME.fullmatch(host))
    )


def redact(url: str) -> str:
    """A printable form of an Apprise URL: the scheme and host, everything else masked.

    ``slack://T0/B0/XXXX`` -> ``slack://***``; ``json://user:pw@hooks.example.com/x?k=v`` ->
    ``json://hooks.example.com/***``; ``mmost://chat.example.com/token`` -> ``mmost://chat.example.com/***``.
    """
    parts = _split_url(url)
    if parts is None:
        return _MASK
    scheme, host, port, rest = parts
    if not _public_host(host):
        return f"{scheme}://{_MASK}"
    shown = f"{host}:{port}" if port.isdigit() else host
    masked = bool(rest.strip("/")) or (bool(port) and not port.isdigit())
    return f"{scheme}://{shown}" + (f"/{_MASK}" if masked else "")


def _scrub(text: str, url: str) -> str:
    """``text`` with the URL shown as ``redact`` shows it, and every other fragment of the URL that
    ``redact`` hides (tokens, passwords, path segments of 4+ characters) replaced by ``***``."""
    sentinel = "\x00"
    text = text.replace(url.strip(), sentinel)
    parts = _split_url(url)
    if parts is not None:
        _, host, port, rest = parts
        fragments = re.split(r"[/:@?&=#,;+]+", rest)
        if not _public_host(host):
            fragments += [host, port]
        elif not port.isdigit():
            fragments.append(port)
        for secret in sorted({f for f in fragments if len(f) >= 4}, key=len, reverse=True):
            text = text.replace(secret, _MASK)
    return text.replace(sentinel, redact(url))


class _DropOwnThreadRecords(logging.Filter):
    def __init__(self) -> None:
        super().__init__()
        self.thread = threading.get_ident()

    def filter(self, record: logging.LogRecord) -> bool:
        return record.thread != self.thread


@contextlib.contextmanager
def _quiet_apprise() -> Iterator[None]:
    """Drop what Apprise logs from this thread meanwhile: it echoes URLs it cannot load."""
    logger = logging.getLogger("apprise")
    dropper = _DropOwnThreadRecords()
    logger.addFilter(dropper)
    try:
        yield
    finally:
        logger.removeFilter(dropper)


def _asset() -> AppriseAsset:
    # Memory only: some plugins would otherwise keep state files under the user's home directory.
    return AppriseAsset(app_id="Tocsin", storage_mode=PersistentStoreMode.MEMORY)


def _instantiate(url: str, asset: AppriseAsset) -> NotifyBase | None:
    with _quiet_apprise():
        plugin = Apprise.instantiate(url, asset=asset)
    return plugin if isinstance(plugin, NotifyBase) else None


# ---------------------------------------------------------------------------------------------- options


class ChatOptions(BaseModel):
    """Settings of the chat adapter. Example::

    rooms:
      ops: "slack://T000/B000/XXXXXXXX"
      customers: "discord://1234567890/abcdefgh"
      teams: "msteams://team/tokenA/tokenB/tokenC"
    throttle_seconds: 1
    """

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    rooms: dict[str, SecretStr] = Field(min_length=1)
    """Room name (the ``Recipient.address``) -> Apprise URL."""
    throttle_seconds: float | None = Field(default=0.0, ge=0)
    """Least seconds between two posts to one room; ``None`` keeps Apprise's per-service default."""
    timeout: float = Field(default=10.0, gt=0)
    """Seconds to connect, and to wait for each read, per HTTP request Apprise makes."""
    concurrency: int = Field(default=8, ge=1, le=64)
    """Rooms posted to at once within one call."""

    @field_validator("rooms")
    @classmethod
    def _valid_rooms(cls, rooms: dict[str, SecretStr]) -> dict[str, SecretStr]:
        asset = _asset()
        for name, secret in rooms.items():
            if not name.strip():
                raise ValueError("room names must not be empty")
            url = secret.get_secret_value()
            if _instantiate(url, asset) is None:
                raise ValueError(f"room {name!r}: not a valid Apprise URL ({redact(url)})")
        return rooms


# ---------------------------------------------------------------------------------------------- adapter


class _Room:
    """One configured room: its Apprise instance (one plugin, kept for the throttle) and a lock."""

    def __init__(self, name: str, url: str, plugin: NotifyBase) -> None:
        self.name = name
        self.url = url
        self.shown = redact(url)
        self.apprise = Apprise(asset=plugin.asset)
        self.apprise.add(plugin)
        self.lock = threading.Lock()


class ChatAdapter(AdapterBase):
    """Chat rooms through Apprise. See the module docstring."""

    name: ClassVar[str] = "apprise"
    capabilities: ClassVar[Capabilities] = Capabilities(
        kinds=frozenset({ChannelKind.CHAT}),
        max_batch=MAX_ROOMS_PER_CALL,
        broadcast=True,
    )
    """Renders Markdown (the body goes to Apprise as ``NotifyFormat.MARKDOWN``), not HTML."""
    Options: ClassVar[type[BaseModel]] = ChatOptions

    def __init__(self, options: ChatOptions) -> None:
        self.options = options
        asset = _asset()
        self._rooms: dict[str, _Room] = {}
        for name, secret in options.rooms.items():
            url = secret.get_secret_value()
            plugin = _instantiate(url, asset)
            if plugin is None:  # validated already; only a plugin disabled since then gets here
                raise PermanentError(f"room {name!r}: not a valid Apprise URL ({redact(url)})")
            if options.throttle_seconds is not None:
                plugin.request_rate_per_sec = options.throttle_seconds
            plugin.socket_connect_timeout = options.timeout
            plugin.socket_read_timeout = options.timeout
            self._rooms[name] = _Room(name, url, plugin)

    @property
    def room_names(self) -> list[str]:
        return sorted(self._rooms)

    def send(self, message: Message, recipients: Sequence[Recipient]) -> list[Result]:
        """Post ``message`` to each recipient's room; one result per recipient, in order."""
        results = {r.delivery_id: r for group in self.send_stream(message, recipients) for r in group}
        return [results[r.delivery_id] for r in recipients]

    def send_stream(self, message: Message, recipients: Sequence[Recipient]) -> Iterator[list[Result]]:
        """Post ``message`` to each recipient's room; each room's result as soon as it answered."""
        if message.kind is not ChannelKind.CHAT:
            raise PermanentError(f"apprise carries chat messages, not {message.kind}")
        if len(recipients) <= 1 or self.options.concurrency == 1:
            for recipient in recipients:
                yield [self._post(message, recipient)]
            return
        workers = min(self.options.concurrency, len(recipients))
        with concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="tocsin-chat") as pool:
            posts = [pool.submit(self._post, message, r) for r in recipients]
            for done in concurrent.futures.as_completed(posts):
                yield [done.result()]

    def _post(self, message: Message, recipient: Recipient) -> Result:
        room = self._rooms.get(recipient.address)
        if room is None:
            known = ", ".join(self.room_names)
            return Result.failed(
                recipient.delivery_id, f"no such room {recipient.address!r} (rooms: {known})"
            )
        try:
            with room.lock:
                outcome = room.apprise.notify(
                    body=message.text, title=message.subject, body_format=NotifyFormat.MARKDOWN
                )
        except (OSError, RequestException) as exc:  # the network, past what Apprise catches itself
            detail = _scrub(f"{type(exc).__name__}: {exc}", room.url)
            return Result.retry(recipient.delivery_id, f"room {room.name!r} ({room.shown}): {detail}")
        # Anything else is a bug (ours or Apprise's): it raises, loud in the worker's log, instead of
        # being retried quietly until the schedule runs out.
        if outcome:
            return Result.sent(recipient.delivery_id, room.name)
        return Result.retry(recipient.delivery_id, self._why(room, outcome))

    @staticmethod
    def _why(room: _Room, outcome: AppriseResult) -> str:
        """What went wrong, from Apprise's status and captured warnings (no HTTP status is exposed)."""
        try:
            lines = [entry.message.strip() for entry in outcome.logs()]
        except Exception:  # the logs are a diagnostic nicety; never let them hide the outcome
            log.warning("chat: Apprise's logs for room %r could not be read", room.name, exc_info=True)
            lines = []
        detail = "; ".join(line for line in lines if line)
        detail = _scrub(detail, room.url)[:500] if detail else "Apprise does not say why"
        return f"room {room.name!r} ({room.shown}) not delivered ({outcome.status.name}): {detail}"

    def probe(self) -> Readiness:
        """Every room's URL is one Apprise can load (services offer no harmless call to prove a webhook
        still exists; ``canary.chat`` with ``tocsin check --send`` proves delivery)."""
        asset = _asset()
        broken = [room.name for room in self._rooms.values() if _instantiate(room.url, asset) is None]
        if broken:
            return Readiness.not_ready(f"Apprise cannot load the URL of room(s) {', '.join(sorted(broken))}")
        return Readiness.ok(f"{len(self._rooms)} room(s), every URL valid for Apprise")
