"""Publish one update: validate, persist it, and (once it may go out) hand its fan-out to the task queue.

Publishing is idempotent: the same idempotency key returns the update it first created and sends
nothing twice.

An update is written in one of three states:

- ``pending``: it goes out now. In the same transaction the incident moves to the update's status
  (``dispatcher.comms.lifecycle`` rules) and the promise bookkeeping is done (see ``go_live``).
- ``pending_approval``: the severity policy wants a second person (``dispatcher.comms.approval``).
- ``scheduled``: it waits for ``scheduled_for``; ``release_due`` (a periodic tick) publishes it then.

The incident's status and promises only change when an update is *released* (goes out), never when it
is merely written: until then nobody has been told anything, and an update that is rejected, or never
released, must leave no trace on the incident. The rules are still checked when it is written (a
scheduled one at its time), so a draft that could never go out is refused at once, and checked again
at release, when the incident may have moved on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, select, update
from sqlalchemy.exc import IntegrityError

from channels.base import ChannelKind
from dispatcher.comms import guardrails, languages, message_templates
from dispatcher.comms.lifecycle import apply_transition, plan_transition, record_event
from dispatcher.domain.audiences import check_audience
from dispatcher.domain.errors import GuardrailsBlocked, InvalidInput
from dispatcher.domain.models import Audience, Incident, IncidentStatus, Update, UpdateDraft, UpdateState
from dispatcher.domain.policy import SeverityPolicy
from dispatcher.engine.runtime import Runtime
from dispatcher.engine.task_queue import TaskQueue
from dispatcher.store import queries
from dispatcher.store.queries import get_incident, update_from_row
from dispatcher.store.schema import incidents, updates

if TYPE_CHECKING:
    from dispatcher.domain.guardrail_rules import Finding

PRE_APPROVED_KINDS = ("holding", "reminder", "maintenance")
"""Written by Tocsin from approved texts: no guardrails, no approval."""

SCHEDULER = "tocsin:scheduler"


@dataclass(frozen=True)
class Published:
    update: Update
    created: bool
    """False when the idempotency key matched an update published earlier."""
    findings: tuple[Finding, ...] = field(default=())
    """Guardrail findings (warnings, and errors that were overridden with a reason)."""


def _existing(conn: Connection, key: str) -> Update | None:
    return queries.find_update(conn, select(updates).where(updates.c.idempotency_key == key))


def _same_request(update: Update, draft: UpdateDraft) -> bool:
    return (update.incident_id, update.status, update.message) == (
        draft.incident_id,
        draft.status,
        draft.message,
    )


def channels_for(rt: Runtime, draft: UpdateDraft, rules: SeverityPolicy) -> list[ChannelKind]:
    """The channels publishing ``draft`` uses under ``rules`` (its severity's policy), in order.

    Empty when none is left (``publish`` refuses that); ``InvalidInput`` for a chosen channel that is
    not enabled. ``dispatcher.comms.preview`` shows the same channels."""
    enabled = rt.settings.enabled_channels()
    if draft.channels is not None:
        chosen = draft.channels
        not_enabled = [c.value for c in chosen if c not in enabled]
        if not_enabled:
            raise InvalidInput(f"channels: {', '.join(not_enabled)} not enabled in the configuration")
    elif reaches_customers(draft.audience) and rules.channels is not None:
        # The severity policy's channels, as far as this installation has them.
        chosen = [c for c in rules.channels if c in enabled]
    else:
        chosen = enabled
    if draft.audience is not Audience.PUBLIC:
        # Social posts reach the whole world: only for public updates (chat rooms are staff's).
        # The status page shows public updates only: an internal one changes nothing there.
        chosen = [c for c in chosen if c not in (ChannelKind.SOCIAL, ChannelKind.STATUSPAGE)]
    return list(dict.fromkeys(chosen))


def _check_times(draft: UpdateDraft, now: datetime) -> datetime:
    """When the update goes out (now, or ``publish_at``), after checking the times it carries."""
    goes_out = now
    if draft.publish_at is not None:
        if draft.publish_at.tzinfo is None:
            raise InvalidInput("publish_at: give a time zone (e.g. 2026-01-01T14:30:00Z)")
        if draft.publish_at <= now:
            raise InvalidInput("publish_at: must be in the future")
        goes_out = draft.publish_at
    if draft.next_update_at is not None:
        if draft.next_update_at.tzinfo is None:
            raise InvalidInput("next_update_at: give a time zone (e.g. 2026-01-01T14:30:00Z)")
        if draft.next_update_at <= goes_out:
            when = "after publish_at" if draft.publish_at is not None else "in the future"
            raise InvalidInput(f"next_update_at: must be {when}")
    return goes_out


def _check_guardrails(rt: Runtime, incident: Incident, draft: UpdateDraft) -> tuple[Finding, ...]:
    if draft.kind in PRE_APPROVED_KINDS:
        return ()
    findings = tuple(guardrails.check_draft(rt, incident, draft)) + tuple(
        languages.draft_findings(rt, incident, draft)
    )
    if any(f.level == "error" for f in findings) and not (draft.override_reason or "").strip():
        raise GuardrailsBlocked(findings)
    return findings


def reaches_customers(audience: Audience | str) -> bool:
    """Public, or a segment of the public: anything but staff only."""
    return str(audience) != Audience.INTERNAL.value


def needs_approval(rules: SeverityPolicy, kind: str, audience: Audience | str) -> bool:
    """Updates to customers written by someone wait for a second person when the severity says so."""
    return rules.needs_approval and kind not in PRE_APPROVED_KINDS and reaches_customers(audience)


def publish(rt: Runtime, draft: UpdateDraft, queue: TaskQueue) -> Published:
    now = rt.clock.now()
    goes_out = _check_times(draft, now)
    if draft.idempotency_key:
        with rt.engine.connect() as conn:
            earlier = _existing(conn, draft.idempotency_key)
        if earlier is not None:
            return _replay(earlier, draft)
    with rt.engine.connect() as conn:
        incident = get_incident(conn, draft.incident_id)
    rules = rt.policy.policy.for_severity(incident.severity)
    audience = str(check_audience(rt.policy, draft.audience))
    if draft.kind not in PRE_APPROVED_KINDS and audience not in rules.audiences:
        raise InvalidInput(
            f"audience: {incident.severity.value} incidents go to {', '.join(rules.audiences)} "
            f"(policy {rt.policy.version}), not {audience}"
        )
    channels = channels_for(rt, draft, rules)
    if not channels:
        raise InvalidInput("channels: the update would go out on no channel")
    plan_transition(rt.policy.policy, incident, draft.status, goes_out)  # refused before any write
    findings = _check_guardrails(rt, incident, draft)
    if draft.publish_at is not None:
        state = UpdateState.SCHEDULED
    elif needs_approval(rules, draft.kind, draft.audience) and not message_templates.pre_approved(rt, draft):
        state = UpdateState.PENDING_APPROVAL
    else:
        state = UpdateState.PENDING
    values: dict[str, Any] = {
        "incident_id": draft.incident_id,
        "status": draft.status.value,
        "message": draft.message,
        "next_update_at": draft.next_update_at,
        "audience": audience,
        "channels": [c.value for c in channels],
        "idempotency_key": draft.idempotency_key,
        "state": state.value,
        "published_at": goes_out,
        "kind": draft.kind,
        "author": draft.author,
        "severity": incident.severity.value,
        "policy_version": rt.policy.version,
        "internal_note": draft.internal_note,
        "override_reason": (draft.override_reason or "").strip() or None,
        "scheduled_for": draft.publish_at,
        "texts": languages.stored_texts(languages.checked_texts(rt, draft)),
        "template": draft.template,
    }
    try:
        with rt.engine.begin() as conn:
            row = conn.execute(updates.insert().values(**values).returning(*updates.c)).mappings().one()
            published = update_from_row(row)
            if state is UpdateState.PENDING:
                published = go_live(conn, rt, published, now, actor=draft.author)
    except IntegrityError:
        # Two publishes with the same key raced; the first one won.
        if draft.idempotency_key is None:
            raise
        with rt.engine.connect() as conn:
            earlier = _existing(conn, draft.idempotency_key)
        if earlier is None:
            raise
        return _replay(earlier, draft)
    if published.state is UpdateState.PENDING:
        queue.submit_fanout(published.id)
    return Published(published, created=True, findings=findings)


def go_live(conn: Connection, rt: Runtime, upd: Update, now: datetime, actor: str | None) -> Update:
    """Release ``upd`` (state ``pending``, ``published_at`` now), in the caller's transaction.

    Moves the incident to the update's status through the lifecycle rules (``InvalidInput`` if they
    refuse it now) and, for an update to customers (public or a segment), settles promises: the
    previous open promise is ``kept`` (this update came by its ``next_update_at``) or ``broken`` (it
    came later); this update's own promise is ``open``; the incident's ``next_update_at`` becomes this
    update's (none once resolved).
    The caller submits the fan-out after the transaction commits."""
    incident = get_incident(conn, upd.incident_id, lock=True)
    change = plan_transition(rt.policy.policy, incident, upd.status, now)
    if change is not None:
        apply_transition(conn, change, now, actor=actor, update_id=upd.id)
    values: dict[str, Any] = {"state": UpdateState.PENDING.value, "published_at": now}
    if reaches_customers(upd.audience):
        resolved = upd.status is IncidentStatus.RESOLVED
        open_promises = (
            updates.c.incident_id == upd.incident_id,
            updates.c.promise_state == "open",
            updates.c.id != upd.id,
        )
        conn.execute(
            update(updates)
            .where(*open_promises, updates.c.next_update_at >= now)
            .values(promise_state="kept")
        )
        conn.execute(update(updates).where(*open_promises).values(promise_state="broken"))
        promise = None if resolved else upd.next_update_at
        values["promise_state"] = "open" if promise is not None else None
        conn.execute(
            update(incidents)
            .where(incidents.c.id == upd.incident_id)
            .values(next_update_at=promise, promise_reminded_at=None, updated_at=now)
        )
    row = (
        conn.execute(update(updates).where(updates.c.id == upd.id).values(**values).returning(*updates.c))
        .mappings()
        .one()
    )
    return update_from_row(row)


def release_due(rt: Runtime, queue: TaskQueue) -> list[int]:
    """Publish the scheduled updates whose time has come; the ids released (now ``pending``, or
    ``pending_approval`` when the severity wants a second person).

    Safe to run from several processes at once: each update is claimed with a conditional
    ``UPDATE … WHERE state = 'scheduled'``, so only one of them releases it. An update the lifecycle
    refuses at its time (the incident was resolved meanwhile, a resolve hold not yet met) is rejected
    by the scheduler with the reason, and never sent."""
    now = rt.clock.now()
    with rt.engine.connect() as conn:
        due = (
            conn.execute(
                select(updates.c.id)
                .where(updates.c.state == UpdateState.SCHEDULED.value, updates.c.scheduled_for <= now)
                .order_by(updates.c.scheduled_for, updates.c.id)
            )
            .scalars()
            .all()
        )
    released: list[int] = []
    for update_id in due:
        try:
            state = _release_one(rt, update_id, now)
        except InvalidInput as exc:
            _refuse(rt, update_id, now, str(exc))
            continue
        if state is None:
            continue  # another process released it first
        released.append(update_id)
        if state is UpdateState.PENDING:
            queue.submit_fanout(update_id)
    return released


def _release_one(rt: Runtime, update_id: int, now: datetime) -> UpdateState | None:
    with rt.engine.begin() as conn:
        row = (
            conn.execute(
                update(updates)
                .where(updates.c.id == update_id, updates.c.state == UpdateState.SCHEDULED.value)
                .values(state=UpdateState.PENDING.value, published_at=now)
                .returning(*updates.c)
            )
            .mappings()
            .first()
        )
        if row is None:
            return None
        upd = update_from_row(row)
        incident = get_incident(conn, upd.incident_id)
        if needs_approval(rt.policy.policy.for_severity(incident.severity), upd.kind, upd.audience):
            conn.execute(
                update(updates)
                .where(updates.c.id == update_id)
                .values(state=UpdateState.PENDING_APPROVAL.value)
            )
            return UpdateState.PENDING_APPROVAL
        go_live(conn, rt, upd, now, actor=upd.author)
        return UpdateState.PENDING


def _refuse(rt: Runtime, update_id: int, now: datetime, reason: str) -> None:
    with rt.engine.begin() as conn:
        row = conn.execute(
            update(updates)
            .where(updates.c.id == update_id, updates.c.state == UpdateState.SCHEDULED.value)
            .values(state=UpdateState.REJECTED.value, rejected_by=SCHEDULER, rejected_reason=reason)
            .returning(updates.c.incident_id)
        ).first()
        if row is not None:
            record_event(
                conn, row.incident_id, "rejected", now, actor=SCHEDULER, reason=reason, update_id=update_id
            )


def _replay(earlier: Update, draft: UpdateDraft) -> Published:
    if not _same_request(earlier, draft):
        raise InvalidInput(
            f"idempotency_key: {draft.idempotency_key!r} was used for update {earlier.id} "
            "with a different incident, status or message"
        )
    return Published(earlier, created=False)


def get_update(rt: Runtime, update_id: int) -> Update:
    """The update (``NotFound`` when there is none), read on a connection of its own."""
    with rt.engine.connect() as conn:
        return queries.get_update(conn, update_id)
