"""An incident moves investigating → identified → monitoring → resolved by the policy's rules, every
move is on its timeline, and an incident that breaks again soon after resolving is reopened."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from dispatcher.comms.closure import resolve
from dispatcher.comms.incidents import get_incident, open_incident
from dispatcher.comms.lifecycle import change_status, open_or_reopen, reopen, set_owner, timeline
from dispatcher.comms.publish import publish
from dispatcher.domain.errors import InvalidInput
from dispatcher.domain.identity import Identity
from dispatcher.domain.models import Incident, IncidentDraft, IncidentStatus, Severity
from dispatcher.engine.runtime import Runtime
from dispatcher.store.schema import incident_events, updates
from tests.cli import tocsin
from tests.helpers import ManualClock, RecordingQueue, draft, hand_clock

MONITORING, RESOLVED = IncidentStatus.MONITORING, IncidentStatus.RESOLVED


@pytest.fixture
def clock(rt: Runtime) -> ManualClock:
    return hand_clock(rt)


def opened(rt: Runtime, title: str = "Checkout failing", severity: Severity = Severity.MAJOR) -> int:
    return open_incident(rt, IncidentDraft(title=title, severity=severity, components=["checkout"])).id


def events(rt: Runtime, incident_id: int) -> list[tuple[str, str | None, str | None, str | None, str | None]]:
    with rt.engine.connect() as conn:
        rows = conn.execute(
            select(
                incident_events.c.kind,
                incident_events.c.actor,
                incident_events.c.from_status,
                incident_events.c.to_status,
                incident_events.c.reason,
            )
            .where(incident_events.c.incident_id == incident_id)
            .order_by(incident_events.c.id)
        ).all()
    return [tuple(r) for r in rows]  # type: ignore[misc]


def resolved_by(rt: Runtime, incident_id: int, who: str = "ada", **fields: object) -> Incident:
    """Resolve as a person does (it tells everyone told: ``dispatcher.comms.closure``)."""
    return resolve(rt, incident_id, Identity(who), RecordingQueue(), **fields).incident  # type: ignore[arg-type]


def last_event(
    rt: Runtime, incident_id: int, kind: str
) -> tuple[str, str | None, str | None, str | None, str | None]:
    return [e for e in events(rt, incident_id) if e[0] == kind][-1]


def update_count(rt: Runtime) -> int:
    with rt.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(updates)).scalar_one())


def test_each_move_is_an_event_with_who_and_why(rt: Runtime, clock: ManualClock) -> None:
    inc = opened(rt)
    change_status(rt, inc, IncidentStatus.IDENTIFIED, "ada", reason="bad deploy 09:05")
    clock.advance(minutes=5)
    moved = change_status(rt, inc, MONITORING, "ada")

    assert moved.status is MONITORING and moved.monitoring_since == clock.now()
    assert events(rt, inc) == [
        ("opened", None, None, "investigating", None),
        ("status", "ada", "investigating", "identified", "bad deploy 09:05"),
        ("status", "ada", "identified", "monitoring", None),
    ]
    with pytest.raises(InvalidInput, match="already monitoring"):
        change_status(rt, inc, MONITORING, "ada")
    # A fix that did not hold goes back to investigating; the monitoring clock stops.
    assert change_status(rt, inc, IncidentStatus.INVESTIGATING, "ada").monitoring_since is None


def test_resolving_waits_for_the_monitoring_hold_and_says_how_long_is_left(
    rt: Runtime, clock: ManualClock
) -> None:
    inc = opened(rt, severity=Severity.MAJOR)  # built-in policy: major holds 30m in monitoring
    with pytest.raises(InvalidInput, match="move it to monitoring first"):
        resolved_by(rt, inc)
    change_status(rt, inc, MONITORING, "ada")
    clock.advance(minutes=12)
    with pytest.raises(InvalidInput, match=r"monitoring for 12m.*18m left"):
        resolved_by(rt, inc)
    assert get_incident(rt, inc).status is MONITORING, "nothing changed"
    assert update_count(rt) == 0, "nothing written"

    clock.advance(minutes=18)
    resolved = resolved_by(rt, inc)

    assert resolved.status is RESOLVED and resolved.resolved_at == clock.now()
    assert last_event(rt, inc, "status")[:4] == ("status", "ada", "monitoring", "resolved")


def test_a_minor_incident_has_no_hold(rt: Runtime, clock: ManualClock) -> None:
    inc = opened(rt, severity=Severity.MINOR)
    assert resolved_by(rt, inc).status is RESOLVED


def test_forcing_a_resolve_needs_a_reason_which_is_recorded(rt: Runtime, clock: ManualClock) -> None:
    inc = opened(rt, severity=Severity.CRITICAL)
    with pytest.raises(InvalidInput, match="reason: forcing a resolve needs a reason"):
        resolved_by(rt, inc, force=True, reason="  ")

    resolved_by(rt, inc, force=True, reason="provider confirmed full recovery")

    assert get_incident(rt, inc).status is RESOLVED
    assert last_event(rt, inc, "forced_resolve") == (
        "forced_resolve",
        "ada",
        "investigating",
        "resolved",
        "provider confirmed full recovery",
    )


def test_a_status_update_moves_the_incident_through_the_same_rules(rt: Runtime, clock: ManualClock) -> None:
    inc = opened(rt)
    queue = RecordingQueue()
    promise = clock.now() + timedelta(hours=1)

    with pytest.raises(InvalidInput, match="move it to monitoring first"):
        publish(rt, draft(get_incident(rt, inc), "All fixed. Sorry.", status=RESOLVED), queue)
    assert update_count(rt) == 0 and queue.fanouts == [], "refused before anything is written"
    assert get_incident(rt, inc).status is IncidentStatus.INVESTIGATING

    watching = publish(
        rt,
        draft(
            get_incident(rt, inc), "Rolled back; watching. Sorry.", status=MONITORING, next_update_at=promise
        ),
        queue,
    ).update
    assert get_incident(rt, inc).monitoring_since == clock.now()
    with rt.engine.connect() as conn:
        event = conn.execute(
            select(incident_events.c.kind, incident_events.c.update_id).where(
                incident_events.c.to_status == "monitoring"
            )
        ).one()
    assert tuple(event) == ("status", watching.id)

    clock.advance(minutes=30)
    publish(rt, draft(get_incident(rt, inc), "Fixed since 09:40. Sorry.", status=RESOLVED), queue)
    after = get_incident(rt, inc)
    assert after.status is RESOLVED and after.next_update_at is None


def test_a_resolved_incident_takes_no_open_status_until_reopened(rt: Runtime, clock: ManualClock) -> None:
    inc = opened(rt, severity=Severity.MINOR)
    resolved_by(rt, inc)
    with pytest.raises(InvalidInput, match=f"reopen it first .*tocsin incident reopen {inc}"):
        publish(
            rt,
            draft(get_incident(rt, inc), next_update_at=clock.now() + timedelta(hours=1)),
            RecordingQueue(),
        )
    with pytest.raises(InvalidInput, match="reason"):
        reopen(rt, inc, "ada", " ")

    back = reopen(rt, inc, "ada", "errors are back")

    assert (
        back.status is IncidentStatus.INVESTIGATING and back.reopened_count == 1 and back.resolved_at is None
    )
    assert events(rt, inc)[-1] == ("reopened", "ada", "resolved", "investigating", "errors are back")
    with pytest.raises(InvalidInput, match="not resolved"):
        reopen(rt, inc, "ada", "again")


def test_the_same_title_breaking_again_within_the_flap_window_reopens(
    rt: Runtime, clock: ManualClock
) -> None:
    first = opened(rt, "API errors", Severity.MINOR)
    resolved_by(rt, first)
    clock.advance(minutes=119)  # built-in flap window: 2h

    again = open_or_reopen(rt, IncidentDraft(title="API errors", severity=Severity.MINOR), actor="ada")

    assert again.action == "reopened" and again.incident.id == first
    assert again.incident.status is IncidentStatus.INVESTIGATING and again.incident.reopened_count == 1
    assert events(rt, first)[-1][0] == "reopened"
    other = opened(rt, "Login slow", Severity.MINOR)
    assert other != first, "another title opens another incident"

    resolved_by(rt, first)
    clock.advance(hours=2, seconds=1)
    later = opened(rt, "API errors", Severity.MINOR)
    assert later not in (first, other), "past the flap window it is a new incident"


def test_monitorings_key_finds_the_open_incident_or_reopens_a_recent_one(
    rt: Runtime, clock: ManualClock
) -> None:
    alert = IncidentDraft(title="HighErrorRate", severity=Severity.MINOR)
    first = open_or_reopen(rt, alert, source="alertmanager", external_key="group-1")
    assert first.action == "opened"
    assert open_or_reopen(rt, alert, source="alertmanager", external_key="group-1").action == "existing"

    resolved_by(rt, first.incident.id, "grace")
    clock.advance(minutes=30)
    renamed = alert.model_copy(update={"title": "HighErrorRate (api)"})
    reopened = open_or_reopen(rt, renamed, source="alertmanager", external_key="group-1")
    assert (reopened.action, reopened.incident.id) == ("reopened", first.incident.id)

    resolved_by(rt, first.incident.id, "grace")
    clock.advance(hours=3)
    fresh = open_or_reopen(rt, renamed, source="alertmanager", external_key="group-1")

    assert fresh.action == "opened" and fresh.incident.id != first.incident.id
    assert fresh.incident.external_key == "group-1", "the key moves to the new incident"
    assert get_incident(rt, first.incident.id).external_key is None


def test_owner_is_set_at_open_and_later(rt: Runtime, clock: ManualClock) -> None:
    inc = open_incident(rt, IncidentDraft(title="Checkout failing", owner="grace"))
    assert inc.owner == "grace"
    assert set_owner(rt, inc.id, "alan", "grace").owner == "alan"
    assert events(rt, inc.id)[-1] == ("owner", "grace", None, None, "owner: grace → alan")


def test_the_timeline_puts_events_and_updates_in_time_order(rt: Runtime, clock: ManualClock) -> None:
    inc = opened(rt, severity=Severity.MINOR)
    clock.advance(minutes=1)
    first = publish(
        rt, draft(get_incident(rt, inc), next_update_at=clock.now() + timedelta(hours=1)), RecordingQueue()
    ).update
    clock.advance(minutes=1)
    change_status(rt, inc, MONITORING, "ada")
    clock.advance(minutes=1)
    last = publish(
        rt, draft(get_incident(rt, inc), "Fixed. Sorry.", status=RESOLVED), RecordingQueue()
    ).update

    entries = timeline(rt, inc)

    assert [(e.kind, e.update_id) for e in entries] == [
        ("opened", None),
        ("first_word", first.id),
        ("update", first.id),
        ("status", None),
        ("status", last.id),
        ("closure", last.id),
        ("update", last.id),
    ]
    assert [e.at for e in entries] == sorted(e.at for e in entries)
    assert entries[2].update is not None and entries[2].update.message == first.message


def test_the_cli_moves_resolves_reopens_and_shows_the_timeline(tmp_path: Path) -> None:
    as_alice = {"TOCSIN_USER": "alice"}
    assert tocsin("init", cwd=tmp_path).code == 0
    opened_ = tocsin("incident", "open", "Checkout failing", "--owner", "grace", cwd=tmp_path)
    assert "opened incident inc-1" in opened_.out, opened_.err
    moved = tocsin(
        "incident", "status", "1", "--to", "monitoring", "--reason", "rolled back", cwd=tmp_path, env=as_alice
    )
    assert moved.code == 0 and "now monitoring" in moved.out, moved.err

    early = tocsin("incident", "resolve", "1", cwd=tmp_path)
    assert early.code == 1 and "left" in early.err and "Traceback" not in early.err
    assert len(early.err.strip().splitlines()) == 1, early.err
    no_reason = tocsin("incident", "resolve", "1", "--force", cwd=tmp_path)
    assert no_reason.code == 1 and "reason" in no_reason.err
    forced = tocsin(
        "incident", "resolve", "1", "--force", "--reason", "vendor confirmed", "--as", "bob", cwd=tmp_path
    )
    assert forced.code == 0 and "resolved" in forced.out, forced.err
    reopened = tocsin("incident", "reopen", "1", "--reason", "errors again", cwd=tmp_path, env=as_alice)
    assert reopened.code == 0, reopened.err

    shown = tocsin("incident", "show", "1", cwd=tmp_path)

    assert shown.code == 0, shown.err
    assert "owner: grace" in shown.out
    lines = shown.out.splitlines()
    assert any("status" in line and "alice" in line and "rolled back" in line for line in lines)
    assert any("forced_resolve" in line and "bob" in line and "vendor confirmed" in line for line in lines)
    assert any("reopened" in line and "alice" in line for line in lines)
    with_status = [line for line in lines if "monitoring → resolved" in line]
    assert with_status, shown.out
