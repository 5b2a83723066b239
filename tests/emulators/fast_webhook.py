"""A lean webhook receiver for benchmarks: HTTP/1.1 on asyncio with the llhttp parser (httptools).

The benchmark machine has two cores, and whatever the receiver spends there is taken from the worker it
measures (customers' endpoints do not run on the Tocsin machine). aiohttp's web framework spent about
0.16 ms of CPU per request, more than the worker sending it; this receiver spends about 0.03 ms.

It accepts every POST with 204 and counts ``webhook-id`` headers: ``accepted``, ``unique_ids`` and
``duplicates`` (accepted deliveries whose id was accepted before), so a benchmark still checks from the
receiver's own records that everything arrived exactly once. No signature checks, no faults, nothing
recorded: use ``WebhookReceiver`` for those. Control endpoints as the other emulators:
``GET /_emulator/stats`` and ``POST /_emulator/reset``.

    python -m tests.emulators.fast_webhook --port 0     # prints its base URL, then serves
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys

import httptools

_NO_CONTENT = b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n"
_NOT_FOUND = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"
_BAD_REQUEST = b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"


class Counts:
    def __init__(self) -> None:
        self.seen: set[bytes] = set()
        self.accepted = 0
        self.duplicates = 0
        self.requests = 0

    def stats(self) -> dict[str, int]:
        return {
            "requests": self.requests,
            "accepted": self.accepted,
            "unique_ids": len(self.seen),
            "duplicates": self.duplicates,
        }

    def reset(self) -> None:
        self.__init__()  # type: ignore[misc]


def _json(status: str, body: object) -> bytes:
    data = json.dumps(body).encode()
    head = f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
    return head.encode() + data


class _Connection(asyncio.Protocol):
    """One keep-alive connection; httptools calls back per header and per complete request."""

    def __init__(self, counts: Counts) -> None:
        self.counts = counts
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.url = b""
        self.webhook_id: bytes | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            assert self.transport is not None
            self.transport.write(
                b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
            )
            self.transport.close()

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        if len(name) == 10 and name.lower() == b"webhook-id":
            self.webhook_id = value

    def on_message_complete(self) -> None:
        assert self.transport is not None
        url, webhook_id = self.url, self.webhook_id
        self.url, self.webhook_id = b"", None
        counts = self.counts
        if url.startswith(b"/_emulator/"):
            self.transport.write(self._control(url, self.parser.get_method()))
            return
        counts.requests += 1
        if self.parser.get_method() != b"POST":
            self.transport.write(_NOT_FOUND)
            return
        counts.accepted += 1
        if webhook_id is not None:
            if webhook_id in counts.seen:
                counts.duplicates += 1
            else:
                counts.seen.add(webhook_id)
        self.transport.write(_NO_CONTENT)

    def _control(self, url: bytes, method: bytes) -> bytes:
        if url == b"/_emulator/stats":
            return _json("200 OK", self.counts.stats())
        if url == b"/_emulator/reset" and method == b"POST":
            self.counts.reset()
            return _json("200 OK", {"reset": True})
        return _NOT_FOUND


async def serve(host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    counts = Counts()
    server = await loop.create_server(lambda: _Connection(counts), host, port, backlog=1024)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    bound = server.sockets[0].getsockname()[1]
    sys.stdout.write(f"http://{host}:{bound}\n")
    sys.stdout.flush()
    async with server:
        await stop.wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.emulators.fast_webhook", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    asyncio.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
