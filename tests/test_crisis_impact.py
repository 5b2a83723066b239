"""Structured impact on every update (issue 17): who is affected, what does not work, since when, what
to do meanwhile. Given subscribers on in-memory providers, when an update carries an impact statement,
then every channel shows it briefly in the subscriber's language; a major or critical first public
update without one gets a warning in the preview and at publishing; its words pass the leak rules.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from channels.base import ChannelKind
from channels.memory import MemoryAdapter
from dispatcher.audience.subscribers import add_subscribers
from dispatcher.comms.preview import preview_draft
from dispatcher.config.settings import ChannelSettings
from dispatcher.domain.crisis import ImpactStatement
from dispatcher.domain.errors import GuardrailsBlocked
from dispatcher.domain.models import ContactPoint, Severity, Subscriber
from dispatcher.engine.runtime import Runtime
from dispatcher.engine.status_site import build_snapshot
from tests.cli import tocsin
from tests.helpers import draft, hand_clock, incident, publish_and_deliver

DIRECT = (ChannelKind.EMAIL, ChannelKind.SMS, ChannelKind.WEBHOOK)
SINCE = datetime(2026, 11, 25, 9, 5, tzinfo=UTC)
STATEMENT = ImpactStatement(
    who="customers in the EU", not_working="card payments", since=SINCE, workaround="pay by bank transfer"
)


PHONES = {"en": "+442079460001", "fr": "+442079460002"}


def memory_runtime(make_runtime: Callable[..., Runtime]) -> tuple[Runtime, MemoryAdapter]:
    memory = MemoryAdapter()
    rt = make_runtime(
        channels={kind: ChannelSettings(providers=["memory"]) for kind in DIRECT}, adapters={"memory": memory}
    )
    return rt, memory


def people(rt: Runtime) -> None:
    add_subscribers(
        rt,
        [
            Subscriber(
                name=f"{locale} reader",
                locale=locale,
                contact_points=[
                    ContactPoint(channel=ChannelKind.EMAIL, address=f"{locale}@example.com"),
                    ContactPoint(channel=ChannelKind.SMS, address=PHONES[locale]),
                    ContactPoint(channel=ChannelKind.WEBHOOK, address=f"https://hooks.example.com/{locale}"),
                ],
            )
            for locale in ("en", "fr")
        ],
    )


def sent(memory: MemoryAdapter, channel: ChannelKind, address: str) -> str:
    """What ``address`` received on ``channel`` (the email's text and HTML, the webhook's JSON)."""
    for call in memory.calls:
        if call.message.kind is channel and any(r.address == address for r in call.recipients):
            m = call.message
            return m.json_body or "\n".join(part for part in (m.text, m.html or "") if part)
    raise AssertionError(f"nothing sent to {address} on {channel.value}")


def test_every_channel_shows_the_impact_statement_in_each_language(
    make_runtime: Callable[..., Runtime],
) -> None:
    rt, memory = memory_runtime(make_runtime)
    people(rt)
    inc = incident(rt, Severity.MAJOR)

    published = publish_and_deliver(
        rt, draft(inc, "Card payments fail; we are sorry.", impact_statement=STATEMENT, channels=list(DIRECT))
    )

    assert published.update.impact_statement == STATEMENT
    email_en = sent(memory, ChannelKind.EMAIL, "en@example.com")
    assert "Who is affected: customers in the EU" in email_en
    assert "Not working: card payments" in email_en
    assert "Since: Wed, Nov 25, 9:05 AM UTC" in email_en, "the reader's own time (UTC here)"
    assert "Meanwhile: pay by bank transfer" in email_en
    assert "<strong>Meanwhile</strong></td><td>pay by bank transfer" in email_en, "the HTML part too"
    email_fr = sent(memory, ChannelKind.EMAIL, "fr@example.com")
    assert "Personnes concernées : customers in the EU" in email_fr
    assert "En attendant : pay by bank transfer" in email_fr
    sms_en = sent(memory, ChannelKind.SMS, "+442079460001")
    since = "Since Wed, Nov 25, 9:05 AM UTC."
    assert f"Affects customers in the EU. Not working: card payments. {since}" in sms_en
    sms_fr = sent(memory, ChannelKind.SMS, "+442079460002")
    assert "Concerne : customers in the EU. Ne fonctionne pas : card payments. Depuis mer." in sms_fr
    [page_update] = build_snapshot(rt).incidents[0].updates
    assert page_update.impact == {
        "who": "customers in the EU",
        "not_working": "card payments",
        "since": "2026-11-25T09:05:00Z",
        "workaround": "pay by bank transfer",
    }
    hook = json.loads(sent(memory, ChannelKind.WEBHOOK, "https://hooks.example.com/en"))
    assert hook["update"]["impact_statement"] == {
        "who": "customers in the EU",
        "not_working": "card payments",
        "since": "2026-11-25T09:05:00Z",
        "workaround": "pay by bank transfer",
    }


def test_an_update_without_a_statement_says_nothing_of_it(make_runtime: Callable[..., Runtime]) -> None:
    rt, memory = memory_runtime(make_runtime)
    people(rt)
    inc = incident(rt, Severity.MINOR)
    publish_and_deliver(rt, draft(inc, "Slow dashboards.", channels=list(DIRECT)))
    assert "Who is affected" not in sent(memory, ChannelKind.EMAIL, "en@example.com")
    assert json.loads(sent(memory, ChannelKind.WEBHOOK, "https://hooks.example.com/en"))["update"][
        "impact_statement"
    ] is None


def test_a_major_first_public_update_without_impact_gets_a_warning(rt: Runtime) -> None:
    inc = incident(rt, Severity.MAJOR)
    bare = draft(inc, "Checkout is failing. We are sorry.")

    warned = [f for f in preview_draft(rt, bare).findings if f.rule == "impact-missing"]
    assert [(f.level, f.field) for f in warned] == [("warn", "message")]
    assert "who is affected" in warned[0].message

    said = draft(inc, "Checkout is failing. We are sorry.", impact_statement=ImpactStatement(who="everyone"))
    assert "impact-missing" not in [f.rule for f in preview_draft(rt, said).findings]

    published = publish_and_deliver(rt, bare)
    assert "impact-missing" in [f.rule for f in published.findings], "a warning, not a block"
    later = draft(inc, "Still failing; rollback under way.")
    assert "impact-missing" not in [f.rule for f in preview_draft(rt, later).findings], "only the first"


def test_a_minor_incident_is_not_warned(rt: Runtime) -> None:
    inc = incident(rt, Severity.MINOR)
    found = preview_draft(rt, draft(inc, "Slow dashboards. Sorry.")).findings
    assert "impact-missing" not in [f.rule for f in found]


def test_the_statement_words_pass_the_leak_rules(rt: Runtime) -> None:
    inc = incident(rt, Severity.MINOR)
    leaky = ImpactStatement(workaround="connect to pg-replica-2.corp.internal directly")
    with pytest.raises(GuardrailsBlocked) as blocked:
        publish_and_deliver(rt, draft(inc, "Slow dashboards. Sorry.", impact_statement=leaky))
    assert [(f.rule, f.field) for f in blocked.value.findings if f.level == "error"] == [
        ("internal-hostname", "impact.workaround")
    ]


def test_bad_statements_are_refused_naming_the_field() -> None:
    with pytest.raises(ValidationError, match="since"):
        ImpactStatement(since=datetime(2026, 11, 25, 9, 5))  # no time zone
    with pytest.raises(ValidationError, match="who"):
        ImpactStatement(who="x" * 201)
    assert ImpactStatement(who="  ").is_empty


def test_tocsin_publish_and_preview_take_the_statement(tmp_path: Path) -> None:
    assert tocsin("init", cwd=tmp_path).code == 0
    opened = tocsin("incident", "open", "Card payments failing", "--severity", "critical", cwd=tmp_path)
    assert opened.code == 0, opened.err
    bare = tocsin(
        "preview", "1", "--message", "Card payments fail. Sorry.", "--next-update-in", "30m", cwd=tmp_path
    )
    assert bare.code == 0, bare.err
    assert "warn impact-missing" in bare.out

    said = tocsin(
        "preview", "1", "--message", "Card payments fail. Sorry.", "--next-update-in", "30m",
        "--affects", "EU customers", "--not-working", "card payments", "--since", "2026-11-25T09:05Z",
        "--workaround", "pay by bank transfer", cwd=tmp_path,
    )  # fmt: skip
    assert said.code == 0, said.err
    assert "impact-missing" not in said.out
    assert "Meanwhile: pay by bank transfer" in said.out

    wrong = tocsin("preview", "1", "--message", "x", "--since", "yesterday", cwd=tmp_path)
    assert wrong.code != 0
    assert "--since: 'yesterday' is not a time like 09:05" in wrong.out + wrong.err
    assert "Traceback" not in wrong.out + wrong.err


def test_since_as_a_clock_time_is_the_latest_such_time(rt: Runtime) -> None:
    from dispatcher.cli.crisis_options import parse_since

    clock = hand_clock(rt)
    clock.at = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)
    assert parse_since("07:30", clock.now()) == datetime(2026, 11, 25, 7, 30, tzinfo=UTC)
    assert parse_since("23:10", clock.now()) == datetime(2026, 11, 24, 23, 10, tzinfo=UTC)
    assert parse_since("2026-11-24T23:10+01:00", clock.now()) == datetime(2026, 11, 24, 22, 10, tzinfo=UTC)
    assert clock.now() - parse_since("07:59", clock.now()) == timedelta(minutes=1)
