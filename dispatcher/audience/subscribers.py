"""Store and read subscribers and their contact points: in bulk (import, fan-out) and one record at a
time (the API's and the console's create, read, change, delete). Each change is one transaction."""

from __future__ import annotations

import base64
import secrets
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, RowMapping, delete, func, insert, select, tuple_, update

from channels.base import ChannelKind
from dispatcher.domain.errors import InvalidInput, NotFound
from dispatcher.domain.models import ContactPoint, Severity, Subscriber
from dispatcher.engine.runtime import Runtime
from dispatcher.store.schema import amends_codes, contact_points, subscribers

CHUNK = 1000
PAGE = 500


def new_webhook_secret() -> str:
    """A Standard Webhooks secret: ``whsec_`` + base64 of 32 random bytes."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


@dataclass(frozen=True)
class Conflict:
    index: int
    """Position of the subscriber in the list given to ``add_subscribers``."""
    reason: str


def find_conflicts(conn: Connection, batch: Sequence[Subscriber]) -> list[Conflict]:
    """Contact points or external ids in ``batch`` that are already stored."""
    conflicts: list[Conflict] = []
    wanted = {
        (cp.channel.value, cp.address): i
        for i, s in enumerate(batch)
        for cp in s.contact_points
        if cp.channel is not ChannelKind.EMAIL
    }
    keys = list(wanted)
    for start in range(0, len(keys), 500):
        chunk = keys[start : start + 500]
        rows = conn.execute(
            select(contact_points.c.channel, contact_points.c.address).where(
                tuple_(contact_points.c.channel, contact_points.c.address).in_(chunk)
            )
        )
        for channel, address in rows:
            conflicts.append(
                Conflict(wanted[(channel, address)], f"{channel} {address} is already subscribed")
            )
    conflicts.extend(_email_conflicts(conn, batch))
    external = {s.external_id: i for i, s in enumerate(batch) if s.external_id}
    ids = list(external)
    for start in range(0, len(ids), 500):
        for (found,) in conn.execute(
            select(subscribers.c.external_id).where(subscribers.c.external_id.in_(ids[start : start + 500]))
        ):
            conflicts.append(Conflict(external[found], f"external_id {found} already exists"))
    return sorted(conflicts, key=lambda c: c.index)


def email_key(address: str) -> str:
    """What makes two email addresses the same subscriber: compared without case. The domain is
    case-blind by definition; a local part that differs only in case reaches the same mailbox at every
    provider people use, so ``BOB@Example.com`` beside ``bob@example.com`` would get every email twice.
    The address is stored and sent to as it was typed."""
    return address.lower()


def _email_conflicts(conn: Connection, batch: Sequence[Subscriber]) -> list[Conflict]:
    wanted = {
        email_key(cp.address): i
        for i, s in enumerate(batch)
        for cp in s.contact_points
        if cp.channel is ChannelKind.EMAIL
    }
    keys = list(wanted)
    found: list[Conflict] = []
    for start in range(0, len(keys), 500):
        rows = conn.execute(
            select(contact_points.c.address).where(
                contact_points.c.channel == ChannelKind.EMAIL.value,
                func.lower(contact_points.c.address).in_(keys[start : start + 500]),
            )
        )
        for (address,) in rows:
            found.append(Conflict(wanted[email_key(address)], f"email {address} is already subscribed"))
    return found


def _insert_chunk(conn: Connection, chunk: Sequence[Subscriber], now: datetime) -> None:
    ids = (
        conn.execute(
            insert(subscribers).returning(subscribers.c.id, sort_by_parameter_order=True),
            [
                {
                    "external_id": s.external_id,
                    "name": s.name,
                    "locale": s.locale,
                    "components": s.components,
                    "min_severity_rank": s.min_severity.rank,
                    "internal": s.internal,
                    "created_at": now,
                    "region": s.region,
                    "plan": s.plan,
                    "tags": s.tags or None,
                    "channels": None if s.channels is None else [c.value for c in s.channels],
                    "quiet_start": s.quiet_start,
                    "quiet_end": s.quiet_end,
                    "timezone": s.timezone,
                }
                for s in chunk
            ],
        )
        .scalars()
        .all()
    )
    rows = [
        {
            "subscriber_id": sid,
            "channel": cp.channel.value,
            "address": cp.address,
            "secret": cp.secret or (new_webhook_secret() if cp.channel is ChannelKind.WEBHOOK else None),
            "opted_out": cp.opted_out,
            "confirmed": cp.confirmed,
            "confirmed_at": now if cp.confirmed else None,
        }
        for sid, s in zip(ids, chunk, strict=True)
        for cp in s.contact_points
    ]
    if rows:
        conn.execute(insert(contact_points), rows)


def insert_subscribers(conn: Connection, items: Sequence[Subscriber], now: datetime) -> None:
    """Bulk-insert subscribers and their contact points on ``conn`` (the caller owns the transaction)."""
    for start in range(0, len(items), CHUNK):
        _insert_chunk(conn, items[start : start + CHUNK], now)


def add_subscribers(rt: Runtime, batch: Iterable[Subscriber]) -> int:
    """Insert all of ``batch`` in one transaction, or nothing if any conflicts with what is stored."""
    items = list(batch)
    with rt.engine.begin() as conn:
        conflicts = find_conflicts(conn, items)
        if conflicts:
            first = conflicts[0]
            raise InvalidInput(f"subscriber #{first.index + 1}: {first.reason}")
        insert_subscribers(conn, items, rt.clock.now())
    return len(items)


def count_subscribers(rt: Runtime) -> int:
    with rt.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(subscribers)).scalar_one())


def iter_subscribers(rt: Runtime, limit: int | None = None, after: int = 0) -> Iterator[Subscriber]:
    """Subscribers with their contact points, in id order from the first id above ``after``, read in
    pages."""
    last_id = after
    served = 0
    with rt.engine.connect() as conn:
        while limit is None or served < limit:
            page = (
                conn.execute(
                    select(subscribers)
                    .where(subscribers.c.id > last_id)
                    .order_by(subscribers.c.id)
                    .limit(PAGE if limit is None else min(PAGE, limit - served))
                )
                .mappings()
                .all()
            )
            if not page:
                return
            points = _contact_points(conn, [r["id"] for r in page])
            for row in page:
                if limit is not None and served >= limit:
                    return
                yield _subscriber(row, points)
                served += 1
            last_id = page[-1]["id"]


def _contact_points(conn: Connection, ids: Sequence[int]) -> dict[int, list[ContactPoint]]:
    """Subscriber id -> its contact points, oldest first."""
    points: dict[int, list[ContactPoint]] = {}
    if not ids:
        return points
    for cp in conn.execute(
        select(contact_points).where(contact_points.c.subscriber_id.in_(ids)).order_by(contact_points.c.id)
    ).mappings():
        points.setdefault(cp["subscriber_id"], []).append(
            ContactPoint(
                channel=ChannelKind(cp["channel"]),
                address=cp["address"],
                secret=cp["secret"],
                opted_out=cp["opted_out"],
                confirmed=cp["confirmed"],
            )
        )
    return points


def _subscriber(row: RowMapping, points: dict[int, list[ContactPoint]]) -> Subscriber:
    return Subscriber(
        id=row["id"],
        external_id=row["external_id"],
        name=row["name"],
        locale=row["locale"],
        components=row["components"],
        min_severity=list(Severity)[row["min_severity_rank"]],
        internal=row["internal"],
        contact_points=points.get(row["id"], []),
        region=row["region"],
        plan=row["plan"],
        tags=row["tags"] or [],
        channels=None if row["channels"] is None else [ChannelKind(c) for c in row["channels"]],
        quiet_start=row["quiet_start"],
        quiet_end=row["quiet_end"],
        timezone=row["timezone"],
    )


# ------------------------------------------------------------------ one subscriber at a time (API, console)

SUBSCRIBER_COLUMNS = (
    "external_id",
    "name",
    "locale",
    "components",
    "internal",
    "region",
    "plan",
    "tags",
    "channels",
    "quiet_start",
    "quiet_end",
    "timezone",
)
"""Columns a change may set directly (``min_severity`` is stored as a rank)."""


class SubscriberConflict(InvalidInput):
    """The change would clash with a stored subscriber (an address or external id already taken)."""

    http_status = 409


def load(conn: Connection, ids: Sequence[int]) -> list[Subscriber]:
    """The subscribers with these ids, with their contact points, in the order given (unknown ids are
    left out)."""
    if not ids:
        return []
    rows = {r["id"]: r for r in conn.execute(select(subscribers).where(subscribers.c.id.in_(ids))).mappings()}
    points = _contact_points(conn, ids)
    return [_subscriber(rows[sid], points) for sid in ids if sid in rows]


def get_subscriber(rt: Runtime, subscriber_id: int) -> Subscriber:
    with rt.engine.connect() as conn:
        found = load(conn, [subscriber_id])
    if not found:
        raise NotFound(f"no subscriber {subscriber_id}")
    return found[0]


def list_subscribers(rt: Runtime, after: int | None, limit: int) -> list[Subscriber]:
    """At most ``limit`` subscribers with an id above ``after``, in id order (one page of a listing)."""
    return list(iter_subscribers(rt, limit, after or 0))


def create_subscriber(rt: Runtime, subscriber: Subscriber) -> Subscriber:
    """Store one subscriber and its contact points; a taken address or external id is a
    ``SubscriberConflict``."""
    if not subscriber.contact_points:
        raise InvalidInput("contact: give at least one of email, phone, webhook_url")
    with rt.engine.begin() as conn:
        conflicts = find_conflicts(conn, [subscriber])
        if conflicts:
            raise SubscriberConflict("; ".join(c.reason for c in conflicts))
        insert_subscribers(conn, [subscriber], rt.clock.now())
        first = subscriber.contact_points[0]
        new_id = conn.execute(
            select(contact_points.c.subscriber_id).where(
                contact_points.c.channel == first.channel.value, contact_points.c.address == first.address
            )
        ).scalar_one()
        return load(conn, [int(new_id)])[0]


def _stored(field: str, value: Any) -> Any:
    if field == "channels" and value is not None:
        return [ChannelKind(c).value for c in value]
    if field == "tags":
        return value or None
    return value


def change_subscriber(
    rt: Runtime, subscriber_id: int, changes: dict[str, Any], opt_outs: dict[ChannelKind, bool] | None = None
) -> Subscriber:
    """Apply ``changes`` (column → value, plus ``min_severity``) and per-channel opt-outs, validated
    as a whole (quiet hours need both ends…) before anything is written."""
    with rt.engine.begin() as conn:
        current = load(conn, [subscriber_id])
        if not current:
            raise NotFound(f"no subscriber {subscriber_id}")
        merged = Subscriber.model_validate({**current[0].model_dump(), **changes})
        external = changes.get("external_id")
        if external is not None and external != current[0].external_id:
            taken = conn.execute(
                select(subscribers.c.id).where(
                    subscribers.c.external_id == external, subscribers.c.id != subscriber_id
                )
            ).first()
            if taken is not None:
                raise SubscriberConflict(f"external_id {external} already exists")
        values = {f: _stored(f, getattr(merged, f)) for f in SUBSCRIBER_COLUMNS if f in changes}
        if "min_severity" in changes:
            values["min_severity_rank"] = merged.min_severity.rank
        if values:
            conn.execute(update(subscribers).where(subscribers.c.id == subscriber_id).values(**values))
        have = {cp.channel for cp in current[0].contact_points}
        for channel, opted_out in (opt_outs or {}).items():
            if channel not in have:
                raise InvalidInput(
                    f"opted_out.{channel.value}: the subscriber has no {channel.value} address"
                )
            conn.execute(
                update(contact_points)
                .where(
                    contact_points.c.subscriber_id == subscriber_id,
                    contact_points.c.channel == channel.value,
                    contact_points.c.opted_out != opted_out,
                )
                .values(
                    opted_out=opted_out,
                    opted_out_reason="preference set through the API" if opted_out else None,
                    opted_out_at=rt.clock.now() if opted_out else None,
                )
            )
        return load(conn, [subscriber_id])[0]


def delete_subscriber(rt: Runtime, subscriber_id: int) -> None:
    """Remove the subscriber and its contact points (the ledger keeps what was sent to them)."""
    with rt.engine.begin() as conn:
        conn.execute(delete(contact_points).where(contact_points.c.subscriber_id == subscriber_id))
        conn.execute(delete(amends_codes).where(amends_codes.c.subscriber_id == subscriber_id))
        found = conn.execute(delete(subscribers).where(subscribers.c.id == subscriber_id)).rowcount
    if not found:
        raise NotFound(f"no subscriber {subscriber_id}")
