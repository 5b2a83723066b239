"""Outbound webhook adapter, signed the Standard Webhooks way.

Each recipient is an endpoint URL (``Recipient.address``) with its own ``whsec_…`` secret. The body is the
rendered ``Message.json_body``; headers:

* ``webhook-id``: ``Recipient.message_id``, stable across retries so receivers can de-duplicate;
* ``webhook-timestamp``: unix seconds when the request is actually made;
* ``webhook-signature``: ``v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}")>``.

A batch is sent with many requests in flight through libcurl's multi interface
(``channels._http.curl_multi``; why not aiohttp is written there), from the calling thread, with pooled
connections reused from batch to batch. Endpoint answers map to per-recipient results, each handed over
(``send_stream``) as soon as its endpoint answered; this adapter only raises for a message it cannot
send at all.

Endpoint URLs come from subscribers, so every destination passes ``channels._http.ssrf.DestinationPolicy``
first: http(s) only, no credentials in the URL, and no loopback, private, link-local or metadata address
unless ``allow_destinations`` lists it. Each host name of a batch is resolved and checked once, and the
request is pinned to the checked address: the connection goes to exactly that address (no DNS rebinding
between check and connect), while TLS SNI and the Host header keep the URL's name. Redirects are not
followed. A refused endpoint fails with ``blocked: <why>``, permanently, without any request being made.
"""

from __future__ import annotations

import base64
import binascii
import concurrent.futures
import hashlib
import hmac
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from yarl import URL

from channels._http.curl_multi import BAD_URL, COULDNT_CONNECT, TIMED_OUT, Answer, CurlPool, Request
from channels._http.ssrf import BlockedDestination, DestinationPolicy, IPAddress, Resolve, system_resolve
from channels.base import (
    AdapterBase,
    Capabilities,
    ChannelKind,
    Message,
    PermanentError,
    Recipient,
    Result,
    collected,
)
from channels.readiness import Readiness

SECRET_PREFIX = "whsec_"
MAX_BATCH = 500
STREAM_TICK = 0.05
"""Seconds ``send_stream`` waits at most before handing over what has come (possibly nothing)."""
_RESOLVE_THREADS = 16


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
    # hmac.digest: OpenSSL's one-shot HMAC, without building an HMAC object per request
    digest = hmac.digest(key, f"{webhook_id}.{timestamp}.{body}".encode(), hashlib.sha256)
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


