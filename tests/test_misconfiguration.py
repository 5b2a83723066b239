"""The misconfiguration matrix: each broken setup, run through ``tocsin config show``, ``check``,
``publish``, ``worker`` and ``api`` as subprocesses. A broken configuration stops every one of them at
start-up with one clear message and exit code 1, never a traceback, and nothing is written; an
unreachable service is named by each command that needs it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select

from dispatcher.store.schema import updates
from tests.cli import tocsin

COMMANDS = {
    "config show": ["config", "show"],
    "check": ["check"],
    "publish": [
        "publish",
        "1",
        "--status",
        "investigating",
        "--message",
        "Checkout fails. Sorry.",
        "--next-update-in",
        "30m",
    ],
    "worker": ["worker"],
    "api": ["api", "--port", "1"],
}
"""``api`` on port 1 would fail to bind: reaching that point means it did not refuse the configuration."""

CLOSED = "127.0.0.1:1"  # nothing listens there
TWILIO = '[providers.twilio]\nauth_token = "t"\nfrom_number = "+15551234567"\n'

BROKEN: dict[str, tuple[str, dict[str, str], str]] = {
    # name: (tocsin.toml, environment, the message every command prints)
    "misspelt provider": (
        '[channels.email]\nproviders = ["sendgird"]\n',
        {},
        "{file}: [channels.email] `providers`: unknown provider `sendgird` (did you mean `sendgrid`?)",
    ),
    "unknown top-level key": (
        "ingest_tokn = 'x'\n",
        {},
        "{file}: the top level has no setting `ingest_tokn` (did you mean `ingest_token`?)",
    ),
    "unknown key in [retry]": (
        "[retry]\nlease_second = 10\n",
        {},
        "{file}: [retry] has no setting `lease_second` (did you mean `lease_seconds`?)",
    ),
    "unknown key in a channel": (
        "[channels.sms]\nenable = false\n",
        {},
        "{file}: [channels.sms] has no setting `enable` (did you mean `enabled`?)",
    ),
    "unknown key in a provider": (
        '[channels.sms]\nproviders = ["twilio"]\n'
        + TWILIO
        + f'account_sid = "AC{"0" * 32}"\nauth_tokn = "x"\n',
        {},
        "{file}: [providers.twilio] has no setting `auth_tokn` (did you mean `auth_token`?)",
    ),
    "unknown environment variable": (
        "",
        {"TOCSIN_RETRY__LEASE_SECOND": "10"},
        "TOCSIN_RETRY__LEASE_SECOND: [retry] has no setting `lease_second` (did you mean `lease_seconds`?)",
    ),
    "wrong credential shape": (
        '[channels.sms]\nproviders = ["twilio"]\n' + TWILIO + 'account_sid = "ACnot-a-sid"\n',
        {},
        "{file}: [providers.twilio] `account_sid`: account_sid must be 'AC' followed by 32 hex digits",
    ),
}


@pytest.fixture(scope="module")
def initialised(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder after `tocsin init` with one incident open (made once, copied for each test)."""
    made = tmp_path_factory.mktemp("initialised")
    assert tocsin("init", cwd=made).code == 0
    assert tocsin("incident", "open", "Checkout failing", "--severity", "minor", cwd=made).code == 0
    return made


@pytest.fixture
def folder(initialised: Path, tmp_path: Path) -> Path:
    shutil.copytree(initialised, tmp_path, dirs_exist_ok=True)
    return tmp_path


def published(folder: Path) -> int:
    engine = create_engine(f"sqlite:///{folder / 'tocsin.db'}")
    try:
        with engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(updates)).scalar_one())
    finally:
        engine.dispose()


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("broken", BROKEN)
def test_a_broken_configuration_stops_every_command(folder: Path, broken: str, command: str) -> None:
    toml, env, message = BROKEN[broken]
    (folder / "tocsin.toml").write_text(toml)
    ran = tocsin(*COMMANDS[command], cwd=folder, env=env, timeout=60)
    assert ran.code == 1, (ran.out, ran.err)
    assert f"error: {message.format(file=folder / 'tocsin.toml')}" in ran.err
    assert "Traceback" not in ran.err + ran.out
    assert "published" not in ran.out
    assert published(folder) == 0


@pytest.mark.parametrize(
    ("command", "code", "expected"),
    [
        ("config show", 0, '"database_url": "postgresql+psycopg://tocsin@127.0.0.1:1/tocsin"'),
        ("check", 1, "not ready: database (connection failed:"),
        ("publish", 1, "error: database unreachable or locked: connection failed:"),
        ("worker", 1, "error: database unreachable or locked: connection failed:"),
        ("api", 1, "error: database unreachable or locked: connection failed:"),
    ],
)
def test_an_unreachable_database(folder: Path, command: str, code: int, expected: str) -> None:
    ran = tocsin(
        *COMMANDS[command],
        cwd=folder,
        env={"DATABASE_URL": f"postgresql://tocsin@{CLOSED}/tocsin"},
        timeout=60,
    )
    assert ran.code == code, (ran.out, ran.err)
    assert expected in ran.out + ran.err
    assert "Traceback" not in ran.err


@pytest.mark.parametrize(
    ("command", "code", "expected"),
    [
        ("config show", 0, f'"redis_url": "redis://{CLOSED}/0"'),
        ("check", 1, f"not ready: broker (Error 111 connecting to {CLOSED}. Connection refused.)"),
        (
            "publish",
            1,
            f"error: Redis unreachable at redis://{CLOSED}/0: Error 111 connecting to {CLOSED}. "
            "Connection refused; nothing was done",
        ),
        ("worker", 1, f"error: Redis unreachable at redis://{CLOSED}/0"),
        ("api", 1, f"error: Redis unreachable at redis://{CLOSED}/0"),
    ],
)
def test_an_unreachable_redis(folder: Path, command: str, code: int, expected: str) -> None:
    ran = tocsin(*COMMANDS[command], cwd=folder, env={"REDIS_URL": f"redis://{CLOSED}/0"}, timeout=60)
    assert ran.code == code, (ran.out, ran.err)
    assert expected in ran.out + ran.err
    assert "Traceback" not in ran.err
    assert published(folder) == 0, "nothing written that no worker would hear of"
