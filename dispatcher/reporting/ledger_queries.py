"""Reading the ledger for people: dead letters, what is still owed, who has not received an update and
why; and re-driving failed deliveries by hand.

Dead letters are ``failed`` rows: they exhausted their retries or failed permanently, and stay in the
ledger with their last error. Nothing here sends anything: ``retry_failed`` puts rows back in the queue
and hands their batches to a ``TaskQueue`` (Celery or the embedded runner), exactly as the re-drive does.
"""

from __future__ import annotations

import enum
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict
from sqlalchemy import ColumnElement, Connection, RowMapping, and_, func, or_, select, update

from channels.base import ChannelKind
from dispatcher.domain.errors import TocsinError
from dispatcher.domain.models import DeliveryState, UpdateState
from dispatcher.engine.runtime import Runtime
from dispatcher.engine.task_queue import BatchRef, TaskQueue
from dispatcher.store import queries
from dispatcher.store.schema import contact_points, deliveries, updates
from dispatcher.store.sql import one_of

DEFAULT_STATES: tuple[DeliveryState, ...] = (
    DeliveryState.FAILED,
    DeliveryState.QUEUED,
    DeliveryState.SENDING,
)
"""What ``tocsin deliveries list`` shows unless told otherwise: dead letters and what is still owed."""

UNDELIVERED_STATUSES = frozenset({"bounce", "dropped", "undelivered", "failed"})
"""A provider's later word on a ``sent`` row meaning the message never reached the person."""

NEVER_REDRIVEN = frozenset({DeliveryState.SUPERSEDED, DeliveryState.SUPPRESSED})


class NothingToRetry(TocsinError):
    """No failed delivery matches what was asked to be re-driven."""


@dataclass(frozen=True)
class Selection:
    """Which ledger rows: every given filter must match (an empty tuple or None filters nothing)."""

    update_id: int | None = None
    channels: tuple[ChannelKind, ...] = ()
    states: tuple[DeliveryState, ...] = ()
    provider: str | None = None
    ids: tuple[int, ...] = ()

    def conditions(self, conn: Connection) -> list[ColumnElement[bool]]:
        found: list[ColumnElement[bool]] = []
        if self.update_id is not None:
            found.append(deliveries.c.update_id == self.update_id)
        if self.channels:
            found.append(deliveries.c.channel.in_([c.value for c in self.channels]))
        if self.states:
            found.append(deliveries.c.state.in_([s.value for s in self.states]))
        if self.provider is not None:
            found.append(deliveries.c.provider == self.provider)
        if self.ids:
            found.append(one_of(conn, deliveries.c.id, self.ids))
        return found

    def describe(self) -> str:
        parts = []
        if self.update_id is not None:
            parts.append(f"update {self.update_id}")
        if self.channels:
            parts.append("channel " + "/".join(c.value for c in self.channels))
        if self.states:
            parts.append("state " + "/".join(s.value for s in self.states))
        if self.provider is not None:
            parts.append(f"provider {self.provider}")
        if self.ids:
            parts.append("id " + ", ".join(str(i) for i in self.ids))
        return ", ".join(parts) or "no filter"


