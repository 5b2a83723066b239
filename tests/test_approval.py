"""Public updates of severities that need approval wait for a second, different person; nothing is
sent, and the incident does not move, until someone else approves."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from channels.base import ChannelKind
from dispatcher.access.tokens import Scope, create_token
from dispatcher.comms.approval import approve, pending_approvals, reject
from dispatcher.comms.closure import resolve
from dispatcher.comms.incidents import get_incident
from dispatcher.comms.publish import get_update, publish
from dispatcher.domain.errors import InvalidInput
from dispatcher.domain.identity import Identity
from dispatcher.domain.models import Audience, Incident, IncidentStatus, Severity, UpdateDraft, UpdateState
from dispatcher.engine.runtime import Runtime
from dispatcher.runners.embedded import EmbeddedRunner
from dispatcher.store.schema import incident_events
from tests.cli import tocsin
from tests.helpers import RecordingQueue, draft, incident, states, subscribe


def person(rt: Runtime, name: str) -> Identity:
    """Someone with a personal token: approvals compare the tokens, never typed names."""
    token, _ = create_token(rt, name, [Scope.PUBLISH])
    return Identity(name, token.id, token.name)


def critical_draft(
    rt: Runtime, inc: Incident, message: str = "Payments fail. We are sorry.", **fields: object
) -> UpdateDraft:
    fields.setdefault("next_update_at", rt.clock.now() + timedelta(minutes=30))
    fields.setdefault("channels", [ChannelKind.EMAIL])
    fields.setdefault("author", "ada")
    return draft(inc, message, **fields)


def test_a_critical_public_update_waits_and_is_sent_once_someone_else_approves(
    rt: Runtime, tmp_path: Path
) -> None:
    subscribe(rt, 4)
    inc = incident(rt, Severity.CRITICAL)
    runner = EmbeddedRunner(rt)
    ada, grace = person(rt, "ada"), person(rt, "grace")

    waiting = publish(
        rt,
        critical_draft(rt, inc, status=IncidentStatus.IDENTIFIED, author_token_id=ada.token_id),
        runner.queue,
    )
    runner.run_until_idle()

    assert waiting.update.state is UpdateState.PENDING_APPROVAL
    assert states(rt, waiting.update.id) == {}, "nothing sent"
    after_writing = get_incident(rt, inc.id)
    assert after_writing.status is IncidentStatus.INVESTIGATING, "the incident moves when people are told"
    assert after_writing.next_update_at is None, "nor is anything promised yet"
    assert [u.id for u in pending_approvals(rt)] == [waiting.update.id]

    with pytest.raises(InvalidInput, match="written by ada: someone else must approve it"):
        approve(rt, waiting.update.id, ada, runner.queue)
    with pytest.raises(InvalidInput, match="written by ada"):
        approve(rt, waiting.update.id, person(rt, "ADA "), runner.queue)  # her second token
    with pytest.raises(InvalidInput, match="proven by a token"):
        approve(rt, waiting.update.id, Identity("grace"), runner.queue)  # a typed name
    approved = approve(rt, waiting.update.id, grace, runner.queue)
    runner.run_until_idle()

    assert approved.approved_by == "grace" and approved.approved_at is not None
    assert states(rt, waiting.update.id) == {"sent": 4}
    assert len(list((tmp_path / "outbox").glob(f"update-{waiting.update.id}/email/*.eml"))) == 4
    released = get_incident(rt, inc.id)
    assert released.status is IncidentStatus.IDENTIFIED
    assert released.next_update_at == waiting.update.next_update_at
    assert get_update(rt, waiting.update.id).promise_state == "open"
    assert pending_approvals(rt) == []
    with rt.engine.connect() as conn:
        kinds = conn.execute(
            select(incident_events.c.kind, incident_events.c.actor).where(
                incident_events.c.update_id == waiting.update.id
            )
        ).all()
    assert sorted(tuple(k) for k in kinds) == [
        ("approved", "grace"),
        ("first_word", "grace"),
        ("status", "grace"),
    ]
    with pytest.raises(InvalidInput, match="not waiting for approval"):
        approve(rt, waiting.update.id, person(rt, "alan"), runner.queue)


def test_internal_updates_and_tocsins_own_texts_never_wait(rt: Runtime) -> None:
    inc = incident(rt, Severity.CRITICAL)
    queue = RecordingQueue()
    staff = publish(rt, critical_draft(rt, inc, "Staff: payments down", audience=Audience.INTERNAL), queue)
    holding = publish(rt, critical_draft(rt, inc, "No news yet.", kind="holding"), queue)

    assert staff.update.state is UpdateState.PENDING and holding.update.state is UpdateState.PENDING
    assert queue.fanouts == [staff.update.id, holding.update.id]


def test_severities_without_approval_go_out_at_once(rt: Runtime) -> None:
    queue = RecordingQueue()
    published = publish(rt, critical_draft(rt, incident(rt, Severity.MAJOR)), queue)
    assert published.update.state is UpdateState.PENDING and queue.fanouts == [published.update.id]


def test_a_rejected_update_is_never_sent(rt: Runtime) -> None:
    subscribe(rt, 2)
    inc = incident(rt, Severity.CRITICAL)
    queue = RecordingQueue()
    waiting = publish(rt, critical_draft(rt, inc), queue).update

    grace = person(rt, "grace")
    with pytest.raises(InvalidInput, match="reason"):
        reject(rt, waiting.id, grace, "  ")
    rejected = reject(rt, waiting.id, grace, "names the vendor; legal has not cleared it")

    assert rejected.state is UpdateState.REJECTED
    assert (rejected.rejected_by, rejected.rejected_reason) == (
        "grace",
        "names the vendor; legal has not cleared it",
    )
    with pytest.raises(InvalidInput, match="rejected, not waiting for approval"):
        approve(rt, waiting.id, person(rt, "alan"), queue)
    assert queue.fanouts == [] and states(rt, waiting.id) == {}
    assert pending_approvals(rt) == []
    with rt.engine.connect() as conn:
        event = conn.execute(
            select(incident_events.c.kind, incident_events.c.reason).where(
                incident_events.c.update_id == waiting.id
            )
        ).one()
    assert tuple(event) == ("rejected", "names the vendor; legal has not cleared it")


def test_approval_checks_the_lifecycle_again_and_leaves_the_update_waiting(rt: Runtime) -> None:
    inc = incident(rt, Severity.CRITICAL)
    queue = RecordingQueue()
    waiting = publish(rt, critical_draft(rt, inc, status=IncidentStatus.IDENTIFIED), queue).update
    resolve(rt, inc.id, Identity("alan"), queue, force=True, reason="false alarm")
    queue.fanouts.clear()

    with pytest.raises(InvalidInput, match=r"is resolved: reopen it first.*still waits"):
        approve(rt, waiting.id, person(rt, "grace"), queue)

    assert get_update(rt, waiting.id).state is UpdateState.PENDING_APPROVAL
    assert get_update(rt, waiting.id).approved_by is None, "nothing half-written"
    assert queue.fanouts == []


def test_the_cli_lists_approves_and_rejects(tmp_path: Path) -> None:
    assert tocsin("init", cwd=tmp_path).code == 0
    tokens = {}
    for name in ("ada", "grace"):
        made = tocsin("tokens", "create", name, "--scope", "publish", cwd=tmp_path)
        assert made.code == 0, made.err
        tokens[name] = made.out.splitlines()[0].strip()
    as_ada = {"TOCSIN_TOKEN": tokens["ada"]}
    tocsin("incident", "open", "Payments failing", "--severity", "critical", cwd=tmp_path)
    for text in ("Card payments fail. We are sorry.", "Card payments fail for EU cards. We are sorry."):
        ran = tocsin(
            "publish",
            "1",
            "--status",
            "investigating",
            "--message",
            text,
            "--next-update-in",
            "30m",
            cwd=tmp_path,
            env=as_ada,
        )
        assert ran.code == 0 and "waits for approval by someone other than ada" in ran.out, ran.err

    listed = tocsin("approvals", cwd=tmp_path)
    assert "2 update(s) waiting" in listed.out
    assert any("ada" in line and "Card payments fail." in line for line in listed.out.splitlines())

    own = tocsin("approve", "1", cwd=tmp_path, env=as_ada)
    assert own.code == 1 and "someone else must approve it" in own.err and "Traceback" not in own.err
    rejected = tocsin("reject", "2", "--reason", "duplicate", "--token", tokens["grace"], cwd=tmp_path)
    assert rejected.code == 0 and "rejected by grace" in rejected.out, rejected.err
    assert "1 update(s) waiting" in tocsin("approvals", cwd=tmp_path).out
    assert not list(tmp_path.glob("outbox/update-2/**/*.*"))
