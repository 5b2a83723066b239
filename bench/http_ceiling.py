"""The machine's own ceiling for webhook delivery: plain POSTs, nothing else.

No Tocsin here: no signing, no ledger, no broker. Two HTTP clients (libcurl's multi interface, which
the webhook adapter uses, and aiohttp) against two receivers (the lean httptools one the fan-out
benchmark uses, and the aiohttp emulator), one line each with the client's and the receiver's CPU per
request. Tocsin's webhook figure is best read against these numbers.

    .venv/bin/python -m bench.http_ceiling [--requests 20000] [--concurrency 64]
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import time
from collections.abc import Callable

import aiohttp
import psutil

from channels._http.curl_multi import CurlPool, Request
from tests.emulators.client import EmulatorProcess

BODY = b'{"type":"incident.update","data":{"status":"investigating"}}'
RECEIVERS = {"fast": ("webhook-fast",), "emulator": ("webhook", "--no-verify", "--no-record")}


async def aiohttp_posts(url: str, requests: int, concurrency: int) -> None:
    limit = asyncio.Semaphore(concurrency)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:

        async def one(i: int) -> None:
            headers = {"webhook-id": f"tocsin-{i}"}
            async with limit, session.post(f"{url}/hooks/{i}", data=BODY, headers=headers) as answer:
                await answer.read()

        await asyncio.gather(*(one(i) for i in range(requests)))


def curl_posts(url: str, requests: int, concurrency: int) -> None:
    pool = CurlPool(concurrency, timeout=10.0, user_agent="tocsin-bench")
    port = int(url.rsplit(":", 1)[1])
    local = ipaddress.ip_address("127.0.0.1")
    try:
        answers = pool.run(
            [
                Request(f"{url}/hooks/{i}", local, port, BODY, lambda i=i: [f"webhook-id: tocsin-{i}"])
                for i in range(requests)
            ]
        )
    finally:
        pool.close()
    assert all(200 <= a.status < 300 for a in answers), "every POST accepted"


CLIENTS: dict[str, Callable[[str, int, int], None]] = {
    "libcurl": curl_posts,
    "aiohttp": lambda url, n, c: asyncio.run(aiohttp_posts(url, n, c)),
}


def measure(client: str, receiver: str, requests: int, concurrency: int) -> None:
    with EmulatorProcess(*RECEIVERS[receiver]) as server:
        assert server.process is not None
        served = psutil.Process(server.process.pid)
        post = CLIENTS[client]
        post(server.base_url, min(requests, 1000), concurrency)  # warm-up
        server_cpu = sum(served.cpu_times()[:2])
        wall, cpu = time.perf_counter(), time.process_time()
        post(server.base_url, requests, concurrency)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        server_cpu = sum(served.cpu_times()[:2]) - server_cpu
    print(
        f"FIGURE http-ceiling {client:<8} -> {receiver:<8} {requests / wall:>9,.0f} POSTs/s"
        f"   [client CPU {1000 * cpu / requests:.3f} ms, receiver CPU {1000 * server_cpu / requests:.3f} ms"
        f" per request; {requests} POSTs, {concurrency} in flight]",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args()
    for receiver in RECEIVERS:
        for client in CLIENTS:
            measure(client, receiver, args.requests, args.concurrency)


if __name__ == "__main__":
    main()
