"""Fan-out: turn one update into delivery rows, one task per batch.

Who is owed the update is ``dispatcher.domain.audiences`` (public, internal, segments; staff first) and each
subscriber's preferences: channels, components, minimum severity, confirmed contact points only. A
subscriber in their quiet hours gets the row of a non-critical update with ``next_attempt_at`` at the
end of the window (``dispatcher.domain.quiet_hours``).

The audience is streamed in pages (keyset pagination on contact points), rows are bulk-inserted a
batch at a time and each batch is handed to the queue as soon as it is committed, so memory stays flat
whatever the audience size and the first deliveries start while later pages are still being read.
Re-running a fan-out is safe: rows are unique per (update, channel, address) and inserts skip
existing ones; a batch with nothing left to claim is a no-op for the deliverer.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import (
    ColumnElement,
    Connection,
    Select,
    String,
    Text,
    bindparam,
    cast,
    exists,
    select,
    update,
)

from channels.base import ChannelKind
from dispatcher.domain.audiences import AudiencePass, audience_passes, segment_row_match
from dispatcher.domain.models import Audience, DeliveryState, Incident, Severity, Update, UpdateState
from dispatcher.domain.policy import Segment
from dispatcher.domain.quiet_hours import quiet_until
from dispatcher.domain.readers import ReaderVariant, needs_opt_out_hint
from dispatcher.engine.runtime import Runtime
from dispatcher.engine.task_queue import BatchRef, TaskQueue
from dispatcher.store.bulk import DeliveriesExist, insert_deliveries, insert_fresh_deliveries, timestamp_value
from dispatcher.store.queries import get_incident, get_update
from dispatcher.store.schema import Timestamp, contact_points, deliveries, subscribers, updates


@dataclass
class FanoutSummary:
    update_id: int
    rows: dict[ChannelKind, int] = field(default_factory=dict)
    batches: dict[ChannelKind, int] = field(default_factory=dict)
    deferred: dict[ChannelKind, int] = field(default_factory=dict)
    """Rows written to wait for the end of their subscriber's quiet hours."""


class _Owed(NamedTuple):  # a tuple: one is made per contact point, millions for a big audience
    """One contact point owed the update, and when (None: now)."""

    point_id: int
    address: str
    opted_out: bool
    subscriber_id: int
    locale: str
    not_before: datetime | None
    timezone: str | None = None


PREFERENCE_COLUMNS = (
    # As text: most subscribers follow everything ("[]"), and then nothing needs decoding.
    cast(subscribers.c.components, Text).label("components"),
    cast(subscribers.c.channels, Text).label("channels"),
    subscribers.c.region,
    subscribers.c.plan,
    cast(subscribers.c.tags, Text).label("tags"),
)
"""The subscriber's columns ``wants`` reads, to select with ``audience_query``."""


def audience_query(
    columns: Sequence[ColumnElement[Any]], channel: ChannelKind, severity: Severity, audience: AudiencePass
) -> Select[Any]:
    """``columns`` of the contact points (joined to their subscribers) on ``channel`` that one pass of
    an update of ``severity`` selects in SQL; ``wants`` then checks each row's preferences.

    Opted-out contact points are kept: they are owed a row, written ``suppressed``."""
    query = (
        select(*columns)
        .select_from(contact_points.join(subscribers, subscribers.c.id == contact_points.c.subscriber_id))
        .where(contact_points.c.channel == channel.value)
        # A self-service signup is owed nothing until its owner confirms it (double opt-in).
        .where(contact_points.c.confirmed.is_(True))
        .where(subscribers.c.min_severity_rank <= severity.rank)
    )
    if audience.internal is not None:
        query = query.where(subscribers.c.internal.is_(audience.internal))
    segment = audience.segment
    if segment is not None and segment.regions:
        query = query.where(subscribers.c.region.in_(segment.regions))
    if segment is not None and segment.plans:
        query = query.where(subscribers.c.plan.in_(segment.plans))
    return query


def _audience_page(
    conn: Connection,
    channel: ChannelKind,
    severity: Severity,
    audience: AudiencePass,
    after: int,
    size: int,
) -> Sequence[Any]:
    columns = (
        contact_points.c.id,
        contact_points.c.address,
        contact_points.c.opted_out,
        contact_points.c.subscriber_id,
        subscribers.c.locale,
        subscribers.c.quiet_start,
        subscribers.c.quiet_end,
        subscribers.c.timezone,
        *PREFERENCE_COLUMNS,
    )
    query = (
        audience_query(columns, channel, severity, audience)
        .where(contact_points.c.id > after)
        .order_by(contact_points.c.id)
        .limit(size)
    )
    return conn.execute(query).all()  # fetchall: one driver call per page, not one per row


