"""Running the ``tocsin`` command as a user does: a subprocess in a folder, no standard input."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

TOCSIN = [sys.executable, "-m", "dispatcher.cli"]


@dataclass
class Ran:
    code: int
    out: str
    err: str


def cli_env(cwd: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The test process's environment without any Tocsin settings, plus the folder's config file."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("TOCSIN_") and k not in ("DATABASE_URL", "REDIS_URL")
    }
    env.update({"COLUMNS": "200", "NO_COLOR": "1", "TOCSIN_CONFIG": str(cwd / "tocsin.toml")})
    env.update(extra or {})
    return env


def tocsin(*args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 120) -> Ran:
    proc = subprocess.run(
        [*TOCSIN, *args],
        cwd=cwd,
        env=cli_env(cwd, env),
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    return Ran(proc.returncode, proc.stdout, proc.stderr)


def start_tocsin(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """A long-running command (``tocsin worker``), its output in ``cwd/<command>.log``. It leads a
    process group of its own, so ``kill_group`` ends it with every child it forked."""
    log = (cwd / f"{args[0]}.log").open("ab")
    return subprocess.Popen(
        [*TOCSIN, *args],
        cwd=cwd,
        env=cli_env(cwd, env),
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )


def kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL a process we started and everything it forked: a worker machine losing power."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    """End a process we started, by its pid: politely, then for sure."""
    proc.send_signal(sig)
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        kill_group(proc)
