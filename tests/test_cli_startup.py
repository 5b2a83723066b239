"""``tocsin`` answers at once: a command imports what it uses, when it runs, and nothing else.

During an outage someone types ``tocsin --help`` and ``tocsin publish``: the time they wait is mostly
Python importing libraries. Which libraries a command imports is what can be checked here, exactly and on
any machine (its CPU time is measured by ``bench/side_by_side.py --only startup``): each test runs the
real command in a child process and reads the modules it had loaded when it exited.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from tests.cli import cli_env, tocsin

PROBE = """
import atexit, json, os, sys
atexit.register(lambda: open(os.environ["MODULES_OUT"], "w").write(json.dumps(sorted(sys.modules))))
sys.argv = ["tocsin", *sys.argv[1:]]
from dispatcher.cli.main import main
main()
"""

PROVIDER_SDKS = (
    "sendgrid",
    "python_http_client",
    "twilio",
    "tweepy",
    "apprise",
    "pycurl",
    "boto3",
    "botocore",
)
WEB = ("fastapi", "starlette", "uvicorn")
NOT_FOR_HELP = (
    *PROVIDER_SDKS,
    *WEB,
    "sqlalchemy",
    "alembic",
    "psycopg",
    "pydantic",
    "pydantic_settings",
    "celery",
    "kombu",
    "redis",
    "jinja2",
    "httpx",
    "email_validator",
    "phonenumbers",
    "prometheus_client",
)
"""``--help`` shows the commands and their options: none of this is needed for that."""

NOT_FOR_PUBLISHING = (
    *PROVIDER_SDKS,
    *WEB,
    "alembic",
    "email_validator",
    "dispatcher.engine.delivery",
    "dispatcher.runners.embedded",
)
"""``tocsin publish`` on Redis writes the update and queues its fan-out: the workers deliver, so the
command needs neither the delivery machine nor a provider's SDK (nor migrations, nor email address
checks; phone numbers it does read: a guardrail looks for them in the text)."""


def loaded_by(cwd: Path, *args: str, env: dict[str, str] | None = None) -> tuple[set[str], str]:
    """Run ``tocsin ARGS`` as a user would; the top-level packages and modules it had imported, and
    what it printed."""
    out = cwd / "modules.json"
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        cwd=cwd,
        env=cli_env(cwd, {**(env or {}), "MODULES_OUT": str(out)}),
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, proc.stderr
    modules = set(json.loads(out.read_text()))
    return modules | {name.split(".")[0] for name in modules}, proc.stdout


def test_help_lists_every_command_without_importing_the_store_the_web_or_any_provider(tmp_path: Path) -> None:
    modules, shown = loaded_by(tmp_path, "--help")
    for command in ("publish", "status", "worker", "subscribers", "incident", "deliveries", "tokens", "demo"):
        assert command in shown
    assert sorted(modules.intersection(NOT_FOR_HELP)) == []


def test_a_subcommands_help_shows_its_choices_without_the_models(tmp_path: Path) -> None:
    modules, shown = loaded_by(tmp_path, "tokens", "create", "--help")
    assert "read|publish|subscribers|admin" in shown
    # (typer itself reaches for pydantic to read a subcommand's options; the store is ours to spare)
    assert sorted(modules.intersection({"sqlalchemy", "alembic", "dispatcher.access.tokens"})) == []


@pytest.fixture
def published_incident(tmp_path: Path) -> Path:
    """A folder with a fresh tocsin.toml, its SQLite database and incident 1, as a user sets it up."""
    assert tocsin("init", cwd=tmp_path).code == 0
    assert tocsin("incident", "open", "Checkout failing", cwd=tmp_path).code == 0
    assert tocsin("subscribers", "add", "--email", "ada@example.com", cwd=tmp_path).code == 0
    return tmp_path


PUBLISH = (
    "publish",
    "1",
    "--status",
    "investigating",
    "--message",
    "We are investigating failed checkouts. Sorry for the trouble.",
    "--next-update-in",
    "30m",
)


def test_publish_on_redis_imports_neither_the_delivery_machine_nor_a_provider(
    published_incident: Path, redis_url: str
) -> None:
    own = redis_url.rsplit("/", 1)[0] + "/13"  # a database of its own: no worker of another test reads it
    client = redis.Redis.from_url(own)
    client.flushdb()
    try:
        modules, shown = loaded_by(published_incident, *PUBLISH, env={"REDIS_URL": own})
        assert "workers are delivering update upd-1" in shown
        assert client.llen("fanout") == 1  # the fan-out is queued for the workers
    finally:
        client.flushdb()
        client.close()
    assert sorted(modules.intersection(NOT_FOR_PUBLISHING)) == []


def test_publish_embedded_delivers_without_migrations_web_or_unused_providers(
    published_incident: Path,
) -> None:
    modules, shown = loaded_by(published_incident, *PUBLISH)
    assert "published update upd-1" in shown
    assert "outbox 1" in shown  # delivered here, to the outbox: the configured provider
    unused = set(NOT_FOR_PUBLISHING) - {"dispatcher.engine.delivery", "dispatcher.runners.embedded"}
    assert sorted(modules.intersection(unused)) == []
