"""docs/pages/readiness.md and the README's "Before your next incident" say what is true: every shell command
they show runs, every TOML example loads strictly, and the alert they quote is the one staff get."""

from __future__ import annotations

import re
import shlex
from datetime import UTC, datetime
from pathlib import Path

import pytest

from channels.base import ChannelKind
from dispatcher.comms.readiness import alert_text
from dispatcher.engine.readiness.probing import ProviderReadiness
from dispatcher.engine.readiness.state import ChannelChange
from tests.cli import tocsin

ROOT = Path(__file__).resolve().parent.parent
DOC = (ROOT / "docs" / "pages" / "readiness.md").read_text(encoding="utf-8")
README = (ROOT / "README.md").read_text(encoding="utf-8")


def blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", text, flags=re.DOTALL)


def commands() -> list[str]:
    readme_section = README[README.index("<!-- before-your-next-incident -->") :]
    shown = blocks(DOC, "sh") + blocks(readme_section, "sh")[:1]
    return [line.split("  #")[0].strip() for block in shown for line in block.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh installation configured with the documented [canary] block."""
    made = tmp_path_factory.mktemp("docs")
    assert tocsin("init", cwd=made).code == 0
    config = made / "tocsin.toml"
    config.write_text(config.read_text() + "\n" + blocks(DOC, "toml")[0])
    return made


def test_the_documents_show_the_commands_to_run() -> None:
    assert {"tocsin check", "tocsin check --send", "tocsin tick", "tocsin config show"} <= set(commands())


@pytest.mark.parametrize("command", sorted(set(commands())))
def test_every_shell_command_shown_runs(folder: Path, command: str) -> None:
    words = shlex.split(command)
    assert words[0] == "tocsin"
    ran = tocsin(*words[1:], cwd=folder)
    assert ran.code == 0, (command, ran.out, ran.err)
    assert "Traceback" not in ran.err


def test_every_toml_example_loads_strictly(tmp_path: Path) -> None:
    for example in blocks(DOC, "toml"):
        (tmp_path / "tocsin.toml").write_text(example)
        ran = tocsin("config", "show", cwd=tmp_path)
        assert ran.code == 0, (example, ran.err)


def test_the_alert_quoted_is_the_one_staff_get() -> None:
    quoted = blocks(DOC, "text")[1].strip()
    at = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
    failed = ProviderReadiness(
        ChannelKind.EMAIL, "sendgrid", False, "SendGrid refused the API key (401): revoked or wrong", 0.02, at
    )
    assert alert_text(ChannelChange(ChannelKind.EMAIL, "ready", "down", [failed], None)) == quoted
