"""Outbound webhook adapter, signed the Standard Webhooks way.

Each recipient is an endpoint URL (``Recipient.address``) with its own ``whsec_…`` secret. The body is the
rendered ``Message.json_body``; headers:

* ``webhook-id``: ``Recipient.message_id``, stable across retries so receivers can de-duplicate;
* ``webhook-timestamp``: unix seconds when the request is actually made;
* ``webhook-signature``: ``v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}")>``.

A batch is sent concurrently with aiohttp (one session, a pooled connector); ``send`` is synchronous and
runs its own event loop per call. Endpoint answers map to per-recipient results; this adapter only
raises for a message it cannot send at all.

Endpoint URLs come from subscribers, so every destination passes ``channels.ssrf.DestinationPolicy``
first: http(s) only, no credentials in the URL, and no loopback, private, link-local or metadata address
unless ``allow_destinations`` lists it. Host names are resolved and checked by the connector's resolver
(``CheckingResolver``), which hands aiohttp only the checked addresses: the connection goes to exactly
the address that was checked (no DNS rebinding between check and connect), while TLS SNI and the Host
header keep the URL's name. Redirects are not followed. A refused endpoint fails with ``blocked: <why>``,
permanently, without any request being made.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import socket
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from yarl import URL

from channels.base import (
    AdapterBase,
    Capabilities,
    ChannelKind,
    Message,
    PermanentError,
    Recipient,
    Result,
)
from channels.http_hints import retry_after
from channels.ssrf import BlockedDestination, DestinationPolicy, Resolve, system_resolve

SECRET_PREFIX = "whsec_"
MAX_BATCH = 500
_READ_LIMIT = 64 * 1024


def secret_key(secret: str) -> bytes:
    """The HMAC key of a ``whsec_<base64>`` secret (the prefix is optional)."""
    encoded = secret.removeprefix(SECRET_PREFIX)
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("webhook secret must be 'whsec_' followed by base64") from None
    if not key:
        raise ValueError("webhook secret is empty")
    return key


def sign(key: bytes, webhook_id: str, timestamp: int, body: str) -> str:
    """The ``webhook-signature`` header value for one request."""
    digest = hmac.new(key, f"{webhook_id}.{timestamp}.{body}".encode(), hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


class WebhookOptions(BaseModel):
    """Settings of the webhook adapter."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    timeout: float = Field(default=10.0, gt=0)
    """Seconds for one whole request (connect, send, first bytes of the answer)."""
    concurrency: int = Field(default=64, ge=1, le=1024)
    """Requests in flight at once within one batch (and size of the connection pool)."""
    user_agent: str = "Tocsin-Webhooks/0.1"
    default_secret: SecretStr | None = None
    """Signing secret for recipients that have none of their own."""
    allow_destinations: list[str] = Field(default_factory=list)
    """CIDR networks (``"10.1.0.0/16"``) and host names (``"hooks.intranet.example"``,
    ``"*.intranet.example"``) that may be reached although private; empty: only public addresses (tests
    with local receivers: ``["127.0.0.0/8"]``)."""

    @field_validator("default_secret")
    @classmethod
    def _valid_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            secret_key(value.get_secret_value())
        return value

    @field_validator("allow_destinations")
    @classmethod
    def _valid_destinations(cls, value: list[str]) -> list[str]:
        DestinationPolicy(value)  # raises ValueError naming a bad entry
        return value


@dataclass(frozen=True)
class _Answer:
    status: int
    headers: Mapping[str, str]


