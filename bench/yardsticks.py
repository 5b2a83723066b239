"""The alternatives Tocsin is measured against, each as it would be written by someone without Tocsin.

Each runs as its own process (so its CPU is its own) and prints one JSON line: ``seconds`` (wall time of
the sending, start-up and imports excluded), ``cpu`` (its CPU seconds over the same span, every thread)
and ``count`` (requests answered 2xx, or recipients accepted).

    python -m bench.yardsticks aiohttp URL --requests 20000 [--concurrency 64] [--uvloop]
    python -m bench.yardsticks apprise URL --requests 2000
    python -m bench.yardsticks sendgrid-sdk URL --recipients 100000 [--batch 1000]

- ``aiohttp``: a bare client loop, nothing but the POSTs: ``concurrency`` coroutines on one pooled
  session, each posting a small JSON body with a unique ``webhook-id`` to its own path; ``--uvloop``
  runs the same on uvloop's event loop.
- ``apprise``: Apprise's fan-out: one ``json://`` URL per recipient added to one ``Apprise`` object, one
  ``notify()`` (Apprise posts in its own thread pool).
- ``sendgrid-sdk``: the official SDK alone at its batch ceiling: one v3 Mail Send request per 1,000
  recipients (one personalization each, with the ``custom_args`` Tocsin puts there), one after another.

The one-task-per-recipient Celery baseline is ``bench/naive_celery.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Callable
from typing import Any

BODY = b'{"type":"incident.update","data":{"incident":"Checkout failing","status":"investigating"}}'


def timed(work: Callable[[], int]) -> dict[str, float]:
    """Run ``work`` (which returns how many went through) and measure it."""
    wall, cpu = time.perf_counter(), time.process_time()
    count = work()
    return {"seconds": time.perf_counter() - wall, "cpu": time.process_time() - cpu, "count": count}


# ---------------------------------------------------------------------------------------- aiohttp


async def aiohttp_loop(url: str, requests: int, concurrency: int) -> int:
    import aiohttp

    connector = aiohttp.TCPConnector(limit=concurrency)
    ok = 0
    async with aiohttp.ClientSession(connector=connector) as session:
        numbers = iter(range(requests))

        async def poster() -> None:
            nonlocal ok
            for i in numbers:
                headers = {"content-type": "application/json", "webhook-id": f"bare-{i}"}
                async with session.post(f"{url}/bare/{i}", data=BODY, headers=headers) as answer:
                    await answer.read()
                    ok += 200 <= answer.status < 300

        await asyncio.gather(*(poster() for _ in range(concurrency)))
    return ok


def run_aiohttp(url: str, requests: int, concurrency: int, use_uvloop: bool) -> dict[str, float]:
    def work() -> int:
        if use_uvloop:
            import uvloop

            return uvloop.run(aiohttp_loop(url, requests, concurrency))
        return asyncio.run(aiohttp_loop(url, requests, concurrency))

    import aiohttp  # noqa: F401  # imported before the clock starts

    if use_uvloop:
        import uvloop  # noqa: F401
    return timed(work)


# ---------------------------------------------------------------------------------------- apprise


def run_apprise(url: str, requests: int) -> dict[str, float]:
    import apprise

    host = url.removeprefix("http://")
    notifier = apprise.Apprise()
    added = time.perf_counter()
    for i in range(requests):
        # "+name=value" is Apprise's way to add a header: a webhook-id, so the receiver counts duplicates
        notifier.add(f"json://{host}/apprise/{i}?+webhook-id=apprise-{i}")
    added = time.perf_counter() - added

    def work() -> int:
        ok = notifier.notify(title="Checkout failing", body="We are investigating failed checkouts.")
        return requests if ok else 0

    return {**timed(work), "add_seconds": added}


# ---------------------------------------------------------------------------------------- sendgrid


def sendgrid_body(start: int, count: int) -> dict[str, Any]:
    return {
        "personalizations": [
            {
                "to": [{"email": f"person{i}@example.com"}],
                "custom_args": {"tocsin_delivery_id": str(i + 1), "tocsin_message_id": f"tocsin-{i + 1}"},
            }
            for i in range(start, start + count)
        ],
        "from": {"email": "status@example.com"},
        "subject": "[Investigating] Checkout failing",
        "content": [
            {"type": "text/plain", "value": "We are investigating failed checkouts. Next update by 14:30."}
        ],
    }


def run_sendgrid(url: str, recipients: int, batch: int) -> dict[str, float]:
    from sendgrid import SendGridAPIClient

    client = SendGridAPIClient("SG.test-key", host=url)

    def work() -> int:
        accepted = 0
        for start in range(0, recipients, batch):
            count = min(batch, recipients - start)
            answer = client.send(sendgrid_body(start, count))
            accepted += count if answer.status_code == 202 else 0
        return accepted

    return timed(work)


# ---------------------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.yardsticks", description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=["aiohttp", "apprise", "sendgrid-sdk"])
    parser.add_argument("url")
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--uvloop", action="store_true")
    parser.add_argument("--recipients", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=1000)
    args = parser.parse_args(argv)
    if args.kind == "aiohttp":
        result = run_aiohttp(args.url, args.requests, args.concurrency, args.uvloop)
    elif args.kind == "apprise":
        result = run_apprise(args.url, args.requests)
    else:
        result = run_sendgrid(args.url, args.recipients, args.batch)
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
