"""Amends: after an incident is resolved, an offer (a voucher, a service credit, a free weekend) to the
people it affected, optionally with a code of their own.

- **Who.** Every customer told about the incident (each (channel, address) that received, or is still
  owed, one of its updates; staff are left out: an offer is for customers), on the channels they were
  told on, opt-outs respected; narrowed to a policy segment (``plan``, ``region``, …) when one is named.
  Never the whole audience as it is now: people who subscribed since were not affected.
- **Codes.** A CSV with a ``code`` column and one of ``subscriber`` (the external id), ``email`` or
  ``phone`` gives each subscriber their own code; the offer's ``{code}`` becomes it on every channel
  (``dispatcher.engine.amends_codes``). Every problem in the file is reported with its line, and nothing
  is written. With codes, each subscriber's messages go in a batch of their own; a subscriber told about
  the incident who has no code gets a ``suppressed`` row saying so (visible in ``tocsin deliveries
  missing``), never a message without its code.
- **Where it is seen.** In the ledger like any update (kind ``amends``). Never on the public status page
  unless asked (kind ``amends_public``).
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import phonenumbers
from sqlalchemy import Connection, insert, select, update

from channels.base import ChannelKind
from dispatcher.comms import guardrails
from dispatcher.comms.everyone_told import Told, told_addresses
from dispatcher.comms.lifecycle import record_event
from dispatcher.domain.audiences import in_segment
from dispatcher.domain.crisis import INCIDENT_KINDS
from dispatcher.domain.errors import InvalidInput
from dispatcher.domain.identity import Identity
from dispatcher.domain.models import DeliveryState, Incident, IncidentStatus, Update, UpdateState
from dispatcher.engine.amends_codes import CODE_MARK
from dispatcher.engine.runtime import Runtime
from dispatcher.engine.task_queue import BatchRef, TaskQueue
from dispatcher.store.bulk import insert_deliveries, timestamp_value
from dispatcher.store.queries import get_incident, update_from_row
from dispatcher.store.schema import amends_codes, contact_points, subscribers, updates

AMENDS_BATCH = 3_000_000
"""First batch number of amends rows (closure rows start at 2,000,000)."""
CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
NO_CODE = "no amends code for this subscriber"


@dataclass(frozen=True)
class AmendsSent:
    update: Update
    rows: int
    """Ledger rows written (queued and suppressed)."""
    without_code: int = 0
    """Subscribers told about the incident who had no code: suppressed, not sent."""


def read_codes(rt: Runtime, text: str) -> dict[int, str]:
    """Subscriber id → code from a CSV (see the module docstring); ``InvalidInput`` listing every
    problem with its line."""
    rows = list(csv.DictReader(io.StringIO(text.lstrip("\ufeff"))))
    header = {(h or "").strip().lower() for h in (rows[0].keys() if rows else [])}
    keys = [k for k in ("subscriber", "email", "phone") if k in header]
    if "code" not in header or len(keys) != 1:
        raise InvalidInput("codes: the header needs a code column and one of subscriber, email or phone")
    key = keys[0]
    found: dict[int, str] = {}
    seen: dict[str, int] = {}
    problems: list[str] = []
    lookup = _lookup(rt, key)
    for number, row in enumerate(rows, start=2):
        clean = {(k or "").strip().lower(): (v or "").strip() for k, v in row.items()}
        who, code = clean.get(key, ""), clean.get("code", "")
        if not who and not code:
            continue
        subscriber = lookup(who)
        before = len(problems)
        if not CODE.match(code):
            problems.append(f"line {number}: code {code!r} is not 1 to 64 letters, digits, '-' or '_'")
        elif code in seen:
            problems.append(f"line {number}: code {code!r} is also on line {seen[code]}")
        if subscriber is None:
            problems.append(f"line {number}: no subscriber with {key} {who!r}")
        elif subscriber in found:
            problems.append(f"line {number}: {key} {who!r} has a code already")
        if len(problems) == before and subscriber is not None:
            seen[code] = number
            found[subscriber] = code
    if problems:
        raise InvalidInput("codes: " + "; ".join(problems))
    if not found:
        raise InvalidInput("codes: the file has no codes")
    return found


def _lookup(rt: Runtime, key: str) -> Any:
    with rt.engine.connect() as conn:
        if key == "subscriber":
            pairs = conn.execute(select(subscribers.c.external_id, subscribers.c.id)).all()
            table = {str(k): i for k, i in pairs if k}
            return lambda who: table.get(who)
        channel = ChannelKind.EMAIL if key == "email" else ChannelKind.SMS
        pairs = conn.execute(
            select(contact_points.c.address, contact_points.c.subscriber_id).where(
                contact_points.c.channel == channel.value
            )
        ).all()
    table = {str(a).lower(): i for a, i in pairs}
    if key == "email":
        return lambda who: table.get(who.lower())
    region = rt.settings.default_region

    def by_phone(who: str) -> int | None:
        try:
            number = phonenumbers.parse(who, region)
        except phonenumbers.NumberParseException:
            return None
        return table.get(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164).lower())

    return by_phone


def send_amends(
    rt: Runtime,
    incident_id: int,
    offer: str,
    who: Identity,
    queue: TaskQueue,
    *,
    codes: dict[int, str] | None = None,
    segment: str | None = None,
    on_status_page: bool = False,
    override_reason: str | None = None,
) -> AmendsSent:
    """Send ``offer`` to the customers the incident affected (see the module docstring)."""
    now = rt.clock.now()
    text = offer.strip()
    with rt.engine.connect() as conn:
        incident = get_incident(conn, incident_id)
    _check(rt, incident, text, codes, segment, on_status_page, override_reason)
    with rt.engine.begin() as conn:
        upd = _write_update(conn, rt, incident, text, who, now, on_status_page, override_reason)
        told = _affected(conn, rt, incident.id, upd.id, segment, on_status_page)
        if codes:
            conn.execute(
                insert(amends_codes),
                [{"update_id": upd.id, "subscriber_id": s, "code": c} for s, c in codes.items()],
            )
        rows, missing, batches = _write_rows(conn, rt, upd, told, codes, now)
        channels = sorted({b.channel.value for b in batches})
        conn.execute(update(updates).where(updates.c.id == upd.id).values(channels=channels))
        reason = f"amends to {rows} address(es) told about this incident"
        if segment:
            reason += f" in segment {segment}"
        if missing:
            reason += f"; {missing} subscriber(s) without a code were not sent it"
        record_event(conn, incident.id, "amends", now, actor=who.name, reason=reason, update_id=upd.id)
    for ref in batches:
        queue.submit_batch(ref)
    return AmendsSent(upd.model_copy(update={"channels": [ChannelKind(c) for c in channels]}), rows, missing)


def _check(
    rt: Runtime,
    incident: Incident,
    text: str,
    codes: dict[int, str] | None,
    segment: str | None,
    on_status_page: bool,
    override_reason: str | None,
) -> None:
    if incident.kind not in INCIDENT_KINDS:
        raise InvalidInput(f"incident {incident.id} is a {incident.kind} window: amends follow incidents")
    if incident.status is not IncidentStatus.RESOLVED:
        raise InvalidInput(
            f"incident {incident.id} is {incident.status.value}: amends come after it is resolved"
        )
    if not text or len(text) > 4000:
        raise InvalidInput("offer: between 1 and 4000 characters")
    if codes and CODE_MARK not in text:
        raise InvalidInput(f"offer: with codes, say where each reader's goes: {CODE_MARK}")
    if codes and on_status_page:
        raise InvalidInput("on_status_page: each code is for its reader alone, never for the public page")
    if not codes and CODE_MARK in text:
        raise InvalidInput(f"offer: {CODE_MARK} needs codes (--codes FILE)")
    if segment is not None and segment not in rt.policy.policy.segments:
        known = ", ".join(sorted(rt.policy.policy.segments)) or "none"
        raise InvalidInput(f"segment: no segment named {segment!r} in the policy (known: {known})")
    base = guardrails.base_draft(
        rt, text.replace(CODE_MARK, "CODE"), incident, IncidentStatus.RESOLVED, rt.clock.now()
    )
    found = guardrails.check(base, True, guardrails.LEAK_RULES, "offer")
    guardrails.refuse_unless_overridden(found, override_reason)


def _write_update(
    conn: Connection,
    rt: Runtime,
    incident: Incident,
    text: str,
    who: Identity,
    now: datetime,
    on_status_page: bool,
    override_reason: str | None,
) -> Update:
    row = (
        conn.execute(
            insert(updates)
            .values(
                incident_id=incident.id,
                status=IncidentStatus.RESOLVED.value,
                message=text,
                audience="public",
                channels=[],
                state=UpdateState.FANNED_OUT.value,
                published_at=now,
                fanned_out_at=now,
                kind="amends_public" if on_status_page else "amends",
                author=who.name,
                author_token_id=who.token_id,
                severity=incident.severity.value,
                policy_version=rt.policy.version,
                override_reason=(override_reason or "").strip() or None,
            )
            .returning(*updates.c)
        )
        .mappings()
        .one()
    )
    return update_from_row(row)


def _affected(
    conn: Connection, rt: Runtime, incident_id: int, update_id: int, segment: str | None, page: bool
) -> list[Told]:
    """Customers told about the incident (staff left out), in ``segment`` when one is named; and the
    status page's targets when it is to show the offer (``page``)."""
    everyone = told_addresses(conn, incident_id, update_id)
    sites = [t for t in everyone if page and t.channel is ChannelKind.STATUSPAGE]
    told = [t for t in everyone if t.subscriber_id is not None and not t.internal]
    if segment is None:
        return told + sites
    rule = rt.policy.policy.segments[segment]
    ids = sorted({t.subscriber_id for t in told if t.subscriber_id is not None})
    facts = {
        r.id: r
        for r in conn.execute(
            select(
                subscribers.c.id,
                subscribers.c.components,
                subscribers.c.region,
                subscribers.c.plan,
                subscribers.c.tags,
            ).where(subscribers.c.id.in_(ids))
        )
    }
    return sites + [
        t
        for t in told
        if t.subscriber_id in facts
        and in_segment(
            rule,
            components=list(facts[t.subscriber_id].components or []),
            region=facts[t.subscriber_id].region,
            plan=facts[t.subscriber_id].plan,
            tags=list(facts[t.subscriber_id].tags or []),
        )
    ]