class WebhookAdapter(AdapterBase):
    """Standard Webhooks deliveries. See the module docstring."""

    name: ClassVar[str] = "webhook"
    capabilities: ClassVar[Capabilities] = Capabilities(
        kinds=frozenset({ChannelKind.WEBHOOK}),
        max_batch=MAX_BATCH,
    )
    Options: ClassVar[type[BaseModel]] = WebhookOptions

    def __init__(self, options: WebhookOptions, *, resolve: Resolve | None = None) -> None:
        self.options = options
        self.policy = DestinationPolicy(options.allow_destinations, resolve=resolve or system_resolve)
        self._default_key = (
            None if options.default_secret is None else secret_key(options.default_secret.get_secret_value())
        )
        self._keys: dict[str, bytes] = {}
        # One event loop and one pooled session for the adapter's life, on a thread of their own:
        # connections (and the connector's TLS context) are reused across batches.
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._session: aiohttp.ClientSession | None = None
        self._lock = threading.Lock()

    def send(self, message: Message, recipients: Sequence[Recipient]) -> list[Result]:
        """POST ``message.json_body`` to every recipient concurrently; one result per recipient."""
        if message.kind is not ChannelKind.WEBHOOK:
            raise PermanentError(f"webhook adapter carries webhooks, not {message.kind}")
        if message.json_body is None:
            raise PermanentError("webhook message has no json_body")
        if not recipients:
            return []
        loop = self._running_loop()
        future = asyncio.run_coroutine_threadsafe(self._send_all(message.json_body, recipients), loop)
        return future.result()

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=loop.run_forever, name="tocsin-webhooks", daemon=True)
                thread.start()
                self._loop, self._thread = loop, thread
            return self._loop

    def _get_session(self) -> aiohttp.ClientSession:
        """The pooled session; created on the adapter's loop, the first time it is needed."""
        if self._session is None or self._session.closed:
            options = self.options
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    limit=options.concurrency, resolver=CheckingResolver(self.policy)
                ),
                timeout=aiohttp.ClientTimeout(total=options.timeout),
                headers={"User-Agent": options.user_agent},
                # No proxy from the environment: through a proxy, the resolver would check the proxy's
                # address instead of the endpoint's.
                trust_env=False,
            )
        return self._session

    def close(self) -> None:
        with self._lock:
            loop, thread, session = self._loop, self._thread, self._session
            self._loop = self._thread = self._session = None
        if loop is None:
            return
        if session is not None:
            asyncio.run_coroutine_threadsafe(session.close(), loop).result(timeout=5)
        loop.call_soon_threadsafe(loop.stop)
        if thread is not None:
            thread.join(timeout=5)
        loop.close()

    async def _send_all(self, body: str, recipients: Sequence[Recipient]) -> list[Result]:
        session = self._get_session()
        limit = asyncio.Semaphore(self.options.concurrency)

        async def one(recipient: Recipient) -> Result:
            try:
                key = self._key_for(recipient)
            except ValueError as exc:
                return Result.failed(recipient.delivery_id, str(exc))
            async with limit:
                # Timestamp taken when a slot is free, so queued requests are not signed stale.
                return await self._deliver(session, recipient, key, body)

        return list(await asyncio.gather(*(one(r) for r in recipients)))

    def _key_for(self, recipient: Recipient) -> bytes:
        if recipient.secret:
            key = self._keys.get(recipient.secret)
            if key is None:
                if len(self._keys) > 100_000:
                    self._keys.clear()
                key = self._keys[recipient.secret] = secret_key(recipient.secret)
            return key
        if self._default_key is None:
            raise ValueError("no signing secret for this endpoint and no default_secret")
        return self._default_key

    async def _deliver(
        self, session: aiohttp.ClientSession, recipient: Recipient, key: bytes, body: str
    ) -> Result:
        webhook_id = recipient.message_id
        timestamp = int(time.time())
        headers = {
            "content-type": "application/json",
            "webhook-id": webhook_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(key, webhook_id, timestamp, body),
        }
        delivery_id = recipient.delivery_id
        try:
            answer = await post(session, recipient.address, body.encode(), headers, self.policy)
        except BlockedDestination as exc:
            return Result.failed(delivery_id, f"blocked: {exc.reason}")
        except aiohttp.InvalidURL as exc:
            return Result.failed(delivery_id, f"invalid endpoint URL: {exc}")
        except TimeoutError:
            return Result.retry(delivery_id, f"timed out after {self.options.timeout:g}s")
        except (aiohttp.ClientError, OSError) as exc:
            return Result.retry(delivery_id, f"{type(exc).__name__}: {exc}")
        return result_for(delivery_id, webhook_id, answer)


async def post(
    session: aiohttp.ClientSession,
    url: str,
    body: bytes,
    headers: Mapping[str, str],
    policy: DestinationPolicy,
) -> _Answer:
    """Make one request; the only place that touches the network. Redirects are not followed.

    ``policy`` checks the URL here (and a literal IP host, which aiohttp never hands to its resolver);
    a host name is resolved and checked by the session's ``CheckingResolver`` (the same policy), so the
    connection is made to a checked address. Raises ``BlockedDestination`` before any request is made."""
    target = URL(url)  # parsed once: what is checked is exactly what aiohttp connects to
    policy.check_url(target)
    async with session.post(target, data=body, headers=dict(headers), allow_redirects=False) as response:
        await response.content.read(_READ_LIMIT)
        return _Answer(response.status, response.headers.copy())


class CheckingResolver(AbstractResolver):
    """An aiohttp resolver that resolves with ``DestinationPolicy.resolve_and_check`` and returns only the
    checked addresses, so the connector connects to what was checked. Raises ``BlockedDestination``."""

    def __init__(self, policy: DestinationPolicy) -> None:
        self.policy = policy

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        loop = asyncio.get_running_loop()
        addresses = await loop.run_in_executor(None, self.policy.resolve_and_check, host, port)
        results: list[ResolveResult] = []
        for address in addresses:
            address_family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
            if family not in (socket.AF_UNSPEC, address_family):
                continue
            results.append(
                ResolveResult(
                    hostname=host,
                    host=str(address),
                    port=port,
                    family=address_family,
                    proto=0,
                    flags=socket.AI_NUMERICHOST | socket.AI_NUMERICSERV,
                )
            )
        if not results:
            raise OSError(f"{host} has no {family.name} address")
        return results

    async def close(self) -> None:
        """Nothing to release: lookups run on the loop's default executor."""


def result_for(delivery_id: int, webhook_id: str, answer: _Answer) -> Result:
    """Map an endpoint's answer: 2xx sent; 410 gone; 408/429/5xx retry; other statuses failed."""
    status = answer.status
    if 200 <= status < 300:
        return Result.sent(delivery_id, webhook_id)
    if status == 410:
        return Result.failed(delivery_id, "endpoint gone (410): stop sending to it")
    if status in (408, 429) or status >= 500:
        return Result.retry(delivery_id, f"endpoint answered {status}", retry_after(answer.headers))
    if 300 <= status < 400:
        return Result.failed(delivery_id, f"endpoint answered a redirect ({status}), not followed")
    return Result.failed(delivery_id, f"endpoint answered {status}")
