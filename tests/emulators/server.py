"""Shared machinery of the provider emulators: lifecycle, recording, statistics, faults, control API.

An ``Emulator`` subclass adds its provider routes in ``add_routes`` (wrapping each handler with
``self.provider_route`` so faults and statistics apply) and says how its provider answers an error in
``error_response`` / ``unavailable_response``. Everything else lives here:

* lifecycle: ``start()``/``stop()`` or ``with Emulator() as emu`` runs the server on its own event loop in a
  daemon thread; ``serve_forever()`` runs it in the current thread (subprocess mode, see ``run.py``);
* recording: ``received`` (accepted messages, provider specific dicts), ``rejected`` (requests the
  provider logic refused, with the reason), ``stats``;
* faults: ``FaultConfig`` (latency, down, a queue of next failures, a random failure rate);
* the request log (``request_log``): every provider request, what it was about (``request_key``: the
  phone number, the post, the webhook id) and how it was answered, so a test can compare what a
  client's ledger says it attempted with what reached the provider;
* Retry-After kept per account (``account_of``): a request of an account that was told to wait, made
  before the wait is over, is counted in ``stats["early_account_requests"]``;
* control endpoints under ``/_emulator/`` so another process can inspect and steer the emulator.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Self

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

FaultAction = Literal["status", "hang", "drop", "pass"]
DownMode = Literal["unavailable", "auth"]
FAILURE_KINDS = ("5xx", "429", "hang", "drop")


EARLY_TOLERANCE = 0.05
"""Seconds of clock slack before a retry counts as earlier than its Retry-After."""


@dataclass
class FaultSpec:
    """One queued failure: answer ``status`` (with optional Retry-After seconds), ``hang`` (never answer
    within any sane client timeout), ``drop`` (accept and record the message, then close the connection
    without answering: a "ghost" delivery the client cannot know about) or ``pass`` (no failure: this
    request is served normally, so a queue can fault the third request and not the first two)."""

    action: FaultAction = "status"
    status: int = 500
    retry_after: float | None = None

    @classmethod
    def parse(cls, raw: Any) -> FaultSpec:
        """Accept ``"hang"``, ``"drop"``, ``503``, ``{"status": 429, "retry_after": 2}`` or
        ``{"action": "hang"}``."""
        if isinstance(raw, FaultSpec):
            return raw
        if isinstance(raw, str):
            if raw in ("hang", "drop", "pass"):
                return cls(action=raw)  # type: ignore[arg-type]
            if raw.isdigit():
                return cls(status=int(raw))
            raise ValueError(f"unknown fault {raw!r} (expected 'hang', 'drop', a status or an object)")
        if isinstance(raw, int):
            return cls(status=raw)
        if isinstance(raw, Mapping):
            action = raw.get("action", "status")
            if action not in ("status", "hang", "drop", "pass"):
                raise ValueError(f"unknown fault action {action!r}")
            retry_after = raw.get("retry_after")
            return cls(
                action=action,
                status=int(raw.get("status", 500)),
                retry_after=None if retry_after is None else float(retry_after),
            )
        raise ValueError(f"cannot read fault {raw!r}")

    def to_json(self) -> dict[str, Any]:
        return {"action": self.action, "status": self.status, "retry_after": self.retry_after}


@dataclass
class FaultConfig:
    """Faults applied to provider requests (never to ``/_emulator/*``). JSON shape, every key optional::

    {"latency_ms": 100, "down": false | true | "unavailable" | "auth",
     "fail_next": ["hang", "drop", 503, {"status": 429, "retry_after": 2}],
     "failure_rate": 0.1, "failure_kinds": ["5xx", "429", "hang"], "seed": 7,
     "hang_seconds": 300, "retry_after": 1}
    """

    latency_ms: float = 0.0
    down: DownMode | None = None
    fail_next: list[FaultSpec] = field(default_factory=list)
    failure_rate: float = 0.0
    failure_kinds: tuple[str, ...] = ("5xx", "429", "hang")
    seed: int = 0
    hang_seconds: float = 300.0
    retry_after: float = 1.0
    """Retry-After (seconds) of the 429s drawn by ``failure_rate``."""

    KEYS: ClassVar[frozenset[str]] = frozenset(
        {
            "latency_ms",
            "down",
            "fail_next",
            "failure_rate",
            "failure_kinds",
            "seed",
            "hang_seconds",
            "retry_after",
        }
    )

    def update(self, raw: Mapping[str, Any]) -> bool:
        """Merge the given keys in (``fail_next`` replaces the queue). Returns whether ``seed`` was set."""
        unknown = set(raw) - self.KEYS
        if unknown:
            raise ValueError(f"unknown fault keys: {', '.join(sorted(unknown))}")
        if "latency_ms" in raw:
            self.latency_ms = float(raw["latency_ms"])
        if "down" in raw:
            self.down = _parse_down(raw["down"])
        if "fail_next" in raw:
            self.fail_next = [FaultSpec.parse(item) for item in raw["fail_next"] or []]
        if "failure_rate" in raw:
            rate = float(raw["failure_rate"])
            if not 0.0 <= rate <= 1.0:
                raise ValueError("failure_rate must be between 0 and 1")
            self.failure_rate = rate
        if "failure_kinds" in raw:
            kinds = tuple(raw["failure_kinds"])
            bad = [k for k in kinds if k not in FAILURE_KINDS]
            if bad or not kinds:
                raise ValueError(f"failure_kinds must be a non-empty subset of {FAILURE_KINDS}")
            self.failure_kinds = kinds
        if "hang_seconds" in raw:
            self.hang_seconds = float(raw["hang_seconds"])
        if "retry_after" in raw:
            self.retry_after = float(raw["retry_after"])
        if "seed" in raw:
            self.seed = int(raw["seed"])
            return True
        return False

    def copy(self) -> FaultConfig:
        return FaultConfig(
            latency_ms=self.latency_ms,
            down=self.down,
            fail_next=list(self.fail_next),
            failure_rate=self.failure_rate,
            failure_kinds=self.failure_kinds,
            seed=self.seed,
            hang_seconds=self.hang_seconds,
            retry_after=self.retry_after,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "latency_ms": self.latency_ms,
            "down": self.down or False,
            "fail_next": [spec.to_json() for spec in self.fail_next],
            "failure_rate": self.failure_rate,
            "failure_kinds": list(self.failure_kinds),
            "seed": self.seed,
            "hang_seconds": self.hang_seconds,
            "retry_after": self.retry_after,
        }


def _parse_down(raw: Any) -> DownMode | None:
    if raw in (False, None, "", "false", "no"):
        return None
    if raw in (True, "true", "unavailable", "yes"):
        return "unavailable"
    if raw == "auth":
        return "auth"
    raise ValueError(f"down must be false, true, 'unavailable' or 'auth', not {raw!r}")


class Emulator:
    """Base of every HTTP provider emulator. See the module docstring."""

    name: ClassVar[str] = "emulator"

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        latency_ms: float = 0.0,
        down: bool | str = False,
        fail_next: Iterable[Any] = (),
        failure_rate: float = 0.0,
        failure_kinds: Iterable[str] = ("5xx", "429", "hang"),
        seed: int = 0,
        hang_seconds: float = 300.0,
        record: bool = True,
    ) -> None:
        self.host = host
        self.port = port
        self.record = record
        """When False, accepted messages are only counted, not kept (benchmarks)."""
        initial = FaultConfig()
        initial.update(
            {
                "latency_ms": latency_ms,
                "down": down,
                "fail_next": list(fail_next),
                "failure_rate": failure_rate,
                "failure_kinds": list(failure_kinds),
                "seed": seed,
                "hang_seconds": hang_seconds,
            }
        )
        self._initial_faults = initial
        self.faults = initial.copy()
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self.received: list[dict[str, Any]] = []
        """Accepted messages (provider specific dicts), in arrival order."""
        self.rejected: list[dict[str, Any]] = []
        """Requests refused by the provider logic (bad auth, validation...): ``status``, ``reason``."""
        self._requests = 0
        self._accepted = 0
        self._accepted_requests = 0
        self._by_status: Counter[int] = Counter()
        self._hung = 0
        self._dropped = 0
        self._in_flight = 0
        self._max_in_flight = 0
        # webhook-id -> monotonic time before which the client was told not to come back (Retry-After)
        self._not_before: dict[str, float] = {}
        self._early = 0
        # account -> monotonic time before which that account was told not to come back (Retry-After)
        self._account_not_before: dict[str, float] = {}
        self._early_account = 0
        self.request_log: list[dict[str, Any]] = []
        """Every provider request (when ``record``): ``key`` (``request_key``), ``account``, ``outcome``
        (``accepted``, ``refused <status>``, ``fault <status>``, ``hang``, ``drop``) and ``at``."""
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_event: asyncio.Event | None = None
        self._stopping: asyncio.Event | None = None

    # ------------------------------------------------------------------ provider hooks

    def add_routes(self, app: web.Application) -> None:
        """Add the provider's routes, each wrapped with ``self.provider_route``."""
        raise NotImplementedError

    def error_response(self, status: int, retry_after: float | None) -> web.Response:
        """The provider's answer for an injected failure with this status."""
        headers = {"Retry-After": _seconds(retry_after)} if retry_after is not None else {}
        return web.json_response({"error": f"injected {status}"}, status=status, headers=headers)

    def unavailable_response(self, mode: DownMode) -> web.Response:
        """The provider's answer while ``down``: 503 (``unavailable``) or 401 (``auth``)."""
        return self.error_response(401 if mode == "auth" else 503, None)

    async def request_key(self, request: web.Request) -> str | None:
        """What a provider request is about, for the request log (the recipient, the post...)."""
        return None

    def account_of(self, request: web.Request) -> str | None:
        """The provider account a request belongs to, when a Retry-After concerns the whole account."""
        return None

    def configure(self, options: Mapping[str, Any]) -> None:
        """Change provider specific settings (``POST /_emulator/config``); subclasses extend."""
        if options:
            raise ValueError(f"unknown config keys: {', '.join(sorted(options))}")

    def config_json(self) -> dict[str, Any]:
        """Provider specific settings, as ``GET /_emulator/config`` shows them."""
        return {}

    # ------------------------------------------------------------------ recording

    def accept(self, record: dict[str, Any]) -> None:
        """Record one accepted message (call from a handler)."""
        self._accepted += 1
        if self.record:
            self.received.append(record)

    def reject(self, status: int, reason: str, **extra: Any) -> None:
        """Record a request the provider logic refused."""
        if self.record:
            self.rejected.append({"status": status, "reason": reason, **extra})

    @property
    def stats(self) -> dict[str, Any]:
        """``requests`` (provider requests seen), ``accepted`` (messages recorded), ``accepted_requests``,
        ``rejected`` (status code as string -> count of non-2xx answers), ``hung``, ``dropped``,
        ``max_in_flight`` (the most requests it was answering at one time)."""
        return {
            "requests": self._requests,
            "accepted": self._accepted,
            "accepted_requests": self._accepted_requests,
            "rejected": {str(k): v for k, v in sorted(self._by_status.items())},
            "hung": self._hung,
            "dropped": self._dropped,
            "early_retries": self._early,
            "max_in_flight": self._max_in_flight,
            "early_account_requests": self._early_account,
        }

    def reset(self) -> None:
        """Forget everything received and counted; faults go back to the constructor's."""
        with self._lock:
            self.received.clear()
            self.rejected.clear()
            self._requests = self._accepted = self._accepted_requests = 0
            self._hung = self._dropped = self._early = self._max_in_flight = self._early_account = 0
            self._not_before.clear()
            self._account_not_before.clear()
            self.request_log.clear()
            self._by_status.clear()
            self.faults = self._initial_faults.copy()
            self._rng = random.Random(self.faults.seed)

    def set_faults(self, **config: Any) -> None:
        """Merge fault settings (same keys as the JSON shape of ``FaultConfig``)."""
        with self._lock:
            if self.faults.update(config):
                self._rng = random.Random(self.faults.seed)

    # ------------------------------------------------------------------ request pipeline

    def provider_route(self, handler: Handler) -> Handler:
        """Wrap a provider handler with statistics and fault injection."""

        async def wrapped(request: web.Request) -> web.StreamResponse:
            self._in_flight += 1
            self._max_in_flight = max(self._max_in_flight, self._in_flight)
            try:
                return await handle(request)
            finally:
                self._in_flight -= 1

        async def handle(request: web.Request) -> web.StreamResponse:
            self._requests += 1
            logged = await self._log(request)
            message_id = request.headers.get("webhook-id")
            now = time.monotonic()
            if message_id and now < self._not_before.get(message_id, 0.0) - EARLY_TOLERANCE:
                self._early += 1  # came back before the Retry-After it was given
            account = self.account_of(request)
            if account and now < self._account_not_before.get(account, 0.0) - EARLY_TOLERANCE:
                self._early_account += 1  # the account was told to wait, and this request did not
            faults = self.faults
            if faults.latency_ms:
                await asyncio.sleep(faults.latency_ms / 1000.0)
            spec: FaultSpec | None = None
            if faults.down:
                response: web.StreamResponse = self.unavailable_response(faults.down)
            else:
                spec = self._next_fault() if (faults.fail_next or faults.failure_rate) else None
                if spec is None or spec.action in ("drop", "pass"):
                    accepted_before = self._accepted
                    response = await handler(request)
                    if 200 <= response.status < 300 and self._accepted > accepted_before:
                        self._accepted_requests += 1
                elif spec.action == "hang":
                    self._hung += 1
                    logged["outcome"] = "hang"
                    await self._hang(faults.hang_seconds)
                    response = web.Response(status=504)
                else:
                    response = self.error_response(spec.status, spec.retry_after)
            told = response.headers.get("Retry-After")
            if told and told.isdigit():
                if message_id:
                    self._not_before[message_id] = time.monotonic() + int(told)
                if account:
                    until = time.monotonic() + int(told)
                    self._account_not_before[account] = max(until, self._account_not_before.get(account, 0))
            if spec is not None and spec.action == "drop":
                self._dropped += 1
                logged["outcome"] = "drop"
                if request.transport is not None:
                    request.transport.abort()
                return response
            if response.status >= 300:
                self._by_status[response.status] += 1
            if "outcome" not in logged:
                kind = "fault" if spec is not None and spec.action == "status" else "refused"
                logged["outcome"] = "accepted" if response.status < 300 else f"{kind} {response.status}"
            return response

        return wrapped

    async def _log(self, request: web.Request) -> dict[str, Any]:
        """The request's entry in the request log (a scratch dict when not recording)."""
        entry: dict[str, Any] = {"at": time.monotonic(), "account": self.account_of(request)}
        if self.record:
            entry["key"] = await self.request_key(request)
            self.request_log.append(entry)
        return entry

    def _next_fault(self) -> FaultSpec | None:
        with self._lock:
            faults = self.faults
            if faults.fail_next:
                return faults.fail_next.pop(0)
            if faults.failure_rate and self._rng.random() < faults.failure_rate:
                kind = self._rng.choice(faults.failure_kinds)
                if kind == "5xx":
                    return FaultSpec(status=self._rng.choice((500, 502, 503)))
                if kind == "429":
                    return FaultSpec(status=429, retry_after=faults.retry_after)
                return FaultSpec(action=kind)  # type: ignore[arg-type]
        return None

    async def _hang(self, seconds: float) -> None:
        assert self._stopping is not None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    # ------------------------------------------------------------------ control API

    def make_app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_get("/_emulator/received", self._ctl_received)
        app.router.add_get("/_emulator/rejected", self._ctl_rejected)
        app.router.add_get("/_emulator/requests", self._ctl_requests)
        app.router.add_get("/_emulator/stats", self._ctl_stats)
        app.router.add_post("/_emulator/reset", self._ctl_reset)
        app.router.add_get("/_emulator/faults", self._ctl_get_faults)
        app.router.add_post("/_emulator/faults", self._ctl_faults)
        app.router.add_get("/_emulator/config", self._ctl_get_config)
        app.router.add_post("/_emulator/config", self._ctl_config)
        self.add_routes(app)
        return app

    async def _ctl_received(self, request: web.Request) -> web.Response:
        return web.json_response(list(self.received))

    async def _ctl_rejected(self, request: web.Request) -> web.Response:
        return web.json_response(list(self.rejected))

    async def _ctl_requests(self, request: web.Request) -> web.Response:
        return web.json_response(list(self.request_log))

    async def _ctl_stats(self, request: web.Request) -> web.Response:
        return web.json_response(self.stats)

    async def _ctl_reset(self, request: web.Request) -> web.Response:
        self.reset()
        return web.json_response({"ok": True})

    async def _ctl_get_faults(self, request: web.Request) -> web.Response:
        return web.json_response(self.faults.to_json())

    async def _ctl_faults(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
            if not isinstance(body, dict):
                raise ValueError("fault config must be a JSON object")
            self.set_faults(**body)
        except ValueError as exc:
            return web.json_response({"error": str(exc)}, status=400)
        return web.json_response(self.faults.to_json())

    async def _ctl_get_config(self, request: web.Request) -> web.Response:
        return web.json_response(self.config_json())

    async def _ctl_config(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
            if not isinstance(body, dict):
                raise ValueError("config must be a JSON object")
            self.configure(body)
        except ValueError as exc:
            return web.json_response({"error": str(exc)}, status=400)
        return web.json_response(self.config_json())

    # ------------------------------------------------------------------ lifecycle

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT`` once started."""
        return f"http://{self.host}:{self.port}"

    async def _serve(self, on_ready: Callable[[], None]) -> None:
        self._stop_event = asyncio.Event()
        self._stopping = asyncio.Event()
        runner = web.AppRunner(self.make_app(), access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port, backlog=1024, reuse_address=True)
        await site.start()
        server = site._server
        if self.port == 0 and server is not None:
            sockets = getattr(server, "sockets", None) or []
            self.port = int(sockets[0].getsockname()[1])
        on_ready()
        try:
            await self._stop_event.wait()
        finally:
            self._stopping.set()
            await runner.cleanup()

    def start(self) -> Self:
        """Run the server on its own event loop in a daemon thread; returns once it is listening."""
        if self._thread is not None:
            raise RuntimeError("emulator already started")
        ready = threading.Event()
        errors: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                loop.run_until_complete(self._serve(ready.set))
            except BaseException as exc:
                errors.append(exc)
                ready.set()
            finally:
                loop.close()

        self._thread = threading.Thread(target=run, name=f"{self.name}-emulator", daemon=True)
        self._thread.start()
        ready.wait(10)
        if errors:
            raise RuntimeError(f"{self.name} emulator failed to start") from errors[0]
        return self

    def stop(self) -> None:
        """Stop the server (hanging requests are released) and join its thread."""
        if self._thread is None:
            return
        loop, stop_event = self._loop, self._stop_event
        if loop is not None and stop_event is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(stop_event.set)
        self._thread.join(10)
        self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def serve_forever(self, on_ready: Callable[[str], None] | None = None) -> None:
        """Run in the current thread until SIGINT/SIGTERM (subprocess mode)."""
        import signal

        async def main() -> None:
            loop = asyncio.get_running_loop()

            def ready() -> None:
                assert self._stop_event is not None
                for sig in (signal.SIGINT, signal.SIGTERM):
                    loop.add_signal_handler(sig, self._stop_event.set)
                if on_ready is not None:
                    on_ready(self.base_url)

            await self._serve(ready)

        asyncio.run(main())


def _seconds(value: float) -> str:
    """Retry-After is whole seconds on the wire."""
    return str(max(0, round(value)))


def seconds_header(value: float) -> str:
    return _seconds(value)
