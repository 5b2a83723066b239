"""Every shell command in the README and the documentation is run, as a reader would run it.

A page's ```sh blocks run top to bottom with bash (``-euo pipefail``) in a fresh folder of their own,
with ``tocsin`` on the ``PATH`` and ``.venv`` pointing at this virtualenv, on the embedded default. An
HTML comment just before a block says when it needs more:

* ``<!-- docs-test: file NAME -->``: the next block is a file the commands read (written, not run);
* ``<!-- docs-test: serve -->``: each line starts a server: it must come up (``/healthz`` for ``tocsin
  api`` and ``tocsin console``, still running after a few seconds for ``tocsin worker``), then it is
  stopped. The test adds ``--port`` with a free port, so it never collides with anything;
* ``<!-- docs-test: with-api [NAME=VALUE …] -->``: a ``tocsin api`` (with those settings in its
  environment and the block's) is running at ``$API_URL`` while the block runs;
* ``<!-- docs-test: after-demo -->``: the block runs where ``make demo`` left its ``demo/`` folder;
* ``<!-- docs-test: elsewhere WHAT -->``: another test or CI step runs these commands; ``WHAT`` names
  it, and every ``tests/…`` or ``.ci/…`` path it names must exist.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.cli import kill_group
from tests.services import free_port

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs" / "pages").glob("*.md"))]
BLOCK = re.compile(
    r"(?:<!-- docs-test: (?P<directive>[^>]*?) -->\n)?```(?P<lang>\w*)\n(?P<body>.*?)```", re.S
)
SHELL = {"sh", "bash", "shell"}


@dataclass(frozen=True)
class Block:
    page: Path
    line: int
    lang: str
    directive: str
    body: str

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def blocks(page: Path) -> list[Block]:
    text = page.read_text(encoding="utf-8")
    found = []
    for match in BLOCK.finditer(text):
        line = text.count("\n", 0, match.start("body"))
        directive = (match.group("directive") or "").strip()
        found.append(Block(page, line, match.group("lang"), directive, match.group("body")))
    return [b for b in found if b.lang in SHELL or b.directive.startswith("file ")]


def environment(folder: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    """A reader's shell: no Tocsin settings from the test run, this virtualenv's ``tocsin`` first."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("TOCSIN_") and k not in ("DATABASE_URL", "REDIS_URL", "VIRTUAL_ENV")
    }
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.update({"COLUMNS": "160", "NO_COLOR": "1", "HOME": str(folder)})
    env.update(extra or {})
    return env


def sandbox(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    venv = folder / ".venv"
    if not venv.exists():
        venv.symlink_to(Path(sys.prefix), target_is_directory=True)
    return folder


def run_block(block: Block, folder: Path, env: dict[str, str]) -> None:
    ran = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", block.body],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
    assert ran.returncode == 0, f"{block.where} failed ({ran.returncode}):\n{ran.stdout}\n{ran.stderr}"


def lines_of(body: str) -> list[str]:
    """The commands of a block: continuations joined, comments and blank lines dropped."""
    joined = re.sub(r"\\\n\s*", " ", body)
    commands = [re.sub(r"\s+#.*$", "", line).strip() for line in joined.splitlines()]
    return [c for c in commands if c and not c.startswith("#")]


def start(command: str, folder: Path, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            ["bash", "-c", f"exec {command}"],
            cwd=folder,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )


def wait_healthy(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"the server stopped ({proc.returncode}):\n{log.read_text()}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    pytest.fail(f"the server did not answer /healthz:\n{log.read_text()}")


def serve(block: Block, folder: Path, env: dict[str, str]) -> None:
    for command in lines_of(block.body):
        log = folder / "server.log"
        if command.startswith(("tocsin api", "tocsin console")):
            port = free_port()
            proc = start(f"{command} --port {port}", folder, env, log)
            try:
                wait_healthy(f"http://127.0.0.1:{port}", proc, log)
            finally:
                kill_group(proc)
        elif command.startswith("tocsin worker"):
            proc = start(command, folder, env, log)
            try:
                time.sleep(3)
                assert proc.poll() is None, f"{block.where}: `{command}` stopped:\n{log.read_text()}"
            finally:
                kill_group(proc)
        else:
            pytest.fail(f"{block.where}: no way to check the server `{command}`: teach this test")


def with_api(block: Block, folder: Path, settings: list[str]) -> None:
    extra = dict(setting.split("=", 1) for setting in settings)
    port = free_port()
    env = environment(folder, {**extra, "API_URL": f"http://127.0.0.1:{port}"})
    log = folder / "api.log"
    proc = start(f"tocsin api --port {port}", folder, env, log)
    try:
        wait_healthy(f"http://127.0.0.1:{port}", proc, log)
        run_block(block, folder, env)
    finally:
        kill_group(proc)


def after_demo(block: Block, folder: Path) -> None:
    demo = folder / "demo"
    demo.mkdir(exist_ok=True)
    made = subprocess.run(
        ["tocsin", "demo"], cwd=demo, env=environment(folder), capture_output=True, text=True, timeout=300
    )
    assert made.returncode == 0, made.stdout + made.stderr
    run_block(block, folder, environment(folder))


def elsewhere(block: Block) -> None:
    what = block.directive.removeprefix("elsewhere").strip()
    named = re.findall(r"(?:tests|\.ci)/[\w./-]+\w", what)
    assert named, f"{block.where}: say which test or CI step runs these commands"
    for path in named:
        assert (ROOT / path).exists(), f"{block.where}: {path} does not exist"


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_every_shell_command_on_the_page_runs(page: Path, tmp_path: Path) -> None:
    folder = sandbox(tmp_path / page.stem)
    for block in blocks(page):
        kind, *args = block.directive.split() or [""]
        if kind == "file":
            (folder / args[0]).parent.mkdir(parents=True, exist_ok=True)
            (folder / args[0]).write_text(block.body, encoding="utf-8")
        elif kind == "serve":
            serve(block, folder, environment(folder))
        elif kind == "with-api":
            with_api(block, folder, args)
        elif kind == "after-demo":
            after_demo(block, folder)
        elif kind == "elsewhere":
            elsewhere(block)
        elif kind == "":
            run_block(block, folder, environment(folder))
        else:
            pytest.fail(f"{block.where}: unknown docs-test directive {block.directive!r}")


def test_the_documentation_shows_commands_and_the_readme_stays_short() -> None:
    assert sum(len(blocks(page)) for page in PAGES) >= 10
    assert len((ROOT / "README.md").read_text(encoding="utf-8").splitlines()) <= 250
