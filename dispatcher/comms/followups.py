"""The next-update promise, enforced: remind before it is due, keep people informed when it is missed.

Every public update may promise the next one (``next_update_at``); the incident keeps the promise now
standing. For every unresolved incident (scheduled maintenance keeps its own promise, see
``dispatcher.comms.maintenance``):

- ``promise.remind_before`` ahead of the promise, the internal audience (and the incident's owner) get a
  reminder: an internal update of kind ``reminder``, written by ``tocsin``.
- When the promise passes with no new public update, Tocsin sends the approved holding message
  (``promise.holding_message``, in each subscriber's language) to the audience of the last public
  update, promising the next one a severity cadence later. The missed promise is recorded as broken.
  Three missed promises give three holding messages: "no news yet" beats silence.

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
from datetime import datetime

from sqlalchemy import ColumnElement, Connection, and_, func, select, update

from channels.base import ChannelKind
from dispatcher.comms.lifecycle import record_event
from dispatcher.comms.publish import publish
from dispatcher.domain.errors import TocsinError
from dispatcher.domain.models import Audience, Incident, IncidentStatus, Update, UpdateDraft, UpdateState
from dispatcher.domain.texts import hhmm, holding_text, iso_z
from dispatcher.engine.runtime import Runtime
from dispatcher.engine.task_queue import BatchRef, TaskQueue
from dispatcher.store.bulk import insert_deliveries, timestamp_value
from dispatcher.store.queries import incident_from_row, update_from_row
from dispatcher.store.schema import contact_points, incidents, subscribers, updates

__all__ = [
    "AUTHOR",
    "OWNER_BATCH",
    "FollowupReport",
    "enforce_promises",
]

log = logging.getLogger(__name__)

AUTHOR = "tocsin"
OWNER_BATCH = 1_000_000
"""Batch number of the owner's own reminder row: far above any batch a fan-out numbers from 0."""

PUBLISHED_STATES = (UpdateState.PENDING.value, UpdateState.FANNED_OUT.value)


@dataclass
class FollowupReport:
    reminders: list[int] = field(default_factory=list)
    """Ids of the reminder updates published."""
    holdings: list[int] = field(default_factory=list)
    """Ids of the holding updates published."""
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


def _owner_emails(conn: Connection, owner: str) -> list[str]:
    """Email addresses of the owner that the internal audience does not already reach."""
    if "@" in owner:
        address = owner.strip().lower()
        internal = conn.execute(
            select(contact_points.c.id)
            .join(subscribers, subscribers.c.id == contact_points.c.subscriber_id)
            .where(
                contact_points.c.channel == ChannelKind.EMAIL.value,
                func.lower(contact_points.c.address) == address,
                subscribers.c.internal.is_(True),
            )
        ).first()
        return [] if internal is not None else [address]
    found = conn.execute(
        select(subscribers.c.internal, contact_points.c.address)
        .join(contact_points, contact_points.c.subscriber_id == subscribers.c.id)
        .where(
            subscribers.c.external_id == owner,
            contact_points.c.channel == ChannelKind.EMAIL.value,
            contact_points.c.opted_out.is_(False),
        )
    ).all()
    return [address for internal, address in found if not internal]


def _reach_owner(rt: Runtime, queue: TaskQueue, inc: Incident, reminder: Update) -> None:
    if not inc.owner or ChannelKind.EMAIL not in reminder.channels:
        return
    with rt.engine.begin() as conn:
        addresses = _owner_emails(conn, inc.owner)
        if not addresses:
            return
        now = timestamp_value(conn, rt.clock.now())
        insert_deliveries(
            conn,
            [
                (
                    reminder.id,
                    ChannelKind.EMAIL.value,
                    a,
                    None,
                    None,
                    "en",
                    OWNER_BATCH,
                    "queued",
                    0,
                    None,
                    now,
                    now,
                )
                for a in addresses
            ],
        )
    queue.submit_batch(BatchRef(reminder.id, ChannelKind.EMAIL, OWNER_BATCH))


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
    )
    if not claimed:
        return None
    draft = UpdateDraft(
        incident_id=inc.id,
        status=inc.status,
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
        rt, queue, draft, incidents.c.next_update_at == promise, next_update_at=missed
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
