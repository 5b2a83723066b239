"""The next-update promise, enforced: remind before it is due, keep people informed when it is missed.

Every public update may promise the next one (``next_update_at``); the incident keeps the promise now
standing. For every unresolved incident (scheduled maintenance keeps its own promise, see
``dispatcher.comms.maintenance``):

- ``promise.remind_before`` ahead of the promise, the internal audience (and the incident's owner) get a
  reminder: an internal update of kind ``reminder``, written by ``tocsin``.
- When the promise passes with no new public update, Tocsin sends the approved holding message
  (``promise.holding_message``, in each subscriber's language) to the audience of the last public
  update, promising the next one a severity cadence later. The missed promise is recorded as broken.
  Three missed promises give three holding messages: "no news yet" beats silence. A holding message
  repeats the status customers were last told (an internal update never shows through it).
- **When it drags on** — after ``escalation.after_holdings`` holding messages in a row (3) or
  ``escalation.after`` (3 hours) without a real public update — a holding message no longer keeps the
  promise: the missed promise is recorded broken, no holding message goes out, the owner and the
  senior approver (else the escalation contacts) are paged along with staff, and the incident is
  flagged (``escalated_at``; the console and the CLI show it) until a real public update goes out,
  which the guardrails insist says something new (``holding-again``) unless overridden with a reason.

Each action is claimed with a conditional UPDATE on the incident before anything is published, so two
ticks running at once (two embedded workers, a beat and a cron) act once; the published update also
carries an idempotency key derived from the promise it answers. A process that dies between the claim
and the publish loses that one message; the moved promise is then enforced again one cadence later.

**Who the reminder reaches.** The reminder goes to the internal audience. ``incidents.owner`` is an
email address or a subscriber's ``external_id``; when the owner is not reached by the internal audience
(an email address of no internal subscriber, or a subscriber who is not internal), the owner's email
address gets a ledger row of its own on the reminder update, in a batch apart (``OWNER_BATCH``), so the
reminder reaches them through the email channel with the usual retries.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import ColumnElement, Connection, and_, func, select, update

from channels.base import ChannelKind
from dispatcher.comms.lifecycle import human, record_event
from dispatcher.comms.paging import PAGE_BATCH, page, reach
from dispatcher.comms.publish import REAL_KINDS, publish
from dispatcher.domain.errors import TocsinError
from dispatcher.domain.models import Audience, Incident, IncidentStatus, Update, UpdateDraft, UpdateState
from dispatcher.domain.texts import hhmm, holding_text, iso_z
from dispatcher.engine.runtime import Runtime
from dispatcher.engine.task_queue import TaskQueue
from dispatcher.store.queries import incident_from_row, update_from_row
from dispatcher.store.schema import incidents, updates

__all__ = [
    "AUTHOR",
    "OWNER_BATCH",
    "FollowupReport",
    "enforce_promises",
]

log = logging.getLogger(__name__)

AUTHOR = "tocsin"
OWNER_BATCH = PAGE_BATCH
"""Batch number of the owner's own reminder row: far above any batch a fan-out numbers from 0."""

PUBLISHED_STATES = (UpdateState.PENDING.value, UpdateState.FANNED_OUT.value)


@dataclass
class FollowupReport:
    reminders: list[int] = field(default_factory=list)
    """Ids of the reminder updates published."""
    holdings: list[int] = field(default_factory=list)
    """Ids of the holding updates published."""
    escalations: list[int] = field(default_factory=list)
    """Incidents escalated because they drag on."""
    errors: list[str] = field(default_factory=list)


# --- reading -------------------------------------------------------------------------------------


def _due_incidents(conn: Connection, horizon: datetime) -> list[Incident]:
    rows = conn.execute(
        select(incidents)
        .where(
            incidents.c.status != IncidentStatus.RESOLVED.value,
            incidents.c.kind != "maintenance",
            incidents.c.next_update_at.is_not(None),
            incidents.c.next_update_at <= horizon,
            # Escalated: paged already; nothing more until a real public update.
            incidents.c.escalated_at.is_(None),
        )
        .order_by(incidents.c.next_update_at, incidents.c.id)
    ).mappings()
    return [incident_from_row(r) for r in rows]


def last_public_update(conn: Connection, incident_id: int) -> Update | None:
    """The latest update that went (or is going) to an audience other than staff only."""
    row = (
        conn.execute(
            select(updates)
            .where(
                updates.c.incident_id == incident_id,
                updates.c.audience != Audience.INTERNAL.value,
                updates.c.state.in_(PUBLISHED_STATES),
            )
            .order_by(updates.c.id.desc())
            .limit(1)
        )
        .mappings()
        .first()
    )
    return None if row is None else update_from_row(row)


