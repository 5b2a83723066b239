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

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, insert, select, update
from sqlalchemy.exc import IntegrityError

from channels.base import ChannelKind
from dispatcher.comms import guardrails, languages, message_templates
from dispatcher.comms.everyone_told import submit_closure, write_closure_rows
from dispatcher.comms.lifecycle import apply_transition, human, plan_transition, record_event
from dispatcher.comms.report_deadline import promised_report, set_report_due
from dispatcher.domain.audiences import check_audience
from dispatcher.domain.crisis import INCIDENT_KINDS, Signer
from dispatcher.domain.errors import InvalidInput
from dispatcher.domain.models import (
    Audience,
    ComponentImpact,
    Incident,
    IncidentStatus,
    Update,
    UpdateDraft,
    UpdateState,
)
from dispatcher.domain.policy import Policy, SeverityPolicy
from dispatcher.engine.runtime import Runtime
from dispatcher.engine.status_site import internal_site_configured
from dispatcher.engine.task_queue import TaskQueue
from dispatcher.store import queries
from dispatcher.store.queries import get_incident, update_from_row
from dispatcher.store.schema import component_impacts, incidents, updates

if TYPE_CHECKING:
    from dispatcher.domain.guardrail_rules import Finding

PRE_APPROVED_KINDS = ("holding", "reminder", "maintenance", "first_notice", "resolution")
"""Written from texts approved in advance (the policy's, Tocsin's own): no approval; only the title and
components of a first notice are checked by the guardrails."""
REAL_KINDS = ("update", "first_notice", "resolution")
"""Updates that say something new to customers (a holding message does not): they end a run of
holding messages and an escalation."""

SCHEDULER = "tocsin:scheduler"
PUBLISHED_STATES = (UpdateState.PENDING.value, UpdateState.FANNED_OUT.value)
"""Updates in these states were released: people have been (or are being) told."""

log = logging.getLogger(__name__)


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
        had_site = ChannelKind.STATUSPAGE in chosen
        chosen = [c for c in chosen if c not in (ChannelKind.SOCIAL, ChannelKind.STATUSPAGE)]
        if had_site and internal_site_configured(rt):
            # ...but staff's internal status site shows internal updates too (its own target only).
            chosen.append(ChannelKind.STATUSPAGE)
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
    check_report_by(draft.report_by, draft.status, goes_out)
    return goes_out


def check_report_by(report_by: datetime | None, status: IncidentStatus, goes_out: datetime) -> None:
    """A promised post-incident report: only on a resolution, with a time zone, after ``goes_out``.
    Drafts check it when saved, and publishing again when it goes out."""
    if report_by is None:
        return
    if status is not IncidentStatus.RESOLVED:
        raise InvalidInput("report_by: only a resolution promises the post-incident report")
    if report_by.tzinfo is None:
        raise InvalidInput("report_by: give a time zone (e.g. 2026-12-01T17:00:00Z)")
    if report_by <= goes_out:
        raise InvalidInput("report_by: must be in the future")


def _check_guardrails(
    rt: Runtime, incident: Incident, draft: UpdateDraft, channels: list[ChannelKind]
) -> tuple[Finding, ...]:
    findings = tuple(guardrails.check_draft(rt, incident, draft, channels)) + tuple(
        languages.draft_findings(rt, incident, draft)
    )
    guardrails.refuse_unless_overridden(findings, draft.override_reason)
    return findings


def signer_of(policy: Policy, key: str | None) -> Signer | None:
    """The signatory ``key`` names, as it is now (``InvalidInput`` naming the known ones)."""
    if key is None:
        return None
    found = policy.signatories.get(key.strip())
    if found is None:
        known = ", ".join(sorted(policy.signatories)) or "none: add [signatories.<name>] to policy.toml"
        raise InvalidInput(f"signer: no signatory named {key!r} in the policy (known: {known})")
    return Signer(key=key.strip(), name=found.name, role=found.role)


def reaches_customers(audience: Audience | str) -> bool:
    """Public, or a segment of the public: anything but staff only."""
    return str(audience) != Audience.INTERNAL.value


def needs_approval(rules: SeverityPolicy, kind: str, audience: Audience | str) -> bool:
    """Updates to customers written by someone wait for a second person when the severity says so."""
    return rules.needs_approval and kind not in PRE_APPROVED_KINDS and reaches_customers(audience)


