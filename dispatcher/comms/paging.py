"""Paging staff and named people: an internal update of kind ``reminder``, plus an email of its own to
each named person (the owner, a senior approver, escalation contacts) the internal audience does not
already reach.

A named person is an email address or a subscriber's ``external_id``. Their rows go on the reminder
update in a batch apart (``PAGE_BATCH``), so they get it through the email channel with the usual
retries, and the ledger shows it.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Connection, func, select

from channels.base import ChannelKind
from dispatcher.comms.publish import publish
from dispatcher.domain.models import Audience, Incident, Update, UpdateDraft
from dispatcher.engine.runtime import Runtime
from dispatcher.engine.task_queue import BatchRef, TaskQueue
from dispatcher.store.bulk import insert_deliveries, timestamp_value
from dispatcher.store.schema import contact_points, subscribers

AUTHOR = "tocsin"
PAGE_BATCH = 1_000_000
"""Batch number of the named people's own rows: far above any batch a fan-out numbers from 0."""


def person_emails(conn: Connection, person: str) -> list[str]:
    """Email addresses of ``person`` (an address, or a subscriber's external id) that the internal
    audience does not already reach."""
    if "@" in person:
        address = person.strip().lower()
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
            subscribers.c.external_id == person,
            contact_points.c.channel == ChannelKind.EMAIL.value,
            contact_points.c.opted_out.is_(False),
        )
    ).all()
    return [address for internal, address in found if not internal]


def reach(rt: Runtime, queue: TaskQueue, upd: Update, people: Iterable[str | None]) -> list[str]:
    """Give each named person a row of their own on ``upd`` (an internal update); the addresses added."""
    named = [p.strip() for p in people if p and p.strip()]
    if not named or ChannelKind.EMAIL not in upd.channels:
        return []
    with rt.engine.begin() as conn:
        addresses = list(dict.fromkeys(a for p in named for a in person_emails(conn, p)))
        if not addresses:
            return []
        now = timestamp_value(conn, rt.clock.now())
        insert_deliveries(
            conn,
            [
                (
                    upd.id,
                    ChannelKind.EMAIL.value,
                    a,
                    None,
                    None,
                    "en",
                    PAGE_BATCH,
                    "queued",
                    0,
                    None,
                    now,
                    now,
                )
                for a in addresses
            ],
        )
    queue.submit_batch(BatchRef(upd.id, ChannelKind.EMAIL, PAGE_BATCH))
    return addresses


def page(
    rt: Runtime, queue: TaskQueue, incident: Incident, text: str, key: str, people: Iterable[str | None]
) -> Update:
    """Tell staff (and ``people``) ``text`` about ``incident`` at once: an internal reminder, published
    once per ``key`` (its idempotency key)."""
    draft = UpdateDraft(
        incident_id=incident.id,
        status=incident.status,
        message=text,
        audience=Audience.INTERNAL,
        author=AUTHOR,
        kind="reminder",
        idempotency_key=key,
    )
    published = publish(rt, draft, queue)
    if published.created:
        reach(rt, queue, published.update, people)
    return published.update
