"""Every update is sent under a policy and says which; the policy picks channels and audiences, the
promise of the next update is tracked, guardrail errors block unless overridden, and
``tocsin policy check`` tells a user whether their policy file is right."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from channels.base import ChannelKind
from dispatcher.comms.incidents import get_incident
from dispatcher.comms.publish import get_update, publish
from dispatcher.domain.errors import GuardrailsBlocked, InvalidInput
from dispatcher.domain.models import Audience, IncidentStatus, Severity, Update
from dispatcher.engine.runtime import Runtime
from dispatcher.store.engine import get_engine
from dispatcher.store.schema import incidents, updates
from tests.cli import tocsin
from tests.helpers import RecordingQueue, draft, hand_clock, incident

POLICY = """
version = "2026-11-a"

[severity.minor]
cadence = "3h"
channels = ["email"]
audiences = ["public"]

[severity.major]
cadence = "1h"
resolve_hold = "30m"

[severity.critical]
cadence = "30m"
resolve_hold = "30m"
needs_approval = true
"""


@pytest.fixture
def policy_rt(make_runtime: Callable[..., Runtime], tmp_path: Path) -> Runtime:
    path = tmp_path / "policies" / "severity.toml"  # not ./policy.toml: `rt` keeps the built-in policy
    path.parent.mkdir()
    path.write_text(POLICY)
    return make_runtime(policy_file=path)


def count_updates(rt: Runtime) -> int:
    with rt.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(updates)).scalar_one())


def later(rt: Runtime, minutes: int = 60) -> datetime:
    return rt.clock.now() + timedelta(minutes=minutes)


def test_every_update_records_the_policy_version_and_severity(policy_rt: Runtime, rt: Runtime) -> None:
    inc = incident(policy_rt, Severity.MAJOR)
    sent = publish(policy_rt, draft(inc, next_update_at=later(policy_rt)), RecordingQueue()).update
    assert (sent.policy_version, sent.severity) == ("2026-11-a", "major")

    inc2 = incident(rt, Severity.MINOR)
    builtin = publish(rt, draft(inc2, next_update_at=later(rt)), RecordingQueue()).update
    assert (builtin.policy_version, builtin.severity) == ("builtin", "minor")


def test_promises_are_kept_or_broken_and_the_incident_holds_the_latest(rt: Runtime) -> None:
    clock = hand_clock(rt)
    inc = incident(rt, Severity.MINOR)
    queue = RecordingQueue()

    def say(message: str, minutes: int | None, **fields: object) -> Update:
        promise = clock.now() + timedelta(minutes=minutes) if minutes else None
        return publish(rt, draft(inc, message, next_update_at=promise, **fields), queue).update

    first = say("Checkout fails for some. Sorry.", 30)
    assert first.promise_state == "open"
    assert get_incident(rt, inc.id).next_update_at == first.next_update_at
    with rt.engine.begin() as conn:  # the follow-up duty reminded the owner
        conn.execute(update(incidents).values(promise_reminded_at=clock.now()))

    clock.advance(minutes=20)
    second = say("Rolling back now. Sorry.", 30)
    assert get_update(rt, first.id).promise_state == "kept", "came before the promised time"
    assert second.promise_state == "open"
    now_promised = get_incident(rt, inc.id)
    assert now_promised.next_update_at == second.next_update_at
    assert now_promised.promise_reminded_at is None

    staff = say("Staff: rollback 50% done", 10, audience=Audience.INTERNAL)
    assert staff.promise_state is None, "internal updates promise the public nothing"
    assert get_incident(rt, inc.id).next_update_at == second.next_update_at

    clock.advance(minutes=40)  # 10 minutes past the second promise
    third = say("Rollback done, watching. Sorry.", 30, status=IncidentStatus.MONITORING)
    assert get_update(rt, second.id).promise_state == "broken"

    clock.advance(minutes=5)
    last = say("Resolved. Sorry for the trouble.", None, status=IncidentStatus.RESOLVED)
    assert get_update(rt, third.id).promise_state == "kept"
    assert last.promise_state is None
    assert get_incident(rt, inc.id).next_update_at is None, "nothing is owed once resolved"


def test_the_policy_picks_channels_and_refuses_audiences_it_does_not_allow(policy_rt: Runtime) -> None:
    minor = incident(policy_rt, Severity.MINOR)
    queue = RecordingQueue()

    by_policy = publish(policy_rt, draft(minor, next_update_at=later(policy_rt)), queue).update
    chosen = publish(
        policy_rt,
        draft(minor, "SMS only. Sorry.", next_update_at=later(policy_rt), channels=[ChannelKind.SMS]),
        queue,
    ).update
    with pytest.raises(InvalidInput, match=r"audience: minor incidents go to public .*not internal"):
        publish(policy_rt, draft(minor, "Staff note", audience=Audience.INTERNAL), queue)

    assert by_policy.channels == [ChannelKind.EMAIL]
    assert chosen.channels == [ChannelKind.SMS], "the author's choice wins"
    assert count_updates(policy_rt) == 2, "the refused one left nothing behind"
    major = incident(policy_rt, Severity.MAJOR)
    everywhere = publish(policy_rt, draft(major, next_update_at=later(policy_rt)), queue).update
    assert set(everywhere.channels) == set(policy_rt.settings.enabled_channels())


def test_guardrail_errors_block_unless_an_override_reason_is_recorded(rt: Runtime) -> None:
    inc = incident(rt, Severity.MAJOR)
    queue = RecordingQueue()
    no_promise = draft(inc, "We are looking into it. Sorry.", next_update_at=None)

    with pytest.raises(GuardrailsBlocked, match="next-update-missing") as blocked:
        publish(rt, no_promise, queue)
    assert [f.rule for f in blocked.value.findings if f.level == "error"] == ["next-update-missing"]
    assert count_updates(rt) == 0 and queue.fanouts == []

    overridden = publish(
        rt, no_promise.model_copy(update={"override_reason": "status page is down, promise by phone"}), queue
    )

    assert overridden.created and queue.fanouts == [overridden.update.id]
    assert overridden.update.override_reason == "status page is down, promise by phone"
    assert "next-update-missing" in [f.rule for f in overridden.findings]


def test_texts_tocsin_writes_from_approved_templates_skip_guardrails(rt: Runtime) -> None:
    inc = incident(rt, Severity.MAJOR)
    holding = draft(inc, "No news yet.", next_update_at=None, kind="holding")
    assert publish(rt, holding, RecordingQueue()).created


def test_policy_check_prints_the_policy_or_names_the_bad_field(tmp_path: Path) -> None:
    (tmp_path / "policy.toml").write_text(POLICY)
    good = tocsin("policy", "check", cwd=tmp_path)
    assert good.code == 0, good.err
    assert "2026-11-a" in good.out
    minor_row = next(line for line in good.out.splitlines() if "minor" in line)
    assert "email" in minor_row and "3h" in minor_row
    critical_row = next(line for line in good.out.splitlines() if "critical" in line)
    assert "second person" in critical_row and "30m" in critical_row

    (tmp_path / "broken.toml").write_text(POLICY.replace('cadence = "3h"', 'cadence = "soon"'))
    bad = tocsin("policy", "check", "broken.toml", cwd=tmp_path)
    assert bad.code == 1
    assert "broken.toml" in bad.err and "severity.minor.cadence" in bad.err
    assert len(bad.err.strip().splitlines()) == 1 and "Traceback" not in bad.err
    missing = tocsin("policy", "check", "nope.toml", cwd=tmp_path)
    assert missing.code == 1 and "nope.toml" in missing.err


def test_publish_cli_promises_by_cadence_and_overrides_guardrails_with_a_reason(tmp_path: Path) -> None:
    assert tocsin("init", cwd=tmp_path).code == 0
    tocsin("incident", "open", "Search slow", "--severity", "minor", cwd=tmp_path)
    args = [
        "publish",
        "1",
        "--status",
        "investigating",
        "--message",
        "Search is slow. Sorry.",
        "--channel",
        "email",
    ]

    blocked = tocsin(*args, cwd=tmp_path)
    assert blocked.code == 1 and "next-update-missing" in blocked.err and "Traceback" not in blocked.err

    by_cadence = tocsin(*args, "--next-update-in", "cadence", cwd=tmp_path)
    assert by_cadence.code == 0, by_cadence.err
    overridden = tocsin(*args, "--override-reason", "promised on the phone bridge", cwd=tmp_path)
    assert overridden.code == 0, overridden.err
    assert "overridden: next-update-missing" in overridden.out

    with get_engine(f"sqlite:///{tmp_path / 'tocsin.db'}").connect() as conn:
        rows = conn.execute(
            select(updates.c.published_at, updates.c.next_update_at, updates.c.override_reason).order_by(
                updates.c.id
            )
        ).all()
    assert len(rows) == 2
    published_at, promise, _ = rows[0]
    assert promise - published_at == pytest.approx(timedelta(hours=3), abs=timedelta(seconds=30))
    assert rows[1].override_reason == "promised on the phone bridge"
