"""Writing outcomes to the ledger of deliveries, and reading it back per update.

Writes are grouped: rows that share an outcome (and, for SendGrid, one provider message id per
request) are finished by one UPDATE, so a 1,000-recipient batch costs a handful of statements.

An attempt is counted (``attempts + 1``) when a row's result is written for a request that reached the
provider (sent, failed, retried, opted out), never when a row is claimed: rows put back untried
(``mark_waiting``), superseded or suppressed before sending keep their count. Each counted attempt
that did not deliver is kept in ``delivery_tries`` with its error (``log_tries``), so a dead letter
carries the evidence of every real attempt.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, String, bindparam, cast, func, insert, literal, select, update

from channels.base import MESSAGE_ID_PREFIX, ChannelKind
from dispatcher.domain.models import DeliveryState
from dispatcher.engine.task_queue import BatchRef
from dispatcher.store.schema import deliveries, delivery_attempts, delivery_tries
from dispatcher.store.sql import one_of


def _in_flight(conn: Connection, ids: Sequence[int]) -> Any:
    return one_of(conn, deliveries.c.id, ids) & (deliveries.c.state == DeliveryState.SENDING.value)


def _finish_each(conn: Connection, params: list[dict[str, Any]], **values: Any) -> None:
    """One UPDATE, executed for many rows: each still in flight gets ``values`` (and its own params)."""
    if params:
        conn.execute(
            update(deliveries)
            .where(deliveries.c.id == bindparam("b_id"))
            .where(deliveries.c.state == DeliveryState.SENDING.value)
            .values(lease_until=None, **values),
            params,
        )


def mark_sent(conn: Connection, provider: str, sent: Sequence[tuple[int, str | None]], now: datetime) -> None:
    """Finish rows as sent; ``sent`` holds (delivery id, provider message id).

    Grouped so a batch costs a few statements: rows whose provider id is our own stable message id
    (webhooks) and rows sharing one provider id (a SendGrid request) are each finished by one UPDATE."""
    done = {
        "state": DeliveryState.SENT.value,
        "provider": provider,
        "sent_at": now,
        "updated_at": now,
        "last_error": None,
        "next_attempt_at": None,
        "attempts": deliveries.c.attempts + 1,
    }
    own = [row_id for row_id, message_id in sent if message_id == f"{MESSAGE_ID_PREFIX}{row_id}"]
    if own:
        derived = literal(MESSAGE_ID_PREFIX) + cast(deliveries.c.id, String)
        conn.execute(
            update(deliveries)
            .where(_in_flight(conn, own))
            .values(provider_message_id=derived, lease_until=None, **done)
        )
    by_message: dict[str | None, list[int]] = defaultdict(list)
    owned = set(own)
    for delivery_id, message_id in sent:
        if delivery_id not in owned:
            by_message[message_id].append(delivery_id)
    for message_id, ids in by_message.items():
        if len(ids) > 1:
            conn.execute(
                update(deliveries)
                .where(_in_flight(conn, ids))
                .values(provider_message_id=message_id, lease_until=None, **done)
            )
    singles = [{"b_id": ids[0], "b_message_id": m} for m, ids in by_message.items() if len(ids) == 1]
    _finish_each(conn, singles, provider_message_id=bindparam("b_message_id"), **done)


def mark_failed(
    conn: Connection,
    provider: str | None,
    failed: Sequence[tuple[int, str]],
    now: datetime,
    state: DeliveryState = DeliveryState.FAILED,
    charged: bool = True,
) -> None:
    """Finish rows as ``state`` with their error; ``charged``: a request for them reached the provider
    (False for rows settled before sending: opted out, superseded)."""
    counted = {"attempts": deliveries.c.attempts + 1} if charged else {}
    _finish_each(
        conn,
        [{"b_id": i, "b_error": e[:2000]} for i, e in failed],
        state=state.value,
        provider=provider,
        last_error=bindparam("b_error"),
        updated_at=now,
        next_attempt_at=None,
        **counted,
    )


def mark_retry(
    conn: Connection, provider: str | None, retry: Sequence[tuple[int, str, float]], now: datetime
) -> None:
    """Put rows back in the queue after a counted attempt, owed again after their delay (seconds)."""
    _finish_each(
        conn,
        [{"b_id": i, "b_error": e[:2000], "b_at": now + timedelta(seconds=d)} for i, e, d in retry],
        state=DeliveryState.QUEUED.value,
        provider=provider,
        last_error=bindparam("b_error"),
        next_attempt_at=bindparam("b_at"),
        updated_at=now,
        attempts=deliveries.c.attempts + 1,
    )


def mark_waiting(conn: Connection, rows: Sequence[tuple[int, str, float]], now: datetime) -> None:
    """Back to the queue for (row id, why, seconds) without counting an attempt (nothing was tried)."""
    _finish_each(
        conn,
        [{"b_id": i, "b_error": why, "b_at": now + timedelta(seconds=delay)} for i, why, delay in rows],
        state=DeliveryState.QUEUED.value,
        last_error=bindparam("b_error"),
        updated_at=now,
        next_attempt_at=bindparam("b_at"),
    )


def count_attempts(conn: Connection, ids: Sequence[int]) -> None:
    """Count an attempt for rows that stay in flight (handed to the channel's next provider)."""
    if ids:
        counted = deliveries.c.attempts + 1
        conn.execute(update(deliveries).where(_in_flight(conn, ids)).values(attempts=counted))


def renew_lease(conn: Connection, ids: Sequence[int], until: datetime) -> None:
    """The worker is alive and still working through these rows: keep them out of others' hands."""
    if ids:
        conn.execute(update(deliveries).where(_in_flight(conn, ids)).values(lease_until=until))


@dataclass
class AttemptRecord:
    ref: BatchRef
    provider: str
    size: int
    outcome: str
    started_at: datetime
    sent: int = 0
    retrying: int = 0
    failed: int = 0
    error: str | None = None


def log_tries(conn: Connection, provider: str, tried: Sequence[tuple[int, str, str]], now: datetime) -> None:
    """Keep the evidence of counted attempts that did not deliver: (row id, outcome, error) each."""
    if tried:
        conn.execute(
            insert(delivery_tries),
            [
                {"delivery_id": i, "provider": provider, "outcome": o, "error": e[:2000], "tried_at": now}
                for i, o, e in tried
            ],
        )


def tries_of(conn: Connection, delivery_id: int) -> list[tuple[str, str, str | None, datetime]]:
    """(provider, outcome, error, when) of each counted attempt of one row that did not deliver."""
    t = delivery_tries.c
    rows = conn.execute(
        select(t.provider, t.outcome, t.error, t.tried_at).where(t.delivery_id == delivery_id).order_by(t.id)
    )
    return [(p, o, e, at) for p, o, e, at in rows]


def log_attempt(conn: Connection, record: AttemptRecord, finished_at: datetime) -> None:
    conn.execute(
        insert(delivery_attempts).values(
            update_id=record.ref.update_id,
            channel=record.ref.channel.value,
            batch=record.ref.batch,
            provider=record.provider,
            size=record.size,
            outcome=record.outcome,
            sent=record.sent,
            retrying=record.retrying,
            failed=record.failed,
            error=(record.error or "")[:2000] or None,
            started_at=record.started_at,
            finished_at=finished_at,
        )
    )


@dataclass
class ChannelStatus:
    channel: ChannelKind
    counts: dict[DeliveryState, int] = field(default_factory=dict)

    @property
    def owed(self) -> int:
        return self.counts.get(DeliveryState.QUEUED, 0) + self.counts.get(DeliveryState.SENDING, 0)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def count(self, state: DeliveryState) -> int:
        return self.counts.get(state, 0)


def update_status(conn: Connection, update_id: int) -> list[ChannelStatus]:
    """Per channel: how many rows are in each state for ``update_id``."""
    rows = conn.execute(
        select(deliveries.c.channel, deliveries.c.state, func.count())
        .where(deliveries.c.update_id == update_id)
        .group_by(deliveries.c.channel, deliveries.c.state)
    )
    result: dict[ChannelKind, ChannelStatus] = {}
    for channel, state, count in rows:
        kind = ChannelKind(channel)
        result.setdefault(kind, ChannelStatus(kind)).counts[DeliveryState(state)] = int(count)
    return [result[k] for k in ChannelKind if k in result]


def providers_used(conn: Connection, update_id: int) -> dict[tuple[ChannelKind, str], int]:
    rows = conn.execute(
        select(deliveries.c.channel, deliveries.c.provider, func.count())
        .where(deliveries.c.update_id == update_id, deliveries.c.state == DeliveryState.SENT.value)
        .group_by(deliveries.c.channel, deliveries.c.provider)
    )
    return {(ChannelKind(c), p or "?"): int(n) for c, p, n in rows}
