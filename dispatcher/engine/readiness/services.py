"""The services every channel needs: the database and, with ``REDIS_URL``, the broker."""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError

BROKER_TIMEOUT_SECONDS = 2.0


@dataclass(frozen=True)
class ServiceCheck:
    name: str
    """``database`` or ``broker``."""
    problem: str | None
    """Why it is down (first line of the error), or None when it answered."""
    elapsed: float

    @property
    def ok(self) -> bool:
        return self.problem is None


def first_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None)
    lines = str(orig if orig is not None else exc).strip().splitlines()
    return (lines[0] if lines else type(exc).__name__)[:300]


def check_database(engine: Engine) -> ServiceCheck:
    started = time.monotonic()
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except (SQLAlchemyError, OSError) as exc:
        return ServiceCheck("database", first_line(exc), time.monotonic() - started)
    return ServiceCheck("database", None, time.monotonic() - started)


def check_broker(url: str, timeout: float = BROKER_TIMEOUT_SECONDS) -> ServiceCheck:
    import redis

    started = time.monotonic()
    client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
    try:
        client.ping()
    except (redis.RedisError, OSError) as exc:
        return ServiceCheck("broker", first_line(exc), time.monotonic() - started)
    finally:
        client.close()
    return ServiceCheck("broker", None, time.monotonic() - started)
