"""Four eyes: public updates of some severities wait for a second, different person.

``publish`` writes such an update as ``pending_approval`` and sends nothing. ``approve`` releases it
(``dispatcher.comms.publish.go_live``: the incident's status and promises change then, not when it was
written, because that is when people are told) and submits its fan-out; ``reject`` closes it for good.
"""

from __future__ import annotations

from sqlalchemy import Connection, select, update

from dispatcher.comms.lifecycle import record_event
from dispatcher.comms.publish import get_update, go_live, submit_released
from dispatcher.domain.crisis import SECURITY
from dispatcher.domain.errors import InvalidInput
from dispatcher.domain.identity import Identity
from dispatcher.domain.models import Update, UpdateState
from dispatcher.engine.runtime import Runtime
from dispatcher.engine.task_queue import TaskQueue
from dispatcher.store.queries import get_incident, update_from_row
from dispatcher.store.schema import api_tokens, updates


def _proven(who: Identity, what: str) -> Identity:
    """Deciding on someone else's words needs an identity a token proved (``dispatcher.domain.identity``)."""
    if not who.proven or not who.name.strip():
        raise InvalidInput(
            f"{what}: needs an identity proven by a token (the API token, the console's login, or the "
            "CLI's personal token: --token or $TOCSIN_TOKEN), not a typed name"
        )
    return who


def _token_name(conn: Connection, token_id: int | None) -> str | None:
    if token_id is None:
        return None
    found: str | None = conn.execute(select(api_tokens.c.name).where(api_tokens.c.id == token_id)).scalar()
    return found


def _decide(conn: Connection, update_id: int, waiting: tuple[str, ...], **values: object) -> Update:
    """Record a decision on an update still in a ``waiting`` state (a conditional UPDATE, so of two
    people deciding at the same moment one wins and the other is told); the decided update."""
    row = (
        conn.execute(
            update(updates)
            .where(updates.c.id == update_id, updates.c.state.in_(waiting))
            .values(**values)
            .returning(*updates.c)
        )
        .mappings()
        .first()
    )
    if row is None:
        raise InvalidInput(f"update {update_id} was approved or rejected meanwhile")
    return update_from_row(row)


def approve(rt: Runtime, update_id: int, who: Identity, queue: TaskQueue) -> Update:
    """Approve a waiting update and send it. The approver (proven by a token) must not be its author:
    not the token that wrote it, nor another token of the same name."""
    who = _proven(who, "approver")
    upd = get_update(rt, update_id)
    if upd.state is not UpdateState.PENDING_APPROVAL:
        raise InvalidInput(f"update {update_id} is {upd.state.value}, not waiting for approval")
    with rt.engine.connect() as conn:
        author_token = _token_name(conn, upd.author_token_id)
    if who.is_author_of(upd.author, upd.author_token_id, author_token):
        raise InvalidInput(f"update {update_id} was written by {upd.author}: someone else must approve it")
    _in_role(rt, upd, who)
    now = rt.clock.now()
    with rt.engine.begin() as conn:
        claimed = _decide(
            conn,
            update_id,
            (UpdateState.PENDING_APPROVAL.value,),
            approved_by=who.name,
            approver_token_id=who.token_id,
            approved_at=now,
        )
        try:
            released = go_live(conn, rt, claimed, now, actor=who.name)
        except InvalidInput as exc:
            raise InvalidInput(
                f"{exc}; update {update_id} still waits (approve it later, or reject it)"
            ) from None
        record_event(conn, upd.incident_id, "approved", now, actor=who.name, update_id=update_id)
    submit_released(rt, queue, update_id)
    return released


def _in_role(rt: Runtime, upd: Update, who: Identity) -> None:
    """A security incident's updates may need an approver in a named role (policy ``security``)."""
    policy = rt.policy.policy
    role = policy.security.approver_role
    if role is None:
        return
    with rt.engine.connect() as conn:
        incident = get_incident(conn, upd.incident_id)
    members = policy.roles.get(role, [])
    if incident.kind == SECURITY and (who.token_name or who.name) not in members:
        raise InvalidInput(
            f"update {upd.id} is about a security incident: only someone in the role {role} "
            f"({', '.join(members) or 'nobody yet'}) may approve it"
        )


def reject(rt: Runtime, update_id: int, who: Identity, reason: str) -> Update:
    """Reject a waiting (or still scheduled) update: it is never sent. The reason is recorded.

    Rejecting an update that waits for approval needs a proven identity, as approving does."""
    if not reason.strip():
        raise InvalidInput("reason: say why the update is rejected")
    upd = get_update(rt, update_id)
    waiting = (UpdateState.PENDING_APPROVAL.value, UpdateState.SCHEDULED.value)
    if upd.state.value not in waiting:
        raise InvalidInput(f"update {update_id} is {upd.state.value}: only waiting updates can be rejected")
    if upd.state is UpdateState.PENDING_APPROVAL:
        _proven(who, "rejected by")
    now = rt.clock.now()
    with rt.engine.begin() as conn:
        rejected = _decide(
            conn,
            update_id,
            waiting,
            state=UpdateState.REJECTED.value,
            rejected_by=who.name,
            rejected_reason=reason.strip(),
        )
        record_event(
            conn, upd.incident_id, "rejected", now, actor=who.name, reason=reason.strip(), update_id=update_id
        )
    return rejected


def pending_approvals(rt: Runtime) -> list[Update]:
    """Updates waiting for a second person, oldest first."""
    with rt.engine.connect() as conn:
        rows = conn.execute(
            select(updates)
            .where(updates.c.state == UpdateState.PENDING_APPROVAL.value)
            .order_by(updates.c.published_at, updates.c.id)
        ).mappings()
        return [update_from_row(r) for r in rows]
