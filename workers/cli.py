"""``tocsin worker`` on Redis: a Celery worker (and optionally the beat tick) for the chosen queues."""

from __future__ import annotations

from workers.app import ALL_QUEUES, app


def run_worker(queues: list[str] | None, concurrency: int | None, beat: bool, loglevel: str) -> None:
    # Without mingle, gossip and heartbeat: Tocsin's workers share nothing but the database and Redis, so
    # worker-to-worker chatter buys nothing and is one less thing to re-establish after a broker restart.
    # (What actually stopped workers after a Redis restart is handled in workers/redis_transport.py.)
    argv = [
        "worker",
        f"--loglevel={loglevel}",
        "-Q",
        ",".join(queues or ALL_QUEUES),
        "--without-mingle",
        "--without-gossip",
        "--without-heartbeat",
    ]
    if concurrency:
        argv.append(f"--concurrency={concurrency}")
    if beat:
        argv.append("--beat")
    app.worker_main(argv)