@dataclass(frozen=True, slots=True)
class _Destination:
    """Where one endpoint URL may be reached, or why it may not (``failed`` / ``retry`` reasons)."""

    url: str = ""
    addresses: tuple[IPAddress, ...] = ()
    """Every checked address of the host, in the resolver's order: the next is tried when one refuses."""
    port: int = 0
    failed: str | None = None
    retry: str | None = None


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
        # One connection pool per thread that sends (the embedded runner sends from several threads).
        self._local = threading.local()
        self._pools: list[CurlPool] = []
        self._lock = threading.Lock()
        self._lookups: concurrent.futures.ThreadPoolExecutor | None = None

    def send(self, message: Message, recipients: Sequence[Recipient]) -> list[Result]:
        """POST ``message.json_body`` to every recipient concurrently; one result per recipient, in the
        recipients' order."""
        results = collected(self.send_stream(message, recipients), recipients)
        position = {r.delivery_id: i for i, r in reversed(list(enumerate(recipients)))}
        return sorted(results, key=lambda r: position.get(r.delivery_id, len(recipients)))

    def send_stream(self, message: Message, recipients: Sequence[Recipient]) -> Iterator[list[Result]]:
        """POST ``message.json_body`` to every recipient concurrently; each result as soon as its
        endpoint answers (refused endpoints first, at once)."""
        if message.kind is not ChannelKind.WEBHOOK:
            raise PermanentError(f"webhook adapter carries webhooks, not {message.kind}")
        if message.json_body is None:
            raise PermanentError("webhook message has no json_body")
        if not recipients:
            return
        body = message.json_body
        encoded = body.encode()
        destinations = self._destinations([r.address for r in recipients])
        settled: list[Result] = []
        # (recipient, key, destination, which of its addresses) for each request to make
        pending: list[tuple[Recipient, bytes, _Destination, int]] = []
        for recipient in recipients:
            delivery_id = recipient.delivery_id
            try:
                key = self._key_for(recipient)
            except ValueError as exc:
                settled.append(Result.failed(delivery_id, str(exc)))
                continue
            where = destinations[recipient.address]
            if where.failed is not None:
                settled.append(Result.failed(delivery_id, where.failed))
            elif where.retry is not None or not where.addresses:
                settled.append(Result.retry(delivery_id, where.retry or "no address"))
            else:
                pending.append((recipient, key, where, 0))
        if settled:
            yield settled
        pool = self._pool()
        while pending:
            requests = [
                Request(
                    where.url,
                    where.addresses[which],
                    where.port,
                    encoded,
                    _signed_headers(key, recipient.message_id, body),
                )
                for recipient, key, where, which in pending
            ]
            again = []
            for done in pool.run_each(requests, tick=STREAM_TICK):
                results = []
                for index, answer in done:
                    recipient, key, where, which = pending[index]
                    if answer.error_code == COULDNT_CONNECT and which + 1 < len(where.addresses):
                        again.append((recipient, key, where, which + 1))  # e.g. IPv6 unreachable here
                    else:
                        results.append(self._result(recipient, answer))
                yield results  # empty while only slow endpoints are left: the caller may write meanwhile
            pending = again

    def _result(self, recipient: Recipient, answer: Answer) -> Result:
        if answer.error is not None:
            if answer.error_code == TIMED_OUT:
                return Result.retry(recipient.delivery_id, f"timed out after {self.options.timeout:g}s")
            if answer.error_code in BAD_URL:
                return Result.failed(recipient.delivery_id, f"invalid endpoint URL: {answer.error}")
            return Result.retry(recipient.delivery_id, answer.error)
        return result_for(recipient.delivery_id, recipient.message_id, answer)

    def _pool(self) -> CurlPool:
        pool: CurlPool | None = getattr(self._local, "pool", None)
        if pool is None:
            options = self.options
            pool = CurlPool(options.concurrency, options.timeout, options.user_agent)
            self._local.pool = pool
            with self._lock:
                self._pools.append(pool)
        return pool

    def _destinations(self, urls: Sequence[str]) -> dict[str, _Destination]:
        """Check every distinct URL; resolve and check every distinct host once (several at a time)."""
        parsed: dict[str, URL | _Destination] = {}
        hosts: set[tuple[str, int]] = set()
        # What check_url looks at, for the URLs it passed: a batch's endpoints often share a host, and
        # then the same verdict holds for every one of them (refusals are checked each time, to name
        # the URL).
        passed: set[tuple[str, str | None, str | None, str | None]] = set()
        for url in urls:
            if url in parsed:
                continue
            try:
                target = URL(url)  # parsed once: what is checked is exactly what is requested
                seen = (target.scheme, target.user, target.password, target.raw_host)
                if seen not in passed:
                    self.policy.check_url(target)
                    passed.add(seen)
            except BlockedDestination as exc:
                parsed[url] = _Destination(failed=f"blocked: {exc.reason}")
                continue
            except (ValueError, TypeError) as exc:
                parsed[url] = _Destination(failed=f"invalid endpoint URL: {exc}")
                continue
            if not target.host or target.port is None:
                parsed[url] = _Destination(failed=f"invalid endpoint URL: {url[:200]}")
                continue
            parsed[url] = target
            hosts.add((target.host, target.port))
        checked = self._resolve_all(hosts)
        out: dict[str, _Destination] = {}
        for url, item in parsed.items():
            if isinstance(item, _Destination):
                out[url] = item
                continue
            assert item.host is not None and item.port is not None
            where = checked[(item.host, item.port)]
            out[url] = (
                where if isinstance(where, _Destination) else _Destination(str(item), tuple(where), item.port)
            )
        return out

    def _resolve_all(
        self, hosts: set[tuple[str, int]]
    ) -> dict[tuple[str, int], list[IPAddress] | _Destination]:
        def check(host_port: tuple[str, int]) -> list[IPAddress] | _Destination:
            host, port = host_port
            try:
                return self.policy.resolve_and_check(host, port)
            except BlockedDestination as exc:
                return _Destination(failed=f"blocked: {exc.reason}")
            except OSError as exc:
                return _Destination(retry=f"cannot resolve {host}: {exc}")

        ordered = sorted(hosts)
        if len(ordered) <= 1:
            return {hp: check(hp) for hp in ordered}
        with self._lock:
            if self._lookups is None:
                self._lookups = concurrent.futures.ThreadPoolExecutor(
                    _RESOLVE_THREADS, thread_name_prefix="tocsin-webhook-dns"
                )
            lookups = self._lookups
        return dict(zip(ordered, lookups.map(check, ordered), strict=True))

    def probe(self) -> Readiness:
        """Nothing shared to probe: every subscriber has an endpoint of their own, checked when sent to.
        ``canary.webhook`` with ``tocsin check --send`` proves the whole path to an endpoint of yours."""
        allowed = (
            f"; private destinations allowed: {', '.join(self.policy.allow)}" if self.policy.allow else ""
        )
        return Readiness.ok(f"signing and sending are set up (timeout {self.options.timeout:g} s){allowed}")

    def close(self) -> None:
        with self._lock:
            pools, self._pools = self._pools, []
            lookups, self._lookups = self._lookups, None
        for pool in pools:
            pool.close()
        self._local = threading.local()
        if lookups is not None:
            lookups.shutdown(wait=False)

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


def _signed_headers(key: bytes, webhook_id: str, body: str) -> Callable[[], list[str]]:
    """The request's headers, signed when the request starts (so a request that waited for a free
    connection does not carry a stale timestamp)."""

    def headers() -> list[str]:
        timestamp = int(time.time())
        return [
            "content-type: application/json",
            f"webhook-id: {webhook_id}",
            f"webhook-timestamp: {timestamp}",
            f"webhook-signature: {sign(key, webhook_id, timestamp, body)}",
        ]

    return headers


def result_for(delivery_id: int, webhook_id: str, answer: Answer) -> Result:
    """Map an endpoint's answer: 2xx sent; 410 gone; 408/429/5xx retry; other statuses failed."""
    status = answer.status
    if 200 <= status < 300:
        return Result.sent(delivery_id, webhook_id)
    if status == 410:
        return Result.failed(delivery_id, "endpoint gone (410): stop sending to it")
    if status in (408, 429) or status >= 500:
        return Result.retry(delivery_id, f"endpoint answered {status}", answer.retry_after)
    if 300 <= status < 400:
        return Result.failed(delivery_id, f"endpoint answered a redirect ({status}), not followed")
    return Result.failed(delivery_id, f"endpoint answered {status}")
