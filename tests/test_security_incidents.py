"""Security and data incidents (issue 17). Given a security incident, a public update is refused until its
data facts are given (what data may be affected, what is not, what customers should do, what the company
is doing), or an override reason is recorded; once given, every channel shows the facts first.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import func, select

from channels.base import ChannelKind
from channels.memory import MemoryAdapter
from dispatcher.comms.attention import flags
from dispatcher.comms.first_word import send_first_notice
from dispatcher.comms.incidents import get_incident, open_incident
from dispatcher.comms.lifecycle import timeline
from dispatcher.comms.security import set_data_facts
from dispatcher.config.settings import ChannelSettings
from dispatcher.domain.crisis import DataFacts, ImpactStatement
from dispatcher.domain.errors import GuardrailsBlocked, InvalidInput
from dispatcher.domain.identity import Identity
from dispatcher.domain.models import Audience, Incident, IncidentDraft, Severity
from dispatcher.engine.runtime import Runtime
from dispatcher.engine.status_site import build_snapshot
from dispatcher.store.schema import updates
from tests.cli import tocsin
from tests.helpers import RecordingQueue, draft, incident, publish_and_deliver, subscribe

FACTS = DataFacts(
    data_affected="names and email addresses",
    data_not_affected="passwords and card numbers",
    customer_actions="be wary of emails asking for your password",
    company_actions="we closed the hole and reset every session",
)
TEXT = "Someone reached our customer list. We are sorry."


def breach(rt: Runtime, facts: DataFacts | None = None) -> Incident:
    return open_incident(
        rt,
        IncidentDraft(title="Unauthorised access to customer data", kind="security", data_facts=facts),
    )


def written(rt: Runtime) -> int:
    with rt.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(updates)).scalar_one())


def test_a_security_incident_cannot_go_public_without_its_data_facts(rt: Runtime) -> None:
    inc = breach(rt)
    with pytest.raises(GuardrailsBlocked) as blocked:
        publish_and_deliver(rt, draft(inc, TEXT))
    [finding] = [f for f in blocked.value.findings if f.level == "error"]
    assert finding.rule == "data-facts-missing"
    for owed in ("what data may be affected", "what data is not affected", "what customers should do",
                 "what the company is doing"):  # fmt: skip
        assert owed in finding.message
    assert written(rt) == 0, "nothing half-written"

    set_data_facts(rt, inc.id, DataFacts(data_affected="names", data_not_affected="passwords"), "ada")
    with pytest.raises(GuardrailsBlocked, match="what customers should do; what the company is doing"):
        publish_and_deliver(rt, draft(inc, TEXT))


def test_an_override_reason_is_recorded_with_the_update(rt: Runtime) -> None:
    subscribe(rt, 1)
    inc = breach(rt)
    published = publish_and_deliver(
        rt, draft(inc, TEXT, override_reason="legal asked us to say something within the hour")
    )
    assert published.update.override_reason == "legal asked us to say something within the hour"
    assert [(f.rule, f.level) for f in published.findings if f.level == "error"] == [
        ("data-facts-missing", "error")
    ]


def test_staff_hear_of_it_before_the_facts_are_known(rt: Runtime) -> None:
    inc = breach(rt)
    staff = draft(inc, "Staff: breach under investigation.", audience=Audience.INTERNAL)
    assert publish_and_deliver(rt, staff).created


def test_the_first_notice_waits_for_the_facts_too(rt: Runtime) -> None:
    inc = breach(rt)
    with pytest.raises(GuardrailsBlocked, match="data-facts-missing"):
        send_first_notice(rt, inc.id, Identity("ada", None), RecordingQueue())


def test_once_given_every_channel_shows_the_facts_first(make_runtime: Callable[..., Runtime]) -> None:
    memory = MemoryAdapter()
    direct = (ChannelKind.EMAIL, ChannelKind.SMS, ChannelKind.WEBHOOK)
    # Room for the facts and the message in the SMS (the default budget would cut the message: the
    # facts come first in the text that may be shortened, so they are the last to go).
    channels = {kind: ChannelSettings(providers=["memory"]) for kind in direct}
    channels[ChannelKind.SMS] = ChannelSettings(providers=["memory"], max_segments=4)
    rt = make_runtime(channels=channels, adapters={"memory": memory})
    subscribe(rt, 1, sms=True, webhook="https://hooks.example.com")
    inc = breach(rt, FACTS)

    publish_and_deliver(rt, draft(inc, TEXT, channels=list(direct)))

    by_channel = {call.message.kind: call.message for call in memory.calls}
    email = by_channel[ChannelKind.EMAIL].text
    assert email.index("Data that may be affected: names and email addresses") < email.index(TEXT)
    assert "What you should do: be wary of emails asking for your password" in email
    html = by_channel[ChannelKind.EMAIL].html or ""
    assert "<strong>Not affected</strong></td><td>passwords and card numbers" in html
    assert html.index("Your data") < html.index("Someone reached our customer list")
    sms = by_channel[ChannelKind.SMS].text
    assert sms.index("Not affected: passwords and card numbers.") < sms.index(TEXT)
    hook = json.loads(by_channel[ChannelKind.WEBHOOK].json_body or "{}")
    assert hook["incident"]["kind"] == "security"
    assert hook["data_facts"] == FACTS.model_dump()
    [shown] = build_snapshot(rt).incidents
    assert shown.data_facts == FACTS.model_dump(), "the status page shows them too"


def test_an_incident_found_to_be_a_breach_becomes_a_security_incident(rt: Runtime) -> None:
    inc = incident(rt, Severity.CRITICAL)
    assert get_incident(rt, inc.id).kind == "incident"
    moved = set_data_facts(rt, inc.id, DataFacts(data_affected="order history"), "ada")
    assert moved.kind == "security"
    assert moved.data_facts == DataFacts(data_affected="order history")
    kinds = [e.kind for e in timeline(rt, inc.id)]
    assert "kind" in kinds and "data_facts" in kinds
    assert any("data facts owed before it goes public" in f for f in flags(rt, moved))
    complete = set_data_facts(rt, inc.id, FACTS, "ada")
    assert not any("data facts" in f for f in flags(rt, complete))


def test_facts_are_refused_for_a_maintenance_window_or_when_empty(rt: Runtime) -> None:
    inc = breach(rt)
    with pytest.raises(InvalidInput, match="give at least one"):
        set_data_facts(rt, inc.id, DataFacts(), "ada")


def test_the_facts_words_pass_the_leak_rules(rt: Runtime) -> None:
    inc = breach(rt, FACTS.model_copy(update={"company_actions": "we rotated the keys on 10.2.3.4"}))
    with pytest.raises(GuardrailsBlocked) as blocked:
        publish_and_deliver(rt, draft(inc, TEXT))
    assert [(f.rule, f.field) for f in blocked.value.findings if f.level == "error"] == [
        ("private-address", "data_facts.company_actions")
    ]


def test_tocsin_incident_facts_then_publish(tmp_path: Path) -> None:
    assert tocsin("init", cwd=tmp_path).code == 0
    (tmp_path / "people.csv").write_text("name,email\nAda,ada@example.com\n")
    assert tocsin("subscribers", "import", "people.csv", cwd=tmp_path).code == 0
    opened = tocsin("incident", "open", "Unauthorised access", "--kind", "security", cwd=tmp_path)
    assert opened.code == 0, opened.err
    assert "opened security incident inc-1" in opened.out
    message = ["--message", TEXT, "--next-update-in", "1h", "--affects", "all customers"]

    blocked = tocsin("publish", "1", "--status", "investigating", *message, cwd=tmp_path)
    assert blocked.code != 0
    assert "data-facts-missing" in blocked.out + blocked.err
    assert "Traceback" not in blocked.out + blocked.err

    facts = tocsin(
        "incident", "facts", "1", "--data-affected", "names and email addresses",
        "--data-not-affected", "passwords", "--customers-should", "watch for phishing",
        "--we-are-doing", "resetting every session", cwd=tmp_path,
    )  # fmt: skip
    assert facts.code == 0, facts.err
    assert "still owed" not in facts.out

    shown = tocsin("incident", "show", "1", cwd=tmp_path)
    assert "what data is not affected: passwords" in shown.out

    sent = tocsin("publish", "1", "--status", "investigating", *message, cwd=tmp_path)
    assert sent.code == 0, sent.err
    assert "published update upd-1" in sent.out
    mail = next((tmp_path / "outbox").glob("**/*.eml")).read_text()
    assert "Data that may be affected: names and email addresses" in mail


def test_the_status_page_shows_the_facts_first(make_runtime: Callable[..., Runtime], tmp_path: Path) -> None:
    rt = make_runtime(
        channels={ChannelKind.STATUSPAGE: ChannelSettings(providers=["statuspage"])},
        providers={"statuspage": {"directory": str(tmp_path / "www")}},
    )
    inc = breach(rt, FACTS)
    said = draft(inc, TEXT, impact_statement=ImpactStatement(who="all customers"))
    publish_and_deliver(rt, said)
    page = (tmp_path / "www" / "incidents" / f"{inc.id}.html").read_text()
    assert page.index("Data not affected</dt><dd>passwords and card numbers") < page.index("Someone reached")
    assert "Who is affected: all customers." in page


def test_an_sms_too_short_for_everything_keeps_the_facts_and_cuts_the_message(
    make_runtime: Callable[..., Runtime],
) -> None:
    memory = MemoryAdapter()
    rt = make_runtime(
        channels={ChannelKind.SMS: ChannelSettings(providers=["memory"], max_segments=2)},
        adapters={"memory": memory},
    )
    subscribe(rt, 1, sms=True)
    inc = breach(rt, FACTS)

    publish_and_deliver(rt, draft(inc, TEXT, channels=[ChannelKind.SMS]))

    [call] = memory.calls
    assert "Data that may be affected: names and email addresses." in call.message.text
    assert "Not affected: passwords and card numbers." in call.message.text
    assert TEXT not in call.message.text, "the message, not the facts, gave way to the budget"
