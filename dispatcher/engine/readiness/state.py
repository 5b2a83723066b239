"""What the probes found, kept in the database so every process shows the same (``/readyz``, ``/metrics``,
the console, ``tocsin preview``), and each change of a channel's state is claimed by exactly one process.

A channel is **ready** when every provider of its chain answers its probe, **degraded** when some do (a
fallback carries it, or the fallback is gone), and **down** when none does. A channel never probed
counts as ready: the first probe that finds it worse is a change, and staff hear of it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import Connection, select, update
from sqlalchemy.dialects import postgresql, sqlite

from channels.base import ChannelKind
from dispatcher.engine.readiness.probing import ProviderReadiness
from dispatcher.engine.runtime import Runtime
from dispatcher.store.schema import channel_readiness, provider_readiness

ChannelState = Literal["ready", "degraded", "down"]
READY: ChannelState = "ready"
DEGRADED: ChannelState = "degraded"
DOWN: ChannelState = "down"
_RANK = {READY: 0, DEGRADED: 1, DOWN: 2}


@dataclass(frozen=True)
class ProviderStatus:
    provider: str
    ready: bool
    detail: str
    checked_at: datetime
    elapsed_ms: int
    since: datetime


@dataclass(frozen=True)
class ChannelReadiness:
    channel: ChannelKind
    state: ChannelState
    since: datetime
    checked_at: datetime
    providers: list[ProviderStatus] = field(default_factory=list)
    incident_id: int | None = None

    @property
    def standing(self) -> bool:
        """Some provider carries it: updates still go out on this channel."""
        return self.state != DOWN

    def summary(self) -> str:
        """``down: sendgrid (the API key…); smtp (cannot connect…)`` / ``degraded: …`` / ``ready``."""
        if self.state == READY:
            return READY
        broken = "; ".join(f"{p.provider} ({p.detail})" for p in self.providers if not p.ready)
        return f"{self.state}: {broken}"


@dataclass(frozen=True)
class ChannelChange:
    """A channel whose state changed with this round of probes (claimed by this process)."""

    channel: ChannelKind
    before: ChannelState
    after: ChannelState
    providers: list[ProviderReadiness]
    incident_id: int | None
    """The alert incident still open for this channel, if any."""

    @property
    def worse(self) -> bool:
        return _RANK[self.after] > _RANK[self.before]


def channel_state(ready: Sequence[bool]) -> ChannelState:
    if ready and all(ready):
        return READY
    return DEGRADED if any(ready) else DOWN


def record(rt: Runtime, results: Iterable[ProviderReadiness]) -> list[ChannelChange]:
    """Keep ``results``; return the channels whose state changed (each change claimed once)."""
    by_channel: dict[ChannelKind, list[ProviderReadiness]] = {}
    for result in results:
        by_channel.setdefault(result.channel, []).append(result)
    changes = []
    with rt.engine.begin() as conn:
        for channel, found in by_channel.items():
            for result in found:
                _keep_provider(conn, result)
            change = _keep_channel(conn, channel, found)
            if change is not None:
                changes.append(change)
    return changes


def _insert_missing(conn: Connection, table: Any, values: dict[str, Any]) -> bool:
    """Insert unless a row with the same unique key exists (another process raced us); True if done."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    done = conn.execute(dialect.insert(table).values(**values).on_conflict_do_nothing())
    return bool(done.rowcount)


def _keep_provider(conn: Connection, result: ProviderReadiness) -> None:
    p = provider_readiness.c
    where = (p.channel == result.channel.value, p.provider == result.provider)
    before = conn.execute(select(p.ready, p.since).where(*where)).first()
    values = {
        "ready": result.ready,
        "detail": result.detail[:2000],
        "checked_at": result.checked_at,
        "elapsed_ms": int(result.elapsed * 1000),
    }
    if before is None:
        created = {"channel": result.channel.value, "provider": result.provider, "since": result.checked_at}
        if _insert_missing(conn, provider_readiness, {**created, **values}):
            return
        before = conn.execute(select(p.ready, p.since).where(*where)).one()
    since = before.since if bool(before.ready) == result.ready else result.checked_at
    conn.execute(update(provider_readiness).where(*where).values(since=since, **values))


def _keep_channel(
    conn: Connection, channel: ChannelKind, found: list[ProviderReadiness]
) -> ChannelChange | None:
    c = channel_readiness.c
    now = found[0].checked_at
    after = channel_state([r.ready for r in found])
    row = conn.execute(select(c.state, c.incident_id).where(c.channel == channel.value)).first()
    if row is None:
        created = {"channel": channel.value, "state": after, "since": now, "checked_at": now}
        if _insert_missing(conn, channel_readiness, created):
            return None if after == READY else ChannelChange(channel, READY, after, found, None)
        row = conn.execute(select(c.state, c.incident_id).where(c.channel == channel.value)).one()
    before: ChannelState = row.state
    if before == after:
        conn.execute(update(channel_readiness).where(c.channel == channel.value).values(checked_at=now))
        return None
    claimed = conn.execute(
        update(channel_readiness)
        .where(c.channel == channel.value, c.state == before)  # another process may have moved it
        .values(state=after, since=now, checked_at=now)
    )
    return ChannelChange(channel, before, after, found, row.incident_id) if claimed.rowcount == 1 else None


def set_alert_incident(rt: Runtime, channel: ChannelKind, incident_id: int | None) -> None:
    """The incident that tells staff about this channel (None once it is closed)."""
    with rt.engine.begin() as conn:
        conn.execute(
            update(channel_readiness)
            .where(channel_readiness.c.channel == channel.value)
            .values(incident_id=incident_id)
        )


def snapshot(rt: Runtime) -> dict[ChannelKind, ChannelReadiness]:
    """The last probe round's findings for every enabled channel that has been probed, providers in
    failover order (providers no longer configured are left out)."""
    enabled = rt.settings.enabled_channels()
    with rt.engine.connect() as conn:
        channels = {row.channel: row for row in conn.execute(select(channel_readiness))}
        providers: dict[tuple[str, str], Any] = {
            (row.channel, row.provider): row for row in conn.execute(select(provider_readiness))
        }
    found = {}
    for kind in enabled:
        row = channels.get(kind.value)
        if row is None:
            continue
        statuses = [
            ProviderStatus(p.provider, bool(p.ready), p.detail, p.checked_at, p.elapsed_ms, p.since)
            for name in rt.providers_for(kind)
            if (p := providers.get((kind.value, name))) is not None
        ]
        found[kind] = ChannelReadiness(kind, row.state, row.since, row.checked_at, statuses, row.incident_id)
    return found


def last_checked(rt: Runtime) -> datetime | None:
    """When the latest probe round ran (any process), or None if none ever did."""
    with rt.engine.connect() as conn:
        latest = conn.execute(
            select(channel_readiness.c.checked_at).order_by(channel_readiness.c.checked_at.desc())
        ).first()
    return None if latest is None else latest[0]
