"""The machine's own ceiling for webhook delivery: plain aiohttp POSTs, nothing else.

Same receiver emulator and concurrency as the webhooks scenario of ``bench/fanout.py``, but no Tocsin:
no signing, no ledger, no broker. Tocsin's webhook figure is best read against this number.

    .venv/bin/python -m bench.http_ceiling [--requests 20000] [--concurrency 64]
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent


async def post_all(url: str, requests: int, concurrency: int) -> tuple[float, float]:
    limit = asyncio.Semaphore(concurrency)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:

        async def one(i: int) -> None:
            async with limit, session.post(f"{url}/hooks/{i}", data=b'{"type":"incident.update"}') as answer:
                await answer.read()

        await asyncio.gather(*(one(i) for i in range(min(requests, 1000))))  # warm-up
        wall, cpu = time.perf_counter(), time.process_time()
        await asyncio.gather(*(one(i) for i in range(requests)))
        return time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args()
    receiver = subprocess.Popen(
        [sys.executable, "-m", "tests.emulators.run", "webhook", "--port", "0", "--no-verify", "--no-record"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert receiver.stdout is not None
        url = receiver.stdout.readline().strip()
        wall, cpu = asyncio.run(post_all(url, args.requests, args.concurrency))
    finally:
        receiver.terminate()
        receiver.wait(10)
    rate = args.requests / wall
    print(
        f"FIGURE http-ceiling {args.requests} POSTs conc={args.concurrency}  {rate:,.0f} POSTs/s"
        f"   [client CPU {1000 * cpu / args.requests:.3f} ms per request; plain aiohttp, same receiver]"
    )


if __name__ == "__main__":
    main()
