"""The post-incident report (issue 17). Given a resolved incident that customers were told about, when its
report is published, then the status page shows it under the incident (and status.json and the Atom feed
carry it), and a short notice with its link reaches everyone who was told, on the channels they were
told on, and nobody else. The policy's deadline (or the resolution's promise) is tracked by the tick on
an injected clock: a reminder before it, a flag and a page when it passes.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jsonschema
import pytest

from channels.base import ChannelKind
from channels.memory import MemoryAdapter
from dispatcher.comms.attention import flags
from dispatcher.comms.closure import resolve
from dispatcher.comms.lifecycle import timeline
from dispatcher.comms.reports import get_report, publish_report
from dispatcher.comms.tick import run_tick
from dispatcher.config.settings import ChannelSettings
from dispatcher.domain.crisis import parse_report_markdown
from dispatcher.domain.errors import GuardrailsBlocked, InvalidInput
from dispatcher.domain.identity import Identity
from dispatcher.domain.models import Incident, Severity
from dispatcher.engine.runtime import Runtime
from dispatcher.runners.embedded import EmbeddedRunner
from tests.cli import tocsin
from tests.helpers import ManualClock, draft, incident, publish_and_deliver, subscribe
from tests.test_metrics import scrape, value

DOCS = Path(__file__).resolve().parent.parent / "docs" / "pages"
START = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
ADA = Identity("ada")

REPORT_MD = """# Checkout failing on 25 November

## Summary
For 40 minutes, a third of card payments failed.

## Impact
Customers paying by card in the EU, from 09:05 to 09:45 UTC.

## Root cause
A configuration change sent payments to a retired gateway.

## What we did
We rolled the change back and replayed the failed payments.