def _event(conn: Connection, inc: Incident, kind: str, at: datetime, update_id: int, reason: str) -> None:
    record_event(conn, inc.id, kind, at, actor=AUTHOR, reason=reason, update_id=update_id)


def _set_incident(
    conn: Connection, incident_id: int, *conditions: ColumnElement[bool], **values: object
) -> int:
    """Set ``values`` on the incident if it still meets ``conditions``: how many rows changed (0 or 1)."""
    changed: int = conn.execute(
        update(incidents).where(incidents.c.id == incident_id, *conditions).values(**values)
    ).rowcount
    return changed


def _claim(
    rt: Runtime, inc: Incident, *conditions: ColumnElement[bool], **values: object
) -> tuple[bool, Update | None]:
    """Claim one action on ``inc`` (set ``values`` if it still meets ``conditions``, so of two ticks
    only one acts), and read its last public update in the same transaction."""
    with rt.engine.begin() as conn:
        claimed = _set_incident(conn, inc.id, *conditions, **values)
        return bool(claimed), last_public_update(conn, inc.id)


def _publish_or_give_back(
    rt: Runtime, queue: TaskQueue, draft: UpdateDraft, *held: ColumnElement[bool], **give_back: object
) -> Update:
    """Publish a claimed action's update; if that fails, set ``give_back`` on the incident (where the
    claim still ``held``) so the next tick tries again, and raise."""
    try:
        return publish(rt, draft, queue).update
    except Exception:
        with rt.engine.begin() as conn:
            _set_incident(conn, draft.incident_id, *held, **give_back)
        raise


# --- reminders -----------------------------------------------------------------------------------


def _reminder_text(inc: Incident, due: datetime, last: Update | None) -> str:
    since = (
        f"the last public update was at {hhmm(last.published_at)}"
        if last is not None
        else "there has been no public update yet"
    )
    owner = f" Owner: {inc.owner}." if inc.owner else ""
    return f"Update for incident #{inc.id} '{inc.title}' is due by {hhmm(due)}; {since}.{owner}"


def _reach_owner(rt: Runtime, queue: TaskQueue, inc: Incident, reminder: Update) -> None:
    reach(rt, queue, reminder, [inc.owner])


def _remind(rt: Runtime, queue: TaskQueue, inc: Incident, due: datetime, now: datetime) -> Update | None:
    claimed, last = _claim(
        rt,
        inc,
        incidents.c.next_update_at == due,
        incidents.c.promise_reminded_at.is_(None),
        promise_reminded_at=now,
    )
    if not claimed:
        return None
    draft = UpdateDraft(
        incident_id=inc.id,
        status=inc.status,
        message=_reminder_text(inc, due, last),
        audience=Audience.INTERNAL,
        author=AUTHOR,
        kind="reminder",
        idempotency_key=f"reminder:{inc.id}:{iso_z(due)}",
    )
    # On failure the reminder is given back: the next tick tries again.
    reminder = _publish_or_give_back(
        rt, queue, draft, incidents.c.promise_reminded_at == now, promise_reminded_at=None
    )
    _reach_owner(rt, queue, inc, reminder)
    with rt.engine.begin() as conn:
        _event(conn, inc, "reminder_sent", now, reminder.id, f"next update due by {hhmm(due)}")
    return reminder


# --- holding messages ----------------------------------------------------------------------------


def _channels(rt: Runtime, last: Update | None) -> list[ChannelKind] | None:
    """The last public update's channels that are still enabled (None: publish's own choice)."""
    if last is None:
        return None
    enabled = rt.settings.enabled_channels()
    kept = [c for c in last.channels if c in enabled]
    return kept or None


def _hold(rt: Runtime, queue: TaskQueue, inc: Incident, missed: datetime, now: datetime) -> Update | None:
    promise = now + rt.policy.policy.for_severity(inc.severity).cadence
    claimed, last = _claim(
        rt,
        inc,
        incidents.c.next_update_at == missed,
        incidents.c.status != IncidentStatus.RESOLVED.value,
        next_update_at=promise,
        promise_reminded_at=None,
        holding_streak=incidents.c.holding_streak + 1,
    )
    if not claimed:
        return None
    draft = UpdateDraft(
        incident_id=inc.id,
        # What customers were last told, never a status only staff heard of.
        status=last.status if last is not None else inc.status,
        message=holding_text(rt.policy.policy.promise, "en", promise),
        next_update_at=promise,
        audience=last.audience if last is not None else Audience.PUBLIC,
        channels=_channels(rt, last),
        author=AUTHOR,
        kind="holding",
        idempotency_key=f"holding:{inc.id}:{iso_z(missed)}",
    )
    # On failure the promise is given back: the next tick tries again.
    holding = _publish_or_give_back(
        rt,
        queue,
        draft,
        incidents.c.next_update_at == promise,
        next_update_at=missed,
        holding_streak=incidents.c.holding_streak - 1,
    )
    with rt.engine.begin() as conn:
        # publish() keeps the incident's promise; make sure it is the new one even if it did not.
        _set_incident(
            conn,
            inc.id,
            incidents.c.next_update_at == missed,
            next_update_at=promise,
            promise_reminded_at=None,
        )
        conn.execute(
            update(updates)
            .where(
                and_(
                    updates.c.incident_id == inc.id,
                    updates.c.next_update_at == missed,
                    updates.c.id < holding.id,
                )
            )
            .values(promise_state="broken")
        )
        _event(conn, inc, "holding_sent", now, holding.id, f"promised update by {hhmm(missed)} missed")
    return holding


