"""The naive Celery baseline: one task per recipient, each POSTing one webhook with a pooled client.

What a team writes when it reaches for Celery without Tocsin: a ``post`` task per recipient on Redis, a
prefork worker (``-c 2``), and one ``httpx.Client`` per worker process so connections are reused. No
ledger, no signing, no retries: the ceiling of that design, not a strawman.

    BENCH_REDIS_URL=redis://… celery -A bench.naive_celery worker -c 2 -P prefork -Q naive
    BENCH_REDIS_URL=redis://… python -m bench.naive_celery URL --requests 20000   # enqueue, prints JSON

The enqueueing command prints ``{"seconds": …}``, the time it took to queue every task.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time

import httpx
from celery import Celery

from bench.yardsticks import BODY

QUEUE = "naive"

app = Celery("naive", broker=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"))
app.conf.update(
    task_ignore_result=True,
    task_default_queue=QUEUE,
    worker_hijack_root_logger=False,
    broker_connection_retry_on_startup=True,
)

# Its best case: no log line per task or per request (Celery logs both at INFO, httpx each request).
for _chatty in ("celery.app.trace", "celery.worker.strategy", "httpx"):
    logging.getLogger(_chatty).setLevel(logging.WARNING)

_client: httpx.Client | None = None


def client() -> httpx.Client:
    """One pooled client per worker process (created after the fork)."""
    global _client
    if _client is None:
        _client = httpx.Client(timeout=10.0, limits=httpx.Limits(max_keepalive_connections=8))
    return _client


@app.task(name="naive.post")  # type: ignore[untyped-decorator]
def post(url: str, webhook_id: str) -> int:
    answer = client().post(
        url, content=BODY, headers={"content-type": "application/json", "webhook-id": webhook_id}
    )
    return answer.status_code


def enqueue(url: str, requests: int) -> float:
    started = time.perf_counter()
    with app.producer_pool.acquire(block=True) as producer:
        for i in range(requests):
            post.apply_async((f"{url}/naive/{i}", f"naive-{i}"), producer=producer)
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.naive_celery", description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("--requests", type=int, default=20_000)
    args = parser.parse_args(argv)
    sys.stdout.write(json.dumps({"seconds": enqueue(args.url, args.requests)}) + "\n")


if __name__ == "__main__":
    main()
