"""Running the ``tocsin`` command as a user does: a subprocess in a folder, no standard input."""

from __future__ import annotations

import os
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


def tocsin(*args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 120) -> Ran:
    full_env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("TOCSIN_") and k not in ("DATABASE_URL", "REDIS_URL")
    }
    full_env.update({"COLUMNS": "200", "NO_COLOR": "1", "TOCSIN_CONFIG": str(cwd / "tocsin.toml")})
    full_env.update(env or {})
    proc = subprocess.run(
        [*TOCSIN, *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    return Ran(proc.returncode, proc.stdout, proc.stderr)