def publish(
    rt: Runtime, draft: UpdateDraft, queue: TaskQueue, *, force_reason: str | None = None
) -> Published:
    """Validate, write and (unless it waits) release ``draft``; the fan-out is submitted after commit.

    ``force_reason``: resolve before the severity's monitoring hold, for this reason (recorded)."""
    now = rt.clock.now()
    goes_out = _check_times(draft, now)
    if draft.idempotency_key:
        with rt.engine.connect() as conn:
            earlier = _existing(conn, draft.idempotency_key)
        if earlier is not None:
            return _replay(earlier, draft)
    with rt.engine.connect() as conn:
        incident = get_incident(conn, draft.incident_id)
    rules = rt.policy.policy.for_incident(incident.severity, incident.kind)
    audience = str(check_audience(rt.policy, draft.audience))
    if draft.kind not in PRE_APPROVED_KINDS and audience not in rules.audiences:
        raise InvalidInput(
            f"audience: {incident.severity.value} incidents go to {', '.join(rules.audiences)} "
            f"(policy {rt.policy.version}), not {audience}"
        )
    channels = channels_for(rt, draft, rules)
    if not channels:
        raise InvalidInput("channels: the update would go out on no channel")
    if (
        draft.status is IncidentStatus.RESOLVED
        and audience == Audience.INTERNAL.value
        and incident.first_word_at
        and incident.status is not IncidentStatus.RESOLVED  # a reminder to staff after the end ends nothing
    ):
        # Its rows would carry staff's words to everyone told: customers hear the end in theirs.
        raise InvalidInput(
            f"audience: customers were told about incident {incident.id}, so its end goes to them too: "
            f"`tocsin incident resolve {incident.id}` (or publish the resolution to the public)"
        )
    # Refused before anything is written:
    plan_transition(
        rt.policy.policy, incident, draft.status, goes_out, force=bool(force_reason), reason=force_reason
    )
    findings = _check_guardrails(rt, incident, draft, channels)
    if draft.publish_at is not None:
        state = UpdateState.SCHEDULED
    elif needs_approval(rules, draft.kind, draft.audience) and not message_templates.pre_approved(rt, draft):
        state = UpdateState.PENDING_APPROVAL
    else:
        state = UpdateState.PENDING
    statement = draft.impact_statement
    signer = signer_of(rt.policy.policy, draft.signer)
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
        "author_token_id": draft.author_token_id,
        "impact": {k: v.value for k, v in draft.impact.items()} if draft.impact else None,
        "impact_statement": statement.model_dump(mode="json", exclude_none=True) if statement else None,
        "report_by": promised_report(draft, incident, rules, goes_out),
        "signer": signer.model_dump() if signer else None,
    }
    try:
        with rt.engine.begin() as conn:
            row = conn.execute(updates.insert().values(**values).returning(*updates.c)).mappings().one()
            published = update_from_row(row)
            if state is UpdateState.PENDING:
                published = go_live(conn, rt, published, now, actor=draft.author, force_reason=force_reason)
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
        submit_released(rt, queue, published.id)
    return Published(published, created=True, findings=findings)


def submit_released(rt: Runtime, queue: TaskQueue, update_id: int) -> None:
    """Hand a released update to the queue: its fan-out, and the rows for everyone told when it ends
    the incident (``dispatcher.comms.everyone_told``)."""
    queue.submit_fanout(update_id)
    submit_closure(rt, queue, [update_id])


def go_live(
    conn: Connection,
    rt: Runtime,
    upd: Update,
    now: datetime,
    actor: str | None,
    force_reason: str | None = None,
) -> Update:
    """Release ``upd`` (state ``pending``, ``published_at`` now), in the caller's transaction.

    Moves the incident to the update's status through the lifecycle rules (``InvalidInput`` if they
    refuse it now; a holding message never moves it: it repeats what customers were last told) and,
    for an update to customers (public or a segment), settles promises: the previous open promise is
    ``kept`` (this update came by its ``next_update_at``) or ``broken`` (it came later); this update's
    own promise is ``open``; the incident's ``next_update_at`` becomes this update's (none once
    resolved). The first one is the incident's first public word (timed, on the timeline); a real one
    ends a run of holding messages and any escalation; its per-component impact is recorded. When it
    resolves the incident, everyone told about it gets it too (``everyone_told``).
    The caller submits the fan-out after the transaction commits (``submit_released``)."""
    incident = get_incident(conn, upd.incident_id, lock=True)
    change = None
    if upd.kind != "holding":
        policy = rt.policy.policy
        change = plan_transition(
            policy, incident, upd.status, now, force=bool(force_reason), reason=force_reason
        )
    if change is not None:
        apply_transition(conn, change, now, actor=actor, reason=force_reason, update_id=upd.id)
    values: dict[str, Any] = {"state": UpdateState.PENDING.value, "published_at": now}
    if reaches_customers(upd.audience):
        # A maintenance notice keeps the window's promise when it comes within the completion grace
        # (plus a tick's worth): completion waits that long after the window's end on purpose.
        slack = (
            rt.policy.policy.maintenance.completion_grace + TICK_SLACK if upd.kind == "maintenance" else None
        )
        _settle_promises(conn, upd, now, values, slack)
        _customers_told(conn, incident, upd, now, actor)
    if change is not None and change.to_status is IncidentStatus.RESOLVED:
        _everyone_hears_the_end(conn, rt, upd, incident, now, actor)
        set_report_due(conn, upd, incident, now, actor)
    row = (
        conn.execute(update(updates).where(updates.c.id == upd.id).values(**values).returning(*updates.c))
        .mappings()
        .one()
    )
    return update_from_row(row)


