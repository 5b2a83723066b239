"""``tocsin worker`` on Redis: a Celery worker (and optionally the beat tick) for the chosen queues."""

from __future__ import annotations

from workers.app import ALL_QUEUES, app


def run_worker(queues: list[str] | None, concurrency: int | None, beat: bool, loglevel: str) -> None:
    # Without mingle, gossip and heartbeat: Tocsin's workers share nothing but the database and Redis,
    # and those worker-to-worker chats are where Celery 5 workers can stop consuming after the broker
    # reconnects (celery/celery#8030, #8091), which a Redis restart otherwise risks.
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
