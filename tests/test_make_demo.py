"""``make demo`` as a newcomer runs it, twice: the second run starts afresh and says so, and what it
prints next works as printed."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select

from dispatcher.store.schema import incidents

ROOT = Path(__file__).resolve().parent.parent


def make_demo(demo: Path) -> subprocess.CompletedProcess[str]:
    venv = Path(sys.prefix)
    if not (venv / ".installed").exists():
        pytest.fail(f"{venv} was not made by `make` (no .installed marker): run the suite with `make test`")
    return subprocess.run(
        ["make", "--no-print-directory", "-C", str(ROOT), "demo", f"VENV={venv}", f"DEMO={demo}"],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_make_demo_twice_starts_afresh_and_says_so(tmp_path: Path) -> None:
    if shutil.which("make") is None:
        pytest.fail("make is not installed")
    demo = tmp_path / "demo"

    first = make_demo(demo)
    second = make_demo(demo)

    assert first.returncode == 0, first.stdout + first.stderr
    assert "earlier run" not in first.stdout
    assert second.returncode == 0, second.stdout + second.stderr
    assert "holds an earlier run; starting afresh" in second.stdout
    engine = create_engine(f"sqlite:///{demo / 'tocsin.db'}")
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(incidents)).scalar_one() == 1
    engine.dispose()
    hint = next(line for line in second.stdout.splitlines() if "incident show inc-1" in line)
    command = hint.split("#")[0].strip().split("&&")[1].split()
    shown = subprocess.run(command, cwd=demo, capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0 and "incident inc-1: Checkout failing" in shown.stdout, shown.stderr
