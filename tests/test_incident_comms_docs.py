"""docs/pages/incident-comms.md is true: its shell commands run, in order, as a user types them, and its
policy example is a valid policy."""

from __future__ import annotations

import email
import os
import re
import subprocess
import sys
from pathlib import Path

from dispatcher.domain.models import Severity
from dispatcher.domain.policy import parse_policy
from tests.cli import cli_env

DOC = Path(__file__).resolve().parent.parent / "docs" / "pages" / "incident-comms.md"


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", DOC.read_text(encoding="utf-8"), re.DOTALL)


def test_every_command_of_the_page_runs(tmp_path: Path) -> None:
    script = "set -euo pipefail\n" + "\n".join(blocks("sh"))
    env = cli_env(tmp_path)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    ran = subprocess.run(
        ["bash", "-c", script],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-3000:]

    out = " ".join(ran.stdout.split())
    assert "first notice sent as update upd-1" in out
    assert "update upd-2 approved by bob and published" in out
    assert "incident inc-1 is resolved; resolution update upd-3 tells everyone told" in out
    assert (
        "extended maintenance 2" in out
        and "rescheduled maintenance 2" in out
        and "cancelled maintenance 2" in out
    )
    customer = [
        email.message_from_bytes(p.read_bytes())
        for p in sorted(tmp_path.glob("outbox/update-*/email/*.eml"))
        if "customer@example.com" in email.message_from_bytes(p.read_bytes())["To"]
    ]
    subjects = [str(m["Subject"]) for m in customer]
    assert any("Resolved" in s for s in subjects), subjects
    assert not any("Processor ticket" in m.as_string() for m in customer), "the internal note is for staff"
    assert list(tmp_path.glob("outbox/update-2/sms/*.json")), "the approved update went out by SMS too"


def test_the_policy_example_is_a_valid_policy() -> None:
    [example] = blocks("toml")
    policy = parse_policy(example, "docs/pages/incident-comms.md")
    assert policy.first_word_budget(Severity.MAJOR).total_seconds() == 20 * 60
    assert policy.first_word_budget(Severity.MINOR).total_seconds() == 0
    assert policy.escalation.senior_approver == "vp-support@example.com"