@functools.lru_cache(maxsize=1024)
def _names(encoded: str) -> frozenset[str]:
    """A JSON list of names (a subscriber's channels or components), decoded once per distinct text:
    a big audience repeats a handful of them."""
    return frozenset(json.loads(encoded))


def wants(row: Any, channel: ChannelKind, affected: set[str], segment: Segment | None) -> bool:
    """The subscriber's own preferences (channels, components) and the segment, for one row holding
    ``PREFERENCE_COLUMNS``; ``affected`` is the incident's components."""
    channels = row.channels
    if channels not in (None, "null") and channel.value not in _names(channels):
        return False
    components = row.components
    if affected and components not in (None, "[]", "null") and affected.isdisjoint(_names(components)):
        return False
    return segment is None or segment_row_match(segment, components, row.region, row.plan, row.tags)


def _audience(
    rt: Runtime,
    channel: ChannelKind,
    audience: AudiencePass,
    severity: Severity,
    incident: Incident,
    now: datetime,
) -> Iterator[_Owed]:
    """Contact points of one pass owed this update on ``channel``, filtered by preferences."""
    affected = set(incident.components)
    quiet_applies = severity is not Severity.CRITICAL
    after = 0
    while True:
        with rt.engine.connect() as conn:
            page = _audience_page(conn, channel, severity, audience, after, rt.settings.fanout_page_size)
        if not page:
            return
        for row in page:
            if not wants(row, channel, affected, audience.segment):
                continue
            not_before = (
                quiet_until(now, row.quiet_start, row.quiet_end, row.timezone)
                if quiet_applies and row.quiet_start
                else None
            )
            yield _Owed(
                row.id, row.address, row.opted_out, row.subscriber_id, row.locale, not_before, row.timezone
            )
        if len(page) < rt.settings.fanout_page_size:
            return  # a short page is the last one: no query to learn that the next one is empty
        after = page[-1][0]


_QUEUED, _SUPPRESSED = DeliveryState.QUEUED.value, DeliveryState.SUPPRESSED.value


def _row(
    update_id: int,
    channel: str,
    batch: int,
    now: Any,
    address: str,
    subscriber_id: int | None,
    contact_point_id: int | None,
    locale: str,
    opted_out: bool,
) -> tuple[Any, ...]:
    """One delivery row, in ``DELIVERY_COLUMNS`` order (``channel``: the kind's value)."""
    return (
        update_id,
        channel,
        address,
        subscriber_id,
        contact_point_id,
        locale,
        batch,
        _SUPPRESSED if opted_out else _QUEUED,
        0,
        "opted out" if opted_out else None,
        now,
        now,
    )


@dataclass
class _Writer:
    """Writes one channel's batches, each in its own transaction, and hands each to the queue once it
    is committed. ``fresh``: no row of this update and channel existed when the fan-out began, so the
    quick insert applies (see ``dispatcher.store.bulk``) until a batch finds otherwise."""

    rt: Runtime
    queue: TaskQueue
    fresh: bool

    def flush(
        self, ref: BatchRef, rows: list[tuple[Any, ...]], deferred: list[tuple[str, datetime]] | None = None
    ) -> None:
        if self.fresh:
            try:
                self._write(ref, rows, deferred, insert_fresh_deliveries)
            except DeliveriesExist:
                self.fresh = False  # another fan-out of this update got there first: skip what it wrote
        if not self.fresh:
            self._write(ref, rows, deferred, insert_deliveries)
        self.queue.submit_batch(ref)

    def _write(
        self,
        ref: BatchRef,
        rows: list[tuple[Any, ...]],
        deferred: list[tuple[str, datetime]] | None,
        insert: Callable[[Connection, Sequence[tuple[Any, ...]]], None],
    ) -> None:
        with self.rt.engine.begin() as conn:
            insert(conn, rows)
            if deferred:
                _defer(conn, ref, deferred)


def _nothing_written(rt: Runtime, update_id: int, channel: ChannelKind) -> bool:
    with rt.engine.connect() as conn:
        found = conn.execute(
            select(
                exists().where(deliveries.c.update_id == update_id, deliveries.c.channel == channel.value)
            )
        ).scalar_one()
    return not found


