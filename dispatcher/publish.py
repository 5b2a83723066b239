"""Publish one update: validate, persist it as pending, hand its fan-out to the task queue.

Publishing is idempotent: the same idempotency key returns the update it first created and sends
nothing twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, select, update
from sqlalchemy.exc import IntegrityError

from channels.base import ChannelKind
from dispatcher.errors import InvalidInput, NotFound
from dispatcher.models import Audience, Update, UpdateDraft, UpdateState
from dispatcher.runtime import Runtime
from dispatcher.store.schema import incidents, updates
from dispatcher.task_queue import TaskQueue


@dataclass(frozen=True)
class Published:
    update: Update
    created: bool
    """False when the idempotency key matched an update published earlier."""


def _existing(conn: Connection, key: str) -> Update | None:
    row = conn.execute(select(updates).where(updates.c.idempotency_key == key)).mappings().first()
    return None if row is None else Update.model_validate(dict(row))


def _same_request(update: Update, draft: UpdateDraft) -> bool:
    return (update.incident_id, update.status, update.message) == (
        draft.incident_id,
        draft.status,
        draft.message,
    )


def _channels_for(rt: Runtime, draft: UpdateDraft) -> list[ChannelKind]:
    enabled = rt.settings.enabled_channels()
    chosen = draft.channels if draft.channels is not None else enabled
    not_enabled = [c.value for c in chosen if c not in enabled]
    if not_enabled:
        raise InvalidInput(f"channels: {', '.join(not_enabled)} not enabled in the configuration")
    if draft.audience is not Audience.PUBLIC:
        # Social posts reach the whole world: never for internal updates (chat rooms are staff's).
        chosen = [c for c in chosen if c is not ChannelKind.SOCIAL]
    if not chosen:
        raise InvalidInput("channels: the update would go out on no channel")
    return list(dict.fromkeys(chosen))


def publish(rt: Runtime, draft: UpdateDraft, queue: TaskQueue) -> Published:
    now = rt.clock.now()
    if draft.next_update_at is not None:
        if draft.next_update_at.tzinfo is None:
            raise InvalidInput("next_update_at: give a time zone (e.g. 2026-01-01T14:30:00Z)")
        if draft.next_update_at <= now:
            raise InvalidInput("next_update_at: must be in the future")
    if draft.idempotency_key:
        with rt.engine.connect() as conn:
            earlier = _existing(conn, draft.idempotency_key)
        if earlier is not None:
            return _replay(earlier, draft)
    channels = _channels_for(rt, draft)
    values: dict[str, Any] = {
        "incident_id": draft.incident_id,
        "status": draft.status.value,
        "message": draft.message,
        "next_update_at": draft.next_update_at,
        "audience": draft.audience.value,
        "channels": [c.value for c in channels],
        "idempotency_key": draft.idempotency_key,
        "state": UpdateState.PENDING.value,
        "published_at": now,
    }
    try:
        with rt.engine.begin() as conn:
            found = conn.execute(
                update(incidents)
                .where(incidents.c.id == draft.incident_id)
                .values(status=draft.status.value, updated_at=now)
            ).rowcount
            if not found:
                raise NotFound(f"no incident {draft.incident_id}")
            row = conn.execute(updates.insert().values(**values).returning(*updates.c)).mappings().one()
    except IntegrityError:
        # Two publishes with the same key raced; the first one won.
        assert draft.idempotency_key is not None
        with rt.engine.connect() as conn:
            earlier = _existing(conn, draft.idempotency_key)
        if earlier is None:
            raise
        return _replay(earlier, draft)
    published = Update.model_validate(dict(row))
    queue.submit_fanout(published.id)
    return Published(published, created=True)


def _replay(earlier: Update, draft: UpdateDraft) -> Published:
    if not _same_request(earlier, draft):
        raise InvalidInput(
            f"idempotency_key: {draft.idempotency_key!r} was used for update {earlier.id} "
            "with a different incident, status or message"
        )
    return Published(earlier, created=False)


def get_update(rt: Runtime, update_id: int) -> Update:
    with rt.engine.connect() as conn:
        row = conn.execute(select(updates).where(updates.c.id == update_id)).mappings().first()
    if row is None:
        raise NotFound(f"no update {update_id}")
    return Update.model_validate(dict(row))
