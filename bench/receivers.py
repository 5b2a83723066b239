"""The webhook receivers every side-by-side contestant posts to, noting when deliveries arrive.

Two receivers, both counting every ``webhook-id`` (so "all arrived, none twice" is checked from the
receiver's own records) and stamping the wall-clock time (``time.time()``, comparable across the
processes of one machine) of the first and the last accepted delivery since the last reset:

- ``aiohttp``: the aiohttp webhook emulator (``tests/emulators/webhook.py``, no signature checks, nothing
  recorded), the kind of server customers run: the default;
- ``lean``: the httptools receiver (``tests/emulators/fast_webhook.py``), which spends a fraction of the
  CPU per request, so on two cores more of them is left to the sender.

    python -m bench.receivers aiohttp --port 0     # prints its base URL, then serves
    python -m bench.receivers lean --port 0

``GET /_emulator/stats`` answers ``accepted``, ``unique_ids``, ``duplicates``, ``first_at`` and
``last_at`` (``None`` before the first delivery); ``POST /_emulator/reset`` starts afresh.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import time
from typing import Any

from tests.emulators import fast_webhook
from tests.emulators.client import EmulatorProcess
from tests.emulators.webhook import WebhookReceiver

RECEIVERS = ("aiohttp", "lean")


class TimedWebhookReceiver(WebhookReceiver):
    """The aiohttp webhook emulator, stamping its first and last accepted delivery."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.first_at: float | None = None
        self.last_at: float | None = None

    def accept(self, record: dict[str, Any]) -> None:
        now = time.time()
        if self.first_at is None:
            self.first_at = now
        self.last_at = now
        super().accept(record)

    @property
    def stats(self) -> dict[str, Any]:
        return {**super().stats, "first_at": self.first_at, "last_at": self.last_at}

    def reset(self) -> None:
        super().reset()
        self.first_at = self.last_at = None


class _TimedCounts(fast_webhook.Counts):
    def __init__(self) -> None:
        super().__init__()
        self.first_at: float | None = None
        self.last_at: float | None = None

    def stats(self) -> dict[str, Any]:
        return {**super().stats(), "first_at": self.first_at, "last_at": self.last_at}


class _TimedConnection(fast_webhook._Connection):
    counts: _TimedCounts

    def on_message_complete(self) -> None:
        before = self.counts.accepted
        super().on_message_complete()
        if self.counts.accepted > before:  # a delivery (a reset sets it back to 0)
            now = time.time()
            if self.counts.first_at is None:
                self.counts.first_at = now
            self.counts.last_at = now


async def serve_lean(host: str, port: int) -> None:
    """``fast_webhook.serve`` with the arrival stamps."""
    loop = asyncio.get_running_loop()
    counts = _TimedCounts()
    server = await loop.create_server(lambda: _TimedConnection(counts), host, port, backlog=1024)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    sys.stdout.write(f"http://{host}:{server.sockets[0].getsockname()[1]}\n")
    sys.stdout.flush()
    async with server:
        await stop.wait()


class ReceiverProcess(EmulatorProcess):
    """``python -m bench.receivers KIND`` as a child process: ``base_url``, ``client``, ``process``."""

    def __init__(self, kind: str) -> None:
        if kind not in RECEIVERS:
            raise ValueError(f"receiver {kind!r}: choose one of {', '.join(RECEIVERS)}")
        super().__init__(kind)
        self.kind = kind
        self.command = [sys.executable, "-m", "bench.receivers", kind, "--port", "0"]

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def wait_accepted(self, count: int, timeout: float) -> dict[str, Any]:
        """Stats once ``count`` deliveries were accepted (or ``timeout`` seconds passed)."""
        deadline = time.monotonic() + timeout
        while True:
            stats = self.client.stats()
            if stats["accepted"] >= count or time.monotonic() > deadline:
                return stats
            time.sleep(0.02)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.receivers", description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=RECEIVERS)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    if args.kind == "lean":
        asyncio.run(serve_lean(args.host, args.port))
        return
    receiver = TimedWebhookReceiver(host=args.host, port=args.port, verify=False, record=False)

    def ready(url: str) -> None:
        sys.stdout.write(url + "\n")
        sys.stdout.flush()

    receiver.serve_forever(ready)


if __name__ == "__main__":
    main()