# --- when it drags on -----------------------------------------------------------------------------


def _last_real(conn: Connection, inc: Incident) -> datetime:
    """When customers last heard something new: the latest real public update (not a holding message),
    else when the incident opened."""
    found = conn.execute(
        select(func.max(updates.c.published_at)).where(
            updates.c.incident_id == inc.id,
            updates.c.audience != Audience.INTERNAL.value,
            updates.c.state.in_(PUBLISHED_STATES),
            updates.c.kind.in_(REAL_KINDS),
        )
    ).scalar()
    if found is None:
        return inc.opened_at
    # An aggregate skips the column type: SQLite gives text, both give naive UTC.
    moment = datetime.fromisoformat(found) if isinstance(found, str) else found
    assert isinstance(moment, datetime)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _drags_on(rt: Runtime, inc: Incident, now: datetime) -> str | None:
    """Why a holding message would no longer keep the promise; None while it still may."""
    rules = rt.policy.policy.escalation
    if inc.holding_streak >= rules.after_holdings:
        return f"{inc.holding_streak} holding messages in a row"
    with rt.engine.connect() as conn:
        since = _last_real(conn, inc)
    if now - since >= rules.after:
        return f"no real public update for {human(now - since)}"
    return None


def _escalate(
    rt: Runtime, queue: TaskQueue, inc: Incident, missed: datetime, now: datetime, why: str
) -> bool:
    claimed, _ = _claim(
        rt, inc, incidents.c.next_update_at == missed, incidents.c.escalated_at.is_(None), escalated_at=now
    )
    if not claimed:
        return False
    with rt.engine.begin() as conn:
        conn.execute(
            update(updates)
            .where(updates.c.incident_id == inc.id, updates.c.promise_state == "open")
            .values(promise_state="broken")
        )
    rules = rt.policy.policy.escalation
    text = (
        f"ESCALATED: incident #{inc.id} '{inc.title}' ({inc.severity.value}) drags on: {why}. Customers "
        f"were promised an update by {hhmm(missed)}; a holding message no longer keeps that promise, so "
        f"none was sent. Publish a real update now (`tocsin publish {inc.id} …`): what you know, what you "
        "are doing, when you expect more."
    )
    seniors = [rules.senior_approver] if rules.senior_approver else list(rules.contacts)
    paged = page(rt, queue, inc, text, f"escalated:{inc.id}:{iso_z(missed)}", [inc.owner, *seniors])
    with rt.engine.begin() as conn:
        _event(conn, inc, "escalated", now, paged.id, why)
    return True


# --- the duty ------------------------------------------------------------------------------------


def enforce_promises(rt: Runtime, queue: TaskQueue) -> FollowupReport:
    """Remind before promises fall due and send holding messages for those that passed. Run it often."""
    now = rt.clock.now()
    report = FollowupReport()
    remind_before = rt.policy.policy.promise.remind_before
    with rt.engine.connect() as conn:
        due = _due_incidents(conn, now + remind_before)
    for inc in due:
        promised = inc.next_update_at
        assert promised is not None
        try:
            if promised <= now:
                why = _drags_on(rt, inc, now)
                if why is not None:
                    if _escalate(rt, queue, inc, promised, now, why):
                        report.escalations.append(inc.id)
                    continue
                holding = _hold(rt, queue, inc, promised, now)
                if holding is not None:
                    report.holdings.append(holding.id)
            elif inc.promise_reminded_at is None:
                reminder = _remind(rt, queue, inc, promised, now)
                if reminder is not None:
                    report.reminders.append(reminder.id)
        except TocsinError as exc:
            log.warning("incident %s: next-update follow-up failed: %s", inc.id, exc)
            report.errors.append(f"incident {inc.id}: {exc}")
    return report
