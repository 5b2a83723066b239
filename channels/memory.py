"""The in-memory provider: records what it was asked to send and answers as it is told.

The test seam of the adapter contract, after Django's locmem mail backend and httpx's
``MockTransport``: engine tests (ordering, failover, retries, supersede) hand the runtime these objects
instead of talking to a provider emulator, because what is under test is the engine's decision, not a
wire format. The provider emulators stay for the adapter tests: they prove the real SDKs work.

By default every recipient is sent. Tell it otherwise:

* ``fail_calls(error, times=n)`` — the next ``n`` calls raise ``error`` (any of the three typed errors,
  or ``times=None`` for every call from now on);
* ``answer(handler)`` — ``handler(message, recipient)`` returns a ``Result`` for that recipient, or
  ``None`` to let it be sent;
* ``answer_probes(readiness)`` — what its readiness probe says (ready by default);
  ``answer_next_probe(readiness)`` what the next probe alone says.

It is also the built-in provider ``memory`` (no options), for trying a configuration without sending.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from channels.base import (
    Adapter,
    Capabilities,
    ChannelError,
    ChannelKind,
    Message,
    Outcome,
    Recipient,
    Result,
)
from channels.readiness import Readiness

Handler = Callable[[Message, Recipient], Result | None]


@dataclass(frozen=True)
class Call:
    """One ``send`` the adapter was asked to make, whatever it answered."""

    message: Message
    recipients: tuple[Recipient, ...]
    raised: ChannelError | None = None
    results: tuple[Result, ...] = ()


class MemoryAdapter:
    """Thread-safe: the engine calls ``send`` from several delivery threads at once."""

    name: ClassVar[str] = "memory"
    capabilities: ClassVar[Capabilities] = Capabilities(kinds=frozenset(ChannelKind), max_batch=1000)

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self._errors: list[tuple[ChannelError, int | None]] = []
        self._handler: Handler | None = None
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self.closed = False
        self._readiness = Readiness.ok("the in-memory provider is always there")
        self._next_probe: Readiness | None = None
        self.probes = 0
        """How many times ``probe()`` was called."""

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> Adapter:
        if options:
            raise ValueError(f"the memory provider takes no options (got {', '.join(sorted(options))})")
        return cls()

    @classmethod
    def limited(cls, max_batch: int) -> MemoryAdapter:
        """An in-memory provider that takes at most ``max_batch`` recipients per call (like SMTP's 1)."""
        narrow = type(
            "NarrowMemoryAdapter",
            (cls,),
            {"capabilities": Capabilities(kinds=frozenset(ChannelKind), max_batch=max_batch)},
        )
        adapter: MemoryAdapter = narrow()
        return adapter

    # --- telling it what to answer -------------------------------------------------------------

    def fail_calls(self, error: ChannelError, times: int | None = 1) -> None:
        """The next ``times`` calls raise ``error`` (``None``: every call until ``recover``)."""
        with self._lock:
            self._errors.append((error, times))

    def answer(self, handler: Handler | None) -> None:
        """Answer each recipient with ``handler(message, recipient)`` (``None`` from it: sent)."""
        with self._lock:
            self._handler = handler

    def recover(self) -> None:
        """Forget every scripted error and answer: everything is sent again."""
        with self._lock:
            self._errors.clear()
            self._handler = None

    def answer_probes(self, readiness: Readiness) -> None:
        """What ``probe()`` answers from now on (ready by default): a provider going down, or back."""
        with self._lock:
            self._readiness = readiness

    def answer_next_probe(self, readiness: Readiness) -> None:
        """What the next ``probe()`` alone answers (a blip), before the standing answer again."""
        with self._lock:
            self._next_probe = readiness

    def probe(self) -> Readiness:
        with self._lock:
            self.probes += 1
            blip, self._next_probe = self._next_probe, None
            return blip or self._readiness

    # --- what it saw ---------------------------------------------------------------------------

    @property
    def delivered(self) -> list[tuple[int, str]]:
        """(update id, address) of every recipient answered ``sent``, in the order they were sent."""
        with self._lock:
            calls = list(self.calls)
        return [
            (call.message.update_id, recipient.address)
            for call in calls
            for recipient, result in zip(call.recipients, call.results, strict=False)
            if result.outcome is Outcome.SENT
        ]

    def addresses(self, update_id: int | None = None) -> list[str]:
        return [address for upd, address in self.delivered if update_id is None or upd == update_id]

    # --- the contract --------------------------------------------------------------------------

    def send(self, message: Message, recipients: Sequence[Recipient]) -> list[Result]:
        with self._lock:
            error = self._next_error()
            handler = self._handler
        if error is not None:
            self._record(Call(message, tuple(recipients), raised=error))
            raise error
        results = [self._result(handler, message, r) for r in recipients]
        self._record(Call(message, tuple(recipients), results=tuple(results)))
        return results

    def close(self) -> None:
        self.closed = True

    def _next_error(self) -> ChannelError | None:
        if not self._errors:
            return None
        error, times = self._errors[0]
        if times is not None:
            if times <= 1:
                self._errors.pop(0)
            else:
                self._errors[0] = (error, times - 1)
        return error

    def _result(self, handler: Handler | None, message: Message, recipient: Recipient) -> Result:
        scripted = handler(message, recipient) if handler is not None else None
        if scripted is not None:
            return scripted
        return Result.sent(recipient.delivery_id, f"memory-{next(self._ids)}")

    def _record(self, call: Call) -> None:
        with self._lock:
            self.calls.append(call)