class DeliveryRow(BaseModel):
    """One ledger row as people read it (the API shows it as is)."""

    model_config = ConfigDict(frozen=True)

    id: int
    update_id: int
    channel: ChannelKind
    address: str
    state: DeliveryState
    attempts: int
    provider: str | None
    provider_message_id: str | None
    provider_status: str | None
    last_error: str | None
    next_attempt_at: datetime | None
    lease_until: datetime | None
    updated_at: datetime

    FIELDS: ClassVar[tuple[str, ...]] = (
        "id",
        "update_id",
        "channel",
        "address",
        "state",
        "attempts",
        "provider",
        "provider_message_id",
        "provider_status",
        "last_error",
        "next_attempt_at",
        "lease_until",
        "updated_at",
    )

    @classmethod
    def from_row(cls, row: RowMapping) -> DeliveryRow:
        # Already converted field by field: no need to validate again (the CLI may list many rows).
        return cls.model_construct(
            id=int(row["id"]),
            update_id=int(row["update_id"]),
            channel=ChannelKind(row["channel"]),
            address=row["address"],
            state=DeliveryState(row["state"]),
            attempts=int(row["attempts"]),
            provider=row["provider"],
            provider_message_id=row["provider_message_id"],
            provider_status=row["provider_status"],
            last_error=row["last_error"],
            next_attempt_at=row["next_attempt_at"],
            lease_until=row["lease_until"],
            updated_at=row["updated_at"],
        )

    def as_json(self) -> dict[str, Any]:
        """Plain values: enums as their names, times as ISO 8601 (UTC)."""
        out: dict[str, Any] = {}
        for name in self.FIELDS:
            value = getattr(self, name)
            if isinstance(value, datetime):
                value = value.isoformat()
            elif isinstance(value, enum.Enum):
                value = value.value
            out[name] = value
        return out


_COLUMNS = [getattr(deliveries.c, name) for name in DeliveryRow.FIELDS]


def list_deliveries(
    rt: Runtime, selection: Selection, limit: int | None = 100, before: int | None = None
) -> list[DeliveryRow]:
    """Rows matching ``selection`` (every state when it names none), newest first (highest id);
    with ``before``, only rows with a lower id (the next page)."""
    query = select(*_COLUMNS).order_by(deliveries.c.id.desc())
    if limit is not None:
        query = query.limit(limit)
    if before is not None:
        query = query.where(deliveries.c.id < before)
    with rt.engine.connect() as conn:
        query = query.where(*selection.conditions(conn))
        return [DeliveryRow.from_row(r) for r in conn.execute(query).mappings()]


# ---------------------------------------------------------------------------------------- missing


class Reason(enum.StrEnum):
    """Why an owed address has not received an update. Declared in the order they are shown."""

    FAILED = "failed"
    UNDELIVERED = "undelivered"
    """Sent, but the provider said later that it never arrived (bounce, dropped, undelivered)."""
    SUPPRESSED = "suppressed"
    SUPERSEDED = "superseded"
    QUEUED = "queued"
    SENDING = "sending"


@dataclass(frozen=True)
class Missing:
    delivery: DeliveryRow
    reason: Reason
    detail: str
    superseded_by: int | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "reason": self.reason.value,
            "detail": self.detail,
            "superseded_by": self.superseded_by,
            **self.delivery.as_json(),
        }


@dataclass(frozen=True)
class MissingReport:
    update_id: int
    fanned_out: bool
    """False while the update's delivery rows are not all written: more may be owed than listed."""
    rows: list[Missing] = field(default_factory=list)

    @property
    def counts(self) -> dict[Reason, int]:
        counted = Counter(m.reason for m in self.rows)
        return {reason: counted[reason] for reason in Reason if counted[reason]}

    def by_reason(self) -> dict[Reason, list[Missing]]:
        grouped: dict[Reason, list[Missing]] = {}
        for item in self.rows:
            grouped.setdefault(item.reason, []).append(item)
        return {reason: grouped[reason] for reason in Reason if reason in grouped}


_SUPERSEDED_BY = re.compile(r"superseded by update (\d+)")


