"""Real Redis and PostgreSQL for the integration tests.

Given by ``TOCSIN_TEST_REDIS_URL`` / ``TOCSIN_TEST_DATABASE_URL`` (``.ci/run`` sets both). Without them, a
private server is started when its binaries are installed (``redis-server``; PostgreSQL's ``initdb``).
When neither works the tests FAIL under CI (``CI`` set) and are skipped with the reason elsewhere.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

IN_CI = bool(os.environ.get("CI"))


def unavailable(what: str) -> None:
    message = f"{what} is not available"
    if IN_CI:
        pytest.fail(f"{message} (CI must provide it: see .ci/run)", pytrace=False)
    pytest.skip(message)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def redis_reachable(url: str) -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=2).ping())
    except redis.RedisError:
        return False


@contextmanager
def private_redis() -> Iterator[str | None]:
    binary = shutil.which("redis-server")
    if binary is None:
        yield None
        return
    port = free_port()
    with tempfile.TemporaryDirectory() as state:
        proc = subprocess.Popen(
            [
                binary,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                state,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        url = f"redis://127.0.0.1:{port}/0"
        try:
            for _ in range(100):
                if redis_reachable(url):
                    break
                time.sleep(0.05)
            yield url
        finally:
            proc.terminate()
            proc.wait(10)


def _pg_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))
    return str(candidates[-1]) if candidates else None


@contextmanager
def private_postgres() -> Iterator[str | None]:
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    if initdb is None or pg_ctl is None:
        yield None
        return
    as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    state = Path(tempfile.mkdtemp(prefix="tocsin-pg-"))
    state.chmod(0o755)
    data = state / "data"
    data.mkdir()
    if as_postgres:
        shutil.chown(data, "postgres")
    port = free_port()
    subprocess.run(
        [*as_postgres, initdb, "-D", str(data), "-A", "trust", "-U", "postgres"],
        check=True,
        capture_output=True,
    )
    subprocess.run(
        [
            *as_postgres,
            pg_ctl,
            "-D",
            str(data),
            "-l",
            str(data / "log"),
            "-w",
            "-o",
            f"-h 127.0.0.1 -p {port} -k {data} -c fsync=off",
            "start",
        ],
        check=True,
        capture_output=True,
    )
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*as_postgres, pg_ctl, "-D", str(data), "-m", "fast", "stop"], capture_output=True)
        shutil.rmtree(state, ignore_errors=True)


class PostgresDatabases:
    """Creates a fresh, migrated database per test from a migrated template (fast)."""

    def __init__(self, server_url: str) -> None:
        import sqlalchemy as sa

        self.server_url = server_url
        self.admin = sa.create_engine(self._url("postgres"), isolation_level="AUTOCOMMIT")
        self.template = f"tocsin_tmpl_{uuid.uuid4().hex[:8]}"
        with self.admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{self.template}"')
        from dispatcher.store.engine import get_engine, migrate

        migrate(self._url(self.template))
        get_engine(self._url(self.template)).dispose()
        get_engine.cache_clear()

    def _url(self, name: str) -> str:
        import sqlalchemy as sa

        url = sa.make_url(self.server_url).set(drivername="postgresql+psycopg", database=name)
        return url.render_as_string(hide_password=False)

    def create(self) -> str:
        name = f"tocsin_t_{uuid.uuid4().hex[:10]}"
        with self.admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}" TEMPLATE "{self.template}"')
        return self._url(name)

    def drop(self, url: str) -> None:
        import sqlalchemy as sa

        from dispatcher.store.engine import get_engine

        get_engine(url).dispose()
        name = sa.make_url(url).database
        with self.admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
