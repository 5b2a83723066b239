"""``tocsin worker`` on Redis: a Celery worker (and optionally the beat tick) for the chosen queues."""

from __future__ import annotations

from workers.app import ALL_QUEUES, app


def run_worker(queues: list[str] | None, concurrency: int | None, beat: bool, loglevel: str) -> None:
    argv = ["worker", f"--loglevel={loglevel}", "-Q", ",".join(queues or ALL_QUEUES)]
    if concurrency:
        argv.append(f"--concurrency={concurrency}")
    if beat:
        argv.append("--beat")
    app.worker_main(argv)
