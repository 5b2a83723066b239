"""Amends (issue 17). Given a resolved incident some customers were told about, when amends are made with
per-recipient codes from a CSV, then only the customers told (in the segment, when one is named) receive
the offer, each with their own code on every channel; staff and later subscribers receive nothing; a
subscriber without a code is recorded as not sent; and the public status page never shows it unless
asked.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from channels.base import ChannelKind
from channels.memory import MemoryAdapter
from dispatcher.audience.subscribers import add_subscribers
from dispatcher.comms.amends import read_codes, send_amends
from dispatcher.comms.closure import resolve
from dispatcher.config.settings import ChannelSettings
from dispatcher.domain.errors import InvalidInput
from dispatcher.domain.identity import Identity
from dispatcher.domain.models import Incident, Severity
from dispatcher.engine.runtime import Runtime
from dispatcher.engine.status_site import build_snapshot
from dispatcher.runners.embedded import EmbeddedRunner
from dispatcher.store.schema import deliveries
from tests.cli import tocsin
from tests.helpers import ManualClock, draft, incident, person, publish_and_deliver

ADA = Identity("ada")
START = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
POLICY = """
[segments.enterprise]
plans = ["enterprise"]
"""
OFFER = "We are sorry. Your next month is on us: code {code}"


def staged(make_runtime: Callable[..., Runtime], tmp_path: Path) -> tuple[Runtime, MemoryAdapter]:
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
        policy_file=tmp_path / "policy.toml",
    )
    rt.clock = ManualClock(START)
    return rt, memory


def affected(rt: Runtime) -> Incident:
    """Customers 0 (enterprise, email and SMS) and 1 (free) and staff member 2 are told; then resolved."""
    add_subscribers(
        rt,
        [
            person(0, sms=True, plan="enterprise", external_id="acct-0"),
            person(1, plan="free", external_id="acct-1"),
            person(2, internal=True, external_id="staff-2"),
        ],
    )
    inc = incident(rt, Severity.MINOR)
    promise = rt.clock.now() + timedelta(hours=1)
    publish_and_deliver(rt, draft(inc, "Checkout is failing. Sorry.", next_update_at=promise))
    runner = EmbeddedRunner(rt)
    resolve(rt, inc.id, ADA, runner.queue)
    runner.run_until_idle()
    add_subscribers(rt, [person(3, external_id="acct-3")])  # signed up later: never affected
    return inc


def offers(memory: MemoryAdapter) -> dict[tuple[str, str], str]:
    return {
        (call.message.kind.value, r.address): call.message.text
        for call in memory.calls
        if "next month is on us" in call.message.text
        for r in call.recipients
    }


def test_amends_reach_only_the_customers_told_each_with_their_own_code(
    make_runtime: Callable[..., Runtime], tmp_path: Path
) -> None:
    rt, memory = staged(make_runtime, tmp_path)
    inc = affected(rt)
    codes = read_codes(rt, "subscriber,code\nacct-0,FREE-AAA\nacct-1,FREE-BBB\nacct-3,FREE-CCC\n")
    runner = EmbeddedRunner(rt)

    sent = send_amends(rt, inc.id, OFFER, ADA, runner.queue, codes=codes)
    runner.run_until_idle()

    got = offers(memory)
    assert sorted(got) == [
        ("email", "person0@example.com"),
        ("email", "person1@example.com"),
        ("sms", "+12025550000"),
    ], "staff and later subscribers get nothing"
    assert "code FREE-AAA" in got[("email", "person0@example.com")]
    assert "code FREE-AAA" in got[("sms", "+12025550000")]
    assert "code FREE-BBB" in got[("email", "person1@example.com")]
    assert all("{code}" not in text for text in got.values())
    assert "No further updates are planned" not in got[("email", "person0@example.com")]
    assert sent.update.kind == "amends" and sent.without_code == 0
    with rt.engine.connect() as conn:
        ledger = {
            (r.channel, r.address): r.state
            for r in conn.execute(select(deliveries).where(deliveries.c.update_id == sent.update.id))
        }
    assert set(ledger.values()) == {"sent"}, "recorded in the ledger like any update"

    site = build_snapshot(rt)
    shown = [u.kind for item in site.everything() for u in item.updates]
    assert "amends" not in shown, "never on the public status page"


def test_a_segment_narrows_it_and_a_missing_code_is_recorded(
    make_runtime: Callable[..., Runtime], tmp_path: Path
) -> None:
    rt, memory = staged(make_runtime, tmp_path)
    inc = affected(rt)
    runner = EmbeddedRunner(rt)
    enterprise = send_amends(
        rt, inc.id, "A service credit is on its way. Sorry.", ADA, runner.queue, segment="enterprise"
    )
    runner.run_until_idle()
    assert enterprise.rows == 2  # customer 0's email and SMS
    to = {r.address for c in memory.calls if "service credit" in c.message.text for r in c.recipients}
    assert to == {"person0@example.com", "+12025550000"}

    only_one = read_codes(rt, "email,code\nPERSON0@example.com,X1\n")
    partial = send_amends(rt, inc.id, OFFER, ADA, runner.queue, codes=only_one)
    runner.run_until_idle()
    assert partial.without_code == 1
    with rt.engine.connect() as conn:
        held = conn.execute(
            select(deliveries.c.address, deliveries.c.state, deliveries.c.last_error).where(
                deliveries.c.update_id == partial.update.id, deliveries.c.state == "suppressed"
            )
        ).all()
    assert [tuple(r) for r in held] == [
        ("person1@example.com", "suppressed", "no amends code for this subscriber")
    ]


def test_asked_for_it_shows_on_the_status_page(make_runtime: Callable[..., Runtime], tmp_path: Path) -> None:
    rt, _ = staged(make_runtime, tmp_path)
    inc = affected(rt)
    runner = EmbeddedRunner(rt)
    send_amends(rt, inc.id, "Everyone gets a free weekend. Sorry.", ADA, runner.queue, on_status_page=True)
    runner.run_until_idle()
    shown = [u.message for item in build_snapshot(rt).everything() for u in item.updates]
    assert "Everyone gets a free weekend. Sorry." in shown
    page = (tmp_path / "www" / "incidents" / f"{inc.id}.html").read_text()
    assert "Everyone gets a free weekend. Sorry." in page, "the page was published again"


def test_bad_codes_and_bad_requests_are_refused_naming_the_problem(
    make_runtime: Callable[..., Runtime], tmp_path: Path
) -> None:
    rt, _ = staged(make_runtime, tmp_path)
    inc = affected(rt)
    with pytest.raises(InvalidInput) as bad:
        read_codes(rt, "subscriber,code\nacct-0,OK-1\nnobody,OK-2\nacct-1,OK-1\nacct-0,bad code\n")
    message = str(bad.value)
    assert "line 3: no subscriber with subscriber 'nobody'" in message
    assert "line 4: code 'OK-1' is also on line 2" in message
    assert "line 5: code 'bad code' is not 1 to 64 letters" in message
    with pytest.raises(InvalidInput, match="header needs a code column"):
        read_codes(rt, "name,voucher\nx,y\n")
    queue = EmbeddedRunner(rt).queue
    with pytest.raises(InvalidInput, match=r"say where each reader's goes: \{code\}"):
        send_amends(rt, inc.id, "A gift.", ADA, queue, codes=read_codes(rt, "subscriber,code\nacct-0,A1\n"))
    with pytest.raises(InvalidInput, match="no segment named 'gold'"):
        send_amends(rt, inc.id, "A gift.", ADA, queue, segment="gold")
    open_one = incident(rt, Severity.MINOR)
    with pytest.raises(InvalidInput, match="amends come after it is resolved"):
        send_amends(rt, open_one.id, "A gift.", ADA, queue)


def test_tocsin_incident_amends_with_a_codes_file(tmp_path: Path) -> None:
    assert tocsin("init", cwd=tmp_path).code == 0
    (tmp_path / "people.csv").write_text("name,email,external_id\nAda,ada@example.com,acct-1\n")
    assert tocsin("subscribers", "import", "people.csv", cwd=tmp_path).code == 0
    assert tocsin("incident", "open", "Checkout failing", "--severity", "minor", cwd=tmp_path).code == 0
    said = ["--message", "Checkout fails for some. Sorry.", "--next-update-in", "1h"]
    assert tocsin("publish", "1", "--status", "investigating", *said, cwd=tmp_path).code == 0
    assert tocsin("incident", "resolve", "1", cwd=tmp_path).code == 0
    (tmp_path / "codes.csv").write_text("subscriber,code\nacct-1,SORRY-42\n")
    done = tocsin("incident", "amends", "1", "--offer", OFFER, "--codes", "codes.csv", cwd=tmp_path)
    assert done.code == 0, done.err
    assert "amends (update upd-3) to 1 address(es) told" in done.out
    mail = next((tmp_path / "outbox" / "update-3" / "email").glob("*.eml")).read_text()
    assert "code SORRY-42" in mail
    assert not list((tmp_path / "outbox" / "update-3").glob("social/*")), "not posted to the world"
    (tmp_path / "bad.csv").write_text("subscriber,code\nacct-9,X\n")
    bad = tocsin("incident", "amends", "1", "--offer", OFFER, "--codes", "bad.csv", cwd=tmp_path)
    assert bad.code != 0 and "line 2: no subscriber with subscriber 'acct-9'" in bad.err
