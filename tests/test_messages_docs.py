"""Every command docs/pages/messages.md and the README's message templates section show, run as a user
would, in an empty folder holding the files they show (``<!-- docs-test: file PATH -->`` before a fenced
block); their shell blocks say ``docs-test: elsewhere`` this file, so tests/test_docs_examples.py leaves
them to it."""

from __future__ import annotations

import email
import email.policy
import re
import shlex
from pathlib import Path

import pytest

from tests.cli import tocsin

ROOT = Path(__file__).resolve().parent.parent
FENCE = re.compile(
    r"(?:<!-- docs-test: (?:file (?P<path>\S+)|(?P<elsewhere>elsewhere [^>]*)) -->\n)?```(?P<lang>\w+)\n"
    r"(?P<body>.*?)```",
    re.S,
)


def blocks(text: str) -> list[tuple[str | None, str, str]]:
    found = []
    for m in FENCE.finditer(text):
        if m.group("lang") == "sh":
            assert m.group("elsewhere") and "tests/test_messages_docs.py" in m.group("elsewhere"), m.group(0)
        found.append((m.group("path"), m.group("lang"), m.group("body")))
    return found


def commands(body: str) -> list[list[str]]:
    """Each ``tocsin …`` line of a shell block, split as a shell would (comments dropped)."""
    found = []
    for line in body.replace("\\\n", " ").splitlines():
        words = shlex.split(line, comments=True)
        if words:
            assert words[0] == "tocsin", line
            found.append(words[1:])
    return found


def run_document(text: str, folder: Path) -> list[str]:
    """Write the document's files, then run its commands in order; the outputs."""
    outputs = []
    for path, _, body in blocks(text):
        if path is not None:
            (folder / path).parent.mkdir(parents=True, exist_ok=True)
            (folder / path).write_text(body, encoding="utf-8")
    for path, lang, body in blocks(text):
        if lang == "sh" and path is None:
            for args in commands(body):
                ran = tocsin(*args, cwd=folder)
                assert ran.code == 0, (args, ran.out, ran.err)
                outputs.append(ran.out)
    return outputs


def email_texts(folder: Path) -> dict[str, str]:
    found = {}
    for path in sorted(folder.glob("outbox/update-*/email/*.eml")):
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        part = next(p for p in message.walk() if p.get_content_type() == "text/plain")
        found[f"{path.parent.parent.name}:{message['To']}"] = str(part.get_content())
    return found


@pytest.mark.timeout(600)
def test_every_command_of_the_messages_page_runs(tmp_path: Path) -> None:
    outputs = run_document((ROOT / "docs" / "pages" / "messages.md").read_text(encoding="utf-8"), tmp_path)
    joined = "\n".join(outputs)
    assert "payments-down" in joined and "message templates and the channel layouts are fine" in joined
    assert "published update upd-1" in joined and "published draft 1 as update upd-3" in joined

    mails = email_texts(tmp_path)
    ada, grace = mails["update-1:ada@example.com"], mails["update-1:grace@example.com"]
    assert "Vous pouvez payer par virement en attendant." in grace and "EST" in ada
    assert re.search(r"Next update by today, \d+:\d\d [AP]M EST\.", ada)
    assert "Les paiements par carte échouent" in mails["update-2:grace@example.com"]
    assert "de nouveau disponibles" in mails["update-3:grace@example.com"]
    sms = next(tmp_path.glob("outbox/update-2/sms/*.json")).read_text(encoding="utf-8")
    assert "we found the cause. Sorry." in sms and "Reply STOP to opt out." in sms


def test_the_readmes_template_file_and_command_run(tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Messages prepared before the outage", 1)[1].split("\n## ", 1)[0]
    assert tocsin("init", cwd=tmp_path).code == 0
    (tmp_path / "people.csv").write_text("name,email\nAda,ada@example.com\n")
    assert tocsin("subscribers", "import", "people.csv", cwd=tmp_path).code == 0
    assert tocsin("incident", "open", "Checkout slow", "--component", "Checkout", cwd=tmp_path).code == 0
    outputs = run_document(section, tmp_path)
    assert "published update upd-1" in outputs[-1]
    (body,) = email_texts(tmp_path).values()
    assert "Checkout is slower than usual. If a payment fails, try again in a minute." in body


def test_a_misspelt_text_option_or_template_is_named_and_nothing_is_sent(tmp_path: Path) -> None:
    assert tocsin("init", cwd=tmp_path).code == 0
    assert tocsin("incident", "open", "Checkout slow", cwd=tmp_path).code == 0
    said = ["--status", "identified", "--message", "Slow. Sorry.", "--next-update-in", "30m"]
    typo = tocsin("publish", "1", *said, "--mesage-fr", "Lent.", cwd=tmp_path)
    assert typo.code == 2 and "no such option: --mesage-fr" in typo.err
    unknown = tocsin("publish", "1", "--template", "degradd", cwd=tmp_path)
    assert unknown.code == 1 and "no message template 'degradd' (templates: degraded," in unknown.err
    no_value = tocsin("publish", "1", "--template", "third-party", cwd=tmp_path)
    assert no_value.code == 1 and "vars.provider: template 'third-party' needs it" in no_value.err
    assert not list(tmp_path.glob("outbox/**/*.*"))
