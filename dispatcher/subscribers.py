"""Store and read subscribers and their contact points."""

from __future__ import annotations

import base64
import secrets
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, func, insert, select, tuple_

from channels.base import ChannelKind
from dispatcher.errors import InvalidInput
from dispatcher.models import ContactPoint, Severity, Subscriber
from dispatcher.runtime import Runtime
from dispatcher.store.schema import contact_points, subscribers

CHUNK = 1000


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
    wanted = {(cp.channel.value, cp.address): i for i, s in enumerate(batch) for cp in s.contact_points}
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
    external = {s.external_id: i for i, s in enumerate(batch) if s.external_id}
    ids = list(external)
    for start in range(0, len(ids), 500):
        for (found,) in conn.execute(
            select(subscribers.c.external_id).where(subscribers.c.external_id.in_(ids[start : start + 500]))
        ):
            conflicts.append(Conflict(external[found], f"external_id {found} already exists"))
    return sorted(conflicts, key=lambda c: c.index)


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


def iter_subscribers(rt: Runtime, limit: int | None = None) -> Iterator[Subscriber]:
    """Subscribers with their contact points, in id order, read in pages."""
    last_id = 0
    served = 0
    with rt.engine.connect() as conn:
        while limit is None or served < limit:
            page = (
                conn.execute(
                    select(subscribers)
                    .where(subscribers.c.id > last_id)
                    .order_by(subscribers.c.id)
                    .limit(500)
                )
                .mappings()
                .all()
            )
            if not page:
                return
            ids = [r["id"] for r in page]
            points: dict[int, list[ContactPoint]] = {}
            for cp in conn.execute(
                select(contact_points)
                .where(contact_points.c.subscriber_id.in_(ids))
                .order_by(contact_points.c.id)
            ).mappings():
                points.setdefault(cp["subscriber_id"], []).append(
                    ContactPoint(
                        channel=ChannelKind(cp["channel"]),
                        address=cp["address"],
                        secret=cp["secret"],
                        opted_out=cp["opted_out"],
                    )
                )
            for row in page:
                if limit is not None and served >= limit:
                    return
                yield Subscriber(
                    id=row["id"],
                    external_id=row["external_id"],
                    name=row["name"],
                    locale=row["locale"],
                    components=row["components"],
                    min_severity=list(Severity)[row["min_severity_rank"]],
                    internal=row["internal"],
                    contact_points=points.get(row["id"], []),
                )
                served += 1
            last_id = ids[-1]