def _write_rows(
    conn: Connection,
    rt: Runtime,
    upd: Update,
    told: list[Told],
    codes: dict[int, str] | None,
    now: datetime,
) -> tuple[int, int, list[BatchRef]]:
    """(rows written, subscribers without a code, batches to send)."""
    enabled = set(rt.settings.enabled_channels())
    stamp = timestamp_value(conn, now)
    rows: list[tuple[Any, ...]] = []
    batches: list[BatchRef] = []
    missing: set[int] = set()
    batch = AMENDS_BATCH
    mine = [t for t in told if t.channel in enabled]
    if codes:
        # Each subscriber's code is theirs alone: one batch per subscriber and channel.
        for item in sorted(mine, key=lambda t: (t.subscriber_id or 0, t.channel.value)):
            has_code = item.subscriber_id in codes
            if not has_code:
                missing.add(item.subscriber_id or 0)
            rows.append(_row(upd, item, batch, stamp, None if has_code else NO_CODE))
            if has_code and not item.opted_out:
                batches.append(BatchRef(upd.id, item.channel, batch))
            batch += 1
    else:
        for channel in sorted({t.channel for t in mine}, key=lambda c: c.value):
            on_channel = [t for t in mine if t.channel is channel]
            size = rt.batch_size(channel)
            for start in range(0, len(on_channel), size):
                for item in on_channel[start : start + size]:
                    rows.append(_row(upd, item, batch, stamp, None))
                batches.append(BatchRef(upd.id, channel, batch))
                batch += 1
    insert_deliveries(conn, rows)
    return len(rows), len(missing), batches


def _row(upd: Update, told: Told, batch: int, now: Any, held: str | None) -> tuple[Any, ...]:
    """A delivery row in ``DELIVERY_COLUMNS`` order: suppressed when opted out or held back."""
    why = "opted out" if told.opted_out else held
    state = DeliveryState.SUPPRESSED if why else DeliveryState.QUEUED
    return (
        upd.id,
        told.channel.value,
        told.address,
        told.subscriber_id,
        told.contact_point_id,
        told.locale,
        batch,
        state.value,
        0,
        why,
        now,
        now,
    )