def _defer(conn: Connection, ref: BatchRef, deferred: list[tuple[str, datetime]]) -> None:
    """Rows just written for subscribers in their quiet hours: not claimable before the window ends.

    Found through the (update, channel, address) unique index, one lookup each. Only fresh rows
    (queued, never tried) are touched, so re-running a fan-out never moves a retry."""
    conn.execute(
        update(deliveries)
        .where(
            deliveries.c.update_id == ref.update_id,
            deliveries.c.channel == ref.channel.value,
            deliveries.c.address == bindparam("owed_address", type_=String()),
            deliveries.c.state == DeliveryState.QUEUED.value,
            deliveries.c.attempts == 0,
        )
        .values(next_attempt_at=bindparam("until", type_=Timestamp()), last_error=bindparam("why")),
        [
            {"owed_address": address, "until": until, "why": f"quiet hours until {until:%Y-%m-%d %H:%M} UTC"}
            for address, until in deferred
        ],
    )


def _fan_out_channel(
    rt: Runtime,
    queue: TaskQueue,
    update: Update,
    incident: Incident,
    channel: ChannelKind,
    summary: FanoutSummary,
) -> None:
    clock_now = rt.clock.now()
    with rt.engine.connect() as conn:
        now = timestamp_value(conn, clock_now)
    writer = _Writer(rt, queue, fresh=_nothing_written(rt, update.id, channel))
    kind = channel.value
    if channel.is_broadcast:
        targets = rt.broadcast_targets(channel)
        if channel is ChannelKind.STATUSPAGE and update.audience is not Audience.PUBLIC:
            # Staff's internal site only: a public status site never changes for an internal update.
            targets = [t for t in targets if t.startswith("internal-")]
        rows = [
            _row(update.id, kind, 0, now, target, None, None, rt.settings.default_locale, False)
            for target in targets
        ]
        if rows:
            writer.flush(BatchRef(update.id, channel, 0), rows)
        summary.rows[channel], summary.batches[channel] = len(rows), 1 if rows else 0
        return
    size = rt.batch_size(channel)
    severity = Severity(update.severity) if update.severity else Severity(incident.severity)
    batch, count, waiting = 0, 0, 0
    pending: list[tuple[Any, ...]] = []
    deferred: list[tuple[str, datetime]] = []

    def flush() -> None:
        nonlocal batch, count, pending, deferred
        writer.flush(BatchRef(update.id, channel, batch), pending, deferred)
        count += len(pending)
        batch, pending, deferred = batch + 1, [], []

    for audience in audience_passes(rt.policy.policy, update.audience):
        # Staff get the update's internal note too: their rows render a variant of their locale.
        staff_variant = bool(audience.internal and update.internal_note)
        for owed in _audience(rt, channel, audience, severity, incident, clock_now):
            pending.append(
                _row(
                    update.id,
                    kind,
                    batch,
                    now,
                    owed.address,
                    owed.subscriber_id,
                    owed.point_id,
                    _reader_key(channel, owed, staff_variant),
                    owed.opted_out,
                )
            )
            if owed.not_before is not None and not owed.opted_out:
                deferred.append((owed.address, owed.not_before))
                waiting += 1
            if len(pending) == size:
                flush()
        if pending:  # each pass ends its own batch: staff's batches go to the queue before anyone else's
            flush()
    summary.rows[channel], summary.batches[channel] = count, batch
    summary.deferred[channel] = waiting


def _reader_key(channel: ChannelKind, owed: _Owed, staff: bool) -> str:
    """The variant of the rendering this contact point reads (``dispatcher.domain.readers``): locale,
    staff's copy, the subscriber's time zone, and whether their SMS ends with the opt-out hint."""
    return ReaderVariant(
        locale=owed.locale,
        staff=staff,
        zone=owed.timezone,
        opt_out_hint=channel is ChannelKind.SMS and needs_opt_out_hint(owed.address),
    ).key


def fan_out(rt: Runtime, update_id: int, queue: TaskQueue) -> FanoutSummary:
    """Write the delivery rows of ``update_id`` and submit one deliver task per batch."""
    with rt.engine.connect() as conn:
        upd = get_update(conn, update_id)
        incident = get_incident(conn, upd.incident_id)
    summary = FanoutSummary(update_id)
    if upd.state is not UpdateState.PENDING:
        # Fanned out already, or not released: scheduled, waiting for approval, rejected.
        return summary
    for channel in upd.channels:
        _fan_out_channel(rt, queue, upd, incident, channel, summary)
    with rt.engine.begin() as conn:
        conn.execute(
            update(updates)
            .where(updates.c.id == update_id)
            .values(state=UpdateState.FANNED_OUT.value, fanned_out_at=rt.clock.now())
        )
    return summary
