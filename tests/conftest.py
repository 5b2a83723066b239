"""Shared fixtures: an isolated folder and environment per test, real databases, runtimes."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from channels.base import Adapter
from dispatcher.config.settings import Settings
from dispatcher.engine.runtime import Runtime, build_runtime
from dispatcher.store.engine import get_engine, migrate
from tests.services import (
    PostgresDatabases,
    private_postgres,
    private_redis,
    redis_reachable,
    unavailable,
)


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test runs in its own empty folder with no Tocsin configuration from the outside."""
    for name in list(os.environ):
        if (name.startswith("TOCSIN_") and not name.startswith("TOCSIN_TEST_")) or name in (
            "DATABASE_URL",
            "REDIS_URL",
        ):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TOCSIN_CONFIG", str(tmp_path / "tocsin.toml"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    given = os.environ.get("TOCSIN_TEST_REDIS_URL")
    if given:
        if not redis_reachable(given):
            unavailable(f"Redis at {given}")
        yield given
        return
    with private_redis() as url:
        if url is None:
            unavailable("Redis (set TOCSIN_TEST_REDIS_URL or install redis-server)")
        assert url is not None
        yield url


@pytest.fixture(scope="session")
def pg_databases() -> Iterator[PostgresDatabases]:
    given = os.environ.get("TOCSIN_TEST_DATABASE_URL")
    if given:
        try:
            yield PostgresDatabases(given)
        except Exception as exc:
            unavailable(f"PostgreSQL at {given} ({type(exc).__name__}: {str(exc).splitlines()[0]})")
        return
    with private_postgres() as url:
        if url is None:
            unavailable("PostgreSQL (set TOCSIN_TEST_DATABASE_URL or install PostgreSQL)")
        assert url is not None
        yield PostgresDatabases(url)


@pytest.fixture
def postgres_url(pg_databases: PostgresDatabases) -> Iterator[str]:
    url = pg_databases.create()
    yield url
    pg_databases.drop(url)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> Iterator[str]:
    url = f"sqlite:///{tmp_path / 'tocsin.db'}"
    migrate(url)
    yield url
    get_engine(url).dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest) -> str:
    """The same tests run on SQLite (the default) and on PostgreSQL (production)."""
    fixture = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    return str(request.getfixturevalue(fixture))


SettingsFactory = Callable[..., Settings]


@pytest.fixture
def make_settings(db_url: str, tmp_path: Path) -> SettingsFactory:
    def factory(**overrides: Any) -> Settings:
        values: dict[str, Any] = {"database_url": db_url, "outbox_dir": tmp_path / "outbox"}
        values.update(overrides)
        return Settings(**values)

    return factory


@pytest.fixture
def make_runtime(make_settings: SettingsFactory) -> Iterator[Callable[..., Runtime]]:
    made: list[Runtime] = []

    def factory(adapters: Mapping[str, Adapter] | None = None, **overrides: Any) -> Runtime:
        rt = build_runtime(make_settings(**overrides), adapters=adapters)
        made.append(rt)
        return rt

    yield factory
    for rt in made:
        rt.close()


@pytest.fixture
def rt(make_runtime: Callable[..., Runtime]) -> Runtime:
    return make_runtime()