def _when(moment: datetime | None) -> str:
    return "-" if moment is None else moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def _explain(row: DeliveryRow, opt_out_reason: str | None, now: datetime) -> tuple[Reason, str]:
    error = row.last_error or ""
    if row.state is DeliveryState.FAILED:
        return Reason.FAILED, f"{error or 'no error recorded'} (after {row.attempts} attempt(s))"
    if row.state is DeliveryState.SENT:
        said = f"{row.provider or 'provider'} reported {row.provider_status}"
        return Reason.UNDELIVERED, f"{said}: {error}" if error else said
    if row.state is DeliveryState.SUPPRESSED:
        detail = error or "opted out"
        if opt_out_reason and opt_out_reason not in detail:
            detail = f"{detail}: {opt_out_reason}"
        return Reason.SUPPRESSED, detail
    if row.state is DeliveryState.SENDING:
        if row.lease_until is not None and row.lease_until < now:
            return Reason.SENDING, f"lease expired at {_when(row.lease_until)}: owed again"
        return Reason.SENDING, f"lease until {_when(row.lease_until)}"
    # queued
    due = row.next_attempt_at
    detail = "due now" if due is None or due <= now else f"next attempt at {_when(due)}"
    if error:
        detail += f" (last: {error})"
    return Reason.QUEUED, detail


def _superseding(conn: Connection, update_id: int, rows: Sequence[DeliveryRow]) -> dict[int, int]:
    """Row id -> the newer update that superseded it, for superseded rows whose error does not say."""
    unknown = [
        r
        for r in rows
        if r.state is DeliveryState.SUPERSEDED and not _SUPERSEDED_BY.search(r.last_error or "")
    ]
    if not unknown:
        return {}
    incident = select(updates.c.incident_id).where(updates.c.id == update_id).scalar_subquery()
    newer = select(updates.c.id).where(updates.c.incident_id == incident, updates.c.id > update_id)
    first: dict[tuple[str, str], int] = {}
    for channel in {r.channel for r in unknown}:
        addresses = {r.address for r in unknown if r.channel is channel}
        found = conn.execute(
            select(deliveries.c.address, func.min(deliveries.c.update_id))
            .where(deliveries.c.channel == channel.value, deliveries.c.update_id.in_(newer))
            .where(one_of(conn, deliveries.c.address, addresses))
            .group_by(deliveries.c.address)
        )
        for address, newer_id in found:
            first[(channel.value, address)] = int(newer_id)
    return {
        r.id: first[(r.channel.value, r.address)] for r in unknown if (r.channel.value, r.address) in first
    }


def missing(rt: Runtime, update_id: int, channels: Iterable[ChannelKind] = ()) -> MissingReport:
    """Every address owed ``update_id`` that has not received it, with the reason.

    That is every row not ``sent``, plus ``sent`` rows the provider later reported undelivered."""
    with rt.engine.connect() as conn:
        upd = queries.get_update(conn, update_id)
    chosen = tuple(channels)
    not_received = or_(
        deliveries.c.state != DeliveryState.SENT.value,
        deliveries.c.provider_status.in_(sorted(UNDELIVERED_STATUSES)),
    )
    query = (
        select(*_COLUMNS, contact_points.c.opted_out_reason)
        .select_from(
            deliveries.outerjoin(contact_points, contact_points.c.id == deliveries.c.contact_point_id)
        )
        .where(deliveries.c.update_id == update_id, not_received)
        .order_by(deliveries.c.channel, deliveries.c.address)
    )
    if chosen:
        query = query.where(deliveries.c.channel.in_([c.value for c in chosen]))
    now = rt.clock.now()
    with rt.engine.connect() as conn:
        found = [(DeliveryRow.from_row(r), r["opted_out_reason"]) for r in conn.execute(query).mappings()]
        newer = _superseding(conn, update_id, [row for row, _ in found])
    result: list[Missing] = []
    for row, opt_out_reason in found:
        if row.state is DeliveryState.SUPERSEDED:
            recorded = _SUPERSEDED_BY.search(row.last_error or "")
            by = int(recorded.group(1)) if recorded else newer.get(row.id)
            detail = f"superseded by update {by}" if by is not None else "superseded by a newer update"
            result.append(Missing(row, Reason.SUPERSEDED, detail, by))
            continue
        reason, detail = _explain(row, opt_out_reason, now)
        result.append(Missing(row, reason, detail))
    order = {reason: i for i, reason in enumerate(Reason)}
    result.sort(key=lambda m: order[m.reason])  # stable: channel, address within a reason
    return MissingReport(update_id, upd.state is UpdateState.FANNED_OUT, result)