## What we will do
Configuration changes to payments now need a canary and a second reviewer.
"""

POLICY = """
[severity.critical]
cadence = "30m"
[severity.major]
cadence = "1h"
report_within = "5d"
[severity.minor]
cadence = "3h"
report_within = "2d"
[report]
remind_before = "12h"
[escalation]
senior_approver = "cto@example.com"
"""


def staged(
    make_runtime: Callable[..., Runtime], tmp_path: Path
) -> tuple[Runtime, MemoryAdapter, ManualClock]:
    (tmp_path / "policy.toml").write_text(POLICY)
    memory = MemoryAdapter()
    rt = make_runtime(
        channels={
            ChannelKind.EMAIL: ChannelSettings(providers=["memory"]),
            ChannelKind.SMS: ChannelSettings(providers=["memory"]),
            ChannelKind.STATUSPAGE: ChannelSettings(providers=["statuspage"]),
        },
        providers={"statuspage": {"directory": str(tmp_path / "www")}},
        adapters={"memory": memory},
        status_page_url="https://status.example.com",
        policy_file=tmp_path / "policy.toml",
    )
    clock = ManualClock(START)
    rt.clock = clock
    return rt, memory, clock


def resolved(rt: Runtime, clock: ManualClock, **resolve_with: object) -> Incident:
    """A minor incident (no monitoring hold): told to two subscribers, then resolved."""
    inc = incident(rt, Severity.MINOR)
    publish_and_deliver(
        rt,
        draft(inc, "Checkout is failing for some. Sorry.", next_update_at=clock.now() + timedelta(hours=1)),
    )
    clock.advance(minutes=40)
    runner = EmbeddedRunner(rt)
    resolve(rt, inc.id, ADA, runner.queue, **resolve_with)  # type: ignore[arg-type]
    runner.run_until_idle()
    return inc


def notices(memory: MemoryAdapter) -> list[tuple[str, str]]:
    return [
        (call.message.kind.value, r.address)
        for call in memory.calls
        if "post-incident report" in call.message.text
        for r in call.recipients
    ]


def test_the_markdown_names_what_is_missing() -> None:
    parsed = parse_report_markdown(REPORT_MD)
    assert parsed.root_cause.startswith("A configuration change")
    assert parsed.prevention.startswith("Configuration changes to payments")
    with pytest.raises(ValueError, match="no '## Root cause', no '## What we will do' section"):
        parse_report_markdown("## Summary\nx\n## Impact\ny\n## What we did\nz\n")
    with pytest.raises(ValueError, match="line 1: '## Lessons' is not a report section"):
        parse_report_markdown("## Lessons\nx\n")


def test_a_report_is_published_linked_and_announced_to_everyone_told(
    make_runtime: Callable[..., Runtime], tmp_path: Path
) -> None:
    rt, memory, clock = staged(make_runtime, tmp_path)
    subscribe(rt, 2, sms=True)
    inc = resolved(rt, clock)
    subscribe_later = 5  # someone who signs up after the incident never heard of it
    from dispatcher.audience.subscribers import add_subscribers
    from tests.helpers import person

    add_subscribers(rt, [person(subscribe_later)])
    clock.advance(days=1)
    runner = EmbeddedRunner(rt)

    done = publish_report(rt, inc.id, parse_report_markdown(REPORT_MD), ADA, runner.queue)
    runner.run_until_idle()

    assert done.link == f"https://status.example.com/incidents/{inc.id}.html#report"
    assert done.on_time is True
    told = sorted(notices(memory))
    assert told == [
        ("email", "person0@example.com"),
        ("email", "person1@example.com"),
        ("sms", "+12025550000"),
        ("sms", "+12025550001"),
    ]
    text = next(c.message.text for c in memory.calls if "post-incident report" in c.message.text)
    assert done.link in text

    site = tmp_path / "www"
    page = (site / "incidents" / f"{inc.id}.html").read_text()
    assert 'id="report"' in page and "A configuration change sent payments to a retired gateway." in page
    assert "What we will do so it does not happen again" in page
    status = json.loads((site / "status.json").read_text())
    jsonschema.Draft202012Validator(json.loads((DOCS / "status.schema.json").read_text())).validate(status)
    [shown] = [i for i in status["history"] if i["id"] == inc.id]
    assert shown["report"]["root_cause"] == "A configuration change sent payments to a retired gateway."
    assert shown["report"]["impact_from"] == "2026-11-25T09:00:00Z"
    assert shown["report"]["impact_until"] == "2026-11-25T09:40:00Z"
    feed = ET.fromstring((site / "feed.atom").read_text())
    titles = [
        e.findtext("{http://www.w3.org/2005/Atom}title")
        for e in feed.iter("{http://www.w3.org/2005/Atom}entry")
    ]
    assert "Checkout failing: post-incident report" in titles

    with pytest.raises(InvalidInput, match="already has its report"):
        publish_report(rt, inc.id, parse_report_markdown(REPORT_MD), ADA, runner.queue)
    assert get_report(rt, inc.id).report == parse_report_markdown(REPORT_MD)


def test_only_a_resolved_incident_has_a_report(make_runtime: Callable[..., Runtime], tmp_path: Path) -> None:
    rt, _, _ = staged(make_runtime, tmp_path)
    inc = incident(rt, Severity.MINOR)
    with pytest.raises(
        InvalidInput, match="is investigating: a report explains an incident once it is resolved"
    ):
        publish_report(rt, inc.id, parse_report_markdown(REPORT_MD), ADA, EmbeddedRunner(rt).queue)


def test_the_report_passes_the_leak_rules(make_runtime: Callable[..., Runtime], tmp_path: Path) -> None:
    rt, _, clock = staged(make_runtime, tmp_path)
    inc = resolved(rt, clock)
    leaky = parse_report_markdown(REPORT_MD.replace("a retired gateway", "pg-primary-1.corp.internal"))
    with pytest.raises(GuardrailsBlocked) as blocked:
        publish_report(rt, inc.id, leaky, ADA, EmbeddedRunner(rt).queue)
    assert {(f.rule, f.field) for f in blocked.value.findings} == {("internal-hostname", "report.root_cause")}
    assert publish_report(rt, inc.id, leaky, ADA, EmbeddedRunner(rt).queue, "legal approved the wording")


def test_the_deadline_is_reminded_then_flagged_on_the_tick(
    make_runtime: Callable[..., Runtime], tmp_path: Path
) -> None:
    rt, memory, clock = staged(make_runtime, tmp_path)
    subscribe(rt, 1, internal=True)
    inc = resolved(rt, clock)
    due = clock.now() + timedelta(days=2)  # minor: report_within = "2d"
    assert rt.clock.now() == clock.now()
    from dispatcher.comms.incidents import get_incident

    assert get_incident(rt, inc.id).report_due_at == due
    resolution = [c.message.text for c in memory.calls if c.message.kind is ChannelKind.EMAIL][-1]
    assert "A full report on what happened and what we will do so it does not happen again will follow by " \
        "Fri, Nov 27, 9:40 AM UTC." in resolution  # fmt: skip  (the reader's own time: UTC here)

    runner = EmbeddedRunner(rt)
    clock.advance(hours=35)  # 13 hours before: nothing yet
    assert run_tick(rt, runner.queue).report_reminders == []
    clock.advance(hours=2)  # 11 hours before: within remind_before (12h)
    assert run_tick(rt, runner.queue).report_reminders == [inc.id]
    assert run_tick(rt, runner.queue).report_reminders == [], "reminded once"
    assert flags(rt, get_incident(rt, inc.id)) == []

    clock.advance(hours=12)  # 1 hour past the deadline
    assert run_tick(rt, runner.queue).reports_overdue == [inc.id]
    runner.run_until_idle()
    late = get_incident(rt, inc.id)
    assert late.report_overdue_at == clock.now()
    assert any(
        "post-incident report is 1 h overdue" in f or ("report is" in f and "overdue" in f)
        for f in flags(rt, late)
    )
    paged = {r.address for c in memory.calls if "REPORT OVERDUE" in c.message.text for r in c.recipients}
    assert "cto@example.com" in paged or "person0@example.com" in paged
    assert [e.kind for e in timeline(rt, inc.id)].count("report_overdue") == 1

    assert value(scrape(rt), "tocsin_reports_overdue") == 1
    done = publish_report(rt, inc.id, parse_report_markdown(REPORT_MD), ADA, runner.queue)
    assert done.on_time is False
    assert value(scrape(rt), "tocsin_reports_overdue") == 0
    assert flags(rt, get_incident(rt, inc.id)) == [], "the flag goes once the report is out"


def test_a_resolution_may_promise_its_own_date(make_runtime: Callable[..., Runtime], tmp_path: Path) -> None:
    rt, memory, clock = staged(make_runtime, tmp_path)
    subscribe(rt, 1)
    promised = START + timedelta(days=1, hours=8)
    inc = resolved(rt, clock, report_by=promised)
    from dispatcher.comms.incidents import get_incident

    assert get_incident(rt, inc.id).report_due_at == promised
    text = [c.message.text for c in memory.calls][-1]
    assert "will follow by tomorrow, 5:00 PM UTC" in text  # 2026-11-26 17:00 UTC, as the reader reads it
    assert "No further updates are planned" not in text


def test_tocsin_incident_report_from_a_file(tmp_path: Path) -> None:
    assert tocsin("init", cwd=tmp_path).code == 0
    (tmp_path / "people.csv").write_text("name,email\nAda,ada@example.com\n")
    assert tocsin("subscribers", "import", "people.csv", cwd=tmp_path).code == 0
    assert tocsin("incident", "open", "Checkout failing", "--severity", "minor", cwd=tmp_path).code == 0
    said = ["--message", "Checkout fails for some. Sorry.", "--next-update-in", "1h"]
    assert tocsin("publish", "1", "--status", "investigating", *said, cwd=tmp_path).code == 0
    early = tocsin("incident", "report", "1", "--file", "report.md", cwd=tmp_path)
    assert early.code != 0 and "Traceback" not in early.out + early.err
    resolved_ = tocsin("incident", "resolve", "1", "--report-by", "3d", cwd=tmp_path)
    assert resolved_.code == 0, resolved_.err
    (tmp_path / "report.md").write_text(REPORT_MD.replace("## Root cause\n", "## Cause\n"))
    done = tocsin("incident", "report", "1", "--file", "report.md", cwd=tmp_path)
    assert done.code == 0, done.err
    assert "published the report of incident inc-1, by its deadline" in done.out
    assert "notice (update upd-3) to 2 address(es) told" in done.out  # Ada's email and the social account
    notice = next((tmp_path / "outbox" / "update-3" / "email").glob("*.eml")).read_text()
    assert "Our post-incident report on \"Checkout failing\" is published" in notice
    shown = tocsin("incident", "report", "1", cwd=tmp_path)
    assert "Root cause\nA configuration change" in shown.out
    (tmp_path / "bad.md").write_text("## Summary\nonly this\n")
    bad = tocsin("incident", "report", "1", "--file", "bad.md", cwd=tmp_path)
    assert bad.code != 0 and "--file bad.md: the report has no '## Impact', no '## Root cause'" in bad.err