def _settle_promises(
    conn: Connection, upd: Update, now: datetime, values: dict[str, Any], slack: timedelta | None = None
) -> None:
    resolved = upd.status is IncidentStatus.RESOLVED
    open_promises = (
        updates.c.incident_id == upd.incident_id,
        updates.c.promise_state == "open",
        updates.c.id != upd.id,
    )
    kept_until = now - slack if slack is not None else now
    conn.execute(
        update(updates)
        .where(*open_promises, updates.c.next_update_at >= kept_until)
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


TICK_SLACK = timedelta(minutes=5)
"""How late after its due time the periodic tick may act (it runs every ``tick_every`` seconds)."""


def _customers_told(
    conn: Connection, incident: Incident, upd: Update, now: datetime, actor: str | None
) -> None:
    """Bookkeeping of an update that reached customers: first word, holding runs, impact."""
    changes: dict[str, Any] = {}
    if incident.first_word_at is None and incident.kind in INCIDENT_KINDS:
        changes["first_word_at"] = now
        record_event(
            conn,
            incident.id,
            "first_word",
            now,
            actor=actor,
            reason=f"customers first told {human(now - incident.opened_at)} after opening",
            update_id=upd.id,
        )
    if upd.kind in REAL_KINDS:
        changes.update(holding_streak=0, escalated_at=None)
        if incident.escalated_at is not None:
            record_event(conn, incident.id, "escalation_ended", now, actor=actor, update_id=upd.id)
    if changes:
        conn.execute(update(incidents).where(incidents.c.id == incident.id).values(**changes))
    if upd.impact:
        record_impact(conn, incident.id, upd.impact, now, "update", actor, upd.id)


def record_impact(
    conn: Connection,
    incident_id: int,
    impact: dict[str, ComponentImpact],
    at: datetime,
    source: str,
    actor: str | None,
    update_id: int | None = None,
) -> None:
    """One ``component_impacts`` row per component: how hard it is hit from ``at`` on."""
    conn.execute(
        insert(component_impacts),
        [
            {
                "incident_id": incident_id,
                "component": name,
                "impact": ComponentImpact(level).value,
                "effective_at": at,
                "source": source,
                "update_id": update_id,
                "actor": actor,
            }
            for name, level in impact.items()
        ],
    )


def _everyone_hears_the_end(
    conn: Connection, rt: Runtime, upd: Update, incident: Incident, now: datetime, actor: str | None
) -> None:
    """The incident ends: its components are operational again, and everyone told hears it."""
    named = set(incident.components) | set(_impacted(conn, incident.id))
    if named and upd.audience is not Audience.INTERNAL:
        record_impact(
            conn,
            incident.id,
            dict.fromkeys(sorted(named), ComponentImpact.OPERATIONAL),
            now,
            "resolved",
            actor,
            upd.id,
        )
    count, unreachable = write_closure_rows(conn, rt, upd, incident, now)
    record_event(
        conn,
        incident.id,
        "closure",
        now,
        actor=actor,
        update_id=upd.id,
        reason=f"the resolution goes to {count} address(es) told about this incident",
    )
    if unreachable:
        log.error(
            "incident %s: channels %s are off: people told there cannot hear the end",
            incident.id,
            unreachable,
        )
        record_event(
            conn,
            incident.id,
            "closure_unreachable",
            now,
            actor=actor,
            update_id=upd.id,
            reason=f"channel(s) {', '.join(unreachable)} are off: people told there cannot hear the end",
        )


def _impacted(conn: Connection, incident_id: int) -> list[str]:
    return list(
        conn.execute(
            select(component_impacts.c.component)
            .where(component_impacts.c.incident_id == incident_id)
            .distinct()
        ).scalars()
    )


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
            submit_released(rt, queue, update_id)
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
        rules = rt.policy.policy.for_incident(incident.severity, incident.kind)
        if needs_approval(rules, upd.kind, upd.audience):
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