# ---------------------------------------------------------------------------------------- retry


@dataclass(frozen=True)
class RetryResult:
    rows: int
    batches: tuple[BatchRef, ...]
    notes: tuple[str, ...]
    """Why some deliveries asked for by id are not re-driven."""
    dry_run: bool

    @property
    def update_ids(self) -> list[int]:
        return sorted({b.update_id for b in self.batches})


def _refusals(conn: Connection, selection: Selection) -> list[str]:
    """For each id asked for that will not be re-driven, why."""
    if not selection.ids:
        return []
    failed_only = Selection(
        selection.update_id, selection.channels, (DeliveryState.FAILED,), selection.provider, selection.ids
    )
    matching = set(conn.execute(select(deliveries.c.id).where(*failed_only.conditions(conn))).scalars().all())
    states = dict(
        conn.execute(
            select(deliveries.c.id, deliveries.c.state).where(one_of(conn, deliveries.c.id, selection.ids))
        ).all()
    )
    notes = []
    for row_id in dict.fromkeys(selection.ids):
        state = states.get(row_id)
        if row_id in matching:
            continue
        if state is None:
            notes.append(f"delivery {row_id}: no such delivery")
        elif DeliveryState(state) in NEVER_REDRIVEN:
            notes.append(
                f"delivery {row_id} is {state}: superseded and suppressed deliveries are never re-driven"
            )
        elif state != DeliveryState.FAILED.value:
            notes.append(f"delivery {row_id} is {state}: only failed deliveries are re-driven")
        else:
            notes.append(f"delivery {row_id} does not match the other filters")
    return notes


def retry_failed(
    rt: Runtime, selection: Selection, queue: TaskQueue | None, *, dry_run: bool = False
) -> RetryResult:
    """Put the FAILED rows matching ``selection`` back in the queue and submit their batches.

    In one transaction, matching rows become ``queued`` with no attempts and no retry time; their last
    error stays until a new attempt replaces it. Superseded and suppressed rows are never re-driven, and
    a re-driven row whose address got a newer update since is superseded when claimed, never sent.
    ``dry_run`` only counts. Raises ``NothingToRetry`` when no failed row matches."""
    chosen = Selection(
        selection.update_id, selection.channels, (DeliveryState.FAILED,), selection.provider, selection.ids
    )
    now = rt.clock.now()
    with rt.engine.begin() as conn:
        notes = _refusals(conn, selection)
        where = chosen.conditions(conn)
        if dry_run:
            counted = conn.execute(
                select(deliveries.c.update_id, deliveries.c.channel, deliveries.c.batch, func.count())
                .where(*where)
                .group_by(deliveries.c.update_id, deliveries.c.channel, deliveries.c.batch)
            ).all()
            rows = sum(int(n) for *_, n in counted)
            refs = {BatchRef(u, ChannelKind(c), b) for u, c, b, _ in counted}
        else:
            touched = conn.execute(
                update(deliveries)
                .where(and_(*where))
                .values(
                    state=DeliveryState.QUEUED.value,
                    attempts=0,
                    next_attempt_at=None,
                    lease_until=None,
                    updated_at=now,
                )
                .returning(deliveries.c.update_id, deliveries.c.channel, deliveries.c.batch)
            ).all()
            rows = len(touched)
            refs = {BatchRef(u, ChannelKind(c), b) for u, c, b in touched}
    if not rows:
        why = f"no failed deliveries match ({chosen.describe()})"
        if notes:
            why += ": " + "; ".join(notes)
        raise NothingToRetry(why)
    batches = tuple(sorted(refs))
    if not dry_run and queue is not None:
        for ref in batches:
            queue.submit_batch(ref)
    return RetryResult(rows, batches, tuple(notes), dry_run)
