"""The canary: a marked test message through every channel to your own contacts (``[canary]`` in
``tocsin.toml``), delivered by the real delivery machine and judged from the ledger and the providers'
callbacks. ``tocsin check --send`` runs it after every configuration change; probes prove credentials,
only a canary proves a message arrives.

The test message is an internal update of a ``canary`` incident that is closed as soon as it opens (so no
one is reminded of it and it never reaches the status page); its ledger rows go to the canary contacts
only, never to subscribers. Social posts and the status page are public: they are probed, never sent to.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import insert, select, update

from channels.base import ChannelKind
from dispatcher.comms.lifecycle import insert_incident
from dispatcher.config.settings import Settings
from dispatcher.domain.errors import InvalidInput
from dispatcher.domain.models import Audience, DeliveryState, IncidentStatus, Severity, UpdateState
from dispatcher.engine.runtime import Runtime
from dispatcher.engine.task_queue import BatchRef, TaskQueue
from dispatcher.store.bulk import insert_deliveries, timestamp_value
from dispatcher.store.schema import deliveries, incidents, updates

AUTHOR = "tocsin:canary"
KIND = "canary"
CANARY_BATCH = 0
PUBLIC_CHANNELS = (ChannelKind.SOCIAL, ChannelKind.STATUSPAGE)
CONFIRMING_PROVIDERS = frozenset({"sendgrid", "twilio"})
"""Providers that report delivery later (Event Webhook, status callback): "sent" only means accepted."""
DELIVERED = frozenset({"delivered"})
NOT_DELIVERED = frozenset({"undelivered", "failed", "bounce", "dropped", "blocked", "spamreport"})


def canary_targets(settings: Settings) -> list[tuple[ChannelKind, str]]:
    """(channel, address) of every canary contact on an enabled, private channel."""
    canary = settings.canary
    wanted = {
        ChannelKind.EMAIL: canary.email,
        ChannelKind.SMS: canary.sms,
        ChannelKind.WEBHOOK: canary.webhook,
        ChannelKind.CHAT: canary.chat,
    }
    enabled = settings.enabled_channels()
    return [(kind, address) for kind, addresses in wanted.items() if kind in enabled for address in addresses]


def message_text(at: datetime) -> str:
    return (
        f"[TEST] Tocsin canary, sent by `tocsin check --send` at {at:%Y-%m-%d %H:%M} UTC to prove this "
        "channel delivers. Nothing is wrong and no action is needed."
    )


def send_canary(rt: Runtime, queue: TaskQueue) -> int:
    """Write the canary update and its ledger rows, and queue one batch per channel; the update's id."""
    targets = canary_targets(rt.settings)
    if not targets:
        raise InvalidInput(
            "canary: no canary contacts on an enabled channel: set [canary] email, sms, webhook or chat "
            "in tocsin.toml (your own addresses, never customers')"
        )
    now = rt.clock.now()
    channels = list(dict.fromkeys(kind for kind, _ in targets))
    with rt.engine.begin() as conn:
        incident_id = insert_incident(
            conn,
            title="Canary: channel check",
            severity=Severity.MINOR,
            components=[],
            status=IncidentStatus.RESOLVED,
            at=now,
            actor=AUTHOR,
            reason="a test message for `tocsin check --send`",
            kind=KIND,
            resolved_at=now,
        )
        update_id: int = conn.execute(
            insert(updates)
            .values(
                incident_id=incident_id,
                status=IncidentStatus.RESOLVED.value,
                message=message_text(now),
                audience=Audience.INTERNAL.value,
                channels=[c.value for c in channels],
                state=UpdateState.FANNED_OUT.value,  # its rows are written here, to the canaries only
                published_at=now,
                fanned_out_at=now,
                kind=KIND,
                author=AUTHOR,
                severity=Severity.MINOR.value,
                policy_version=rt.policy.version,
            )
            .returning(updates.c.id)
        ).scalar_one()
        stamp = timestamp_value(conn, now)
        rows = [
            (update_id, kind.value, address, None, None, "en", CANARY_BATCH, "queued", 0, None, stamp, stamp)
            for kind, address in targets
        ]
        insert_deliveries(conn, rows)
        conn.execute(update(incidents).where(incidents.c.id == incident_id).values(updated_at=now))
    for kind in channels:
        queue.submit_batch(BatchRef(update_id, kind, CANARY_BATCH))
    return update_id


@dataclass(frozen=True)
class CanaryOutcome:
    channel: ChannelKind
    address: str
    provider: str | None
    arrived: bool | None
    """True: arrived (or accepted by the receiving server itself); False: did not; None: accepted by a
    provider that has not reported delivery (yet)."""
    detail: str

    @property
    def settled(self) -> bool:
        return self.arrived is not None


def canary_outcomes(rt: Runtime, update_id: int) -> list[CanaryOutcome]:
    """What the ledger (and the providers' callbacks written into it) says about each canary."""
    d = deliveries.c
    with rt.engine.connect() as conn:
        rows = conn.execute(
            select(d.channel, d.address, d.provider, d.state, d.provider_status, d.last_error)
            .where(d.update_id == update_id)
            .order_by(d.id)
        ).all()
    return [
        _outcome(r.channel, r.address, r.provider, r.state, r.provider_status, r.last_error) for r in rows
    ]


def _outcome(
    channel: str, address: str, provider: str | None, state: str, status: str | None, error: str | None
) -> CanaryOutcome:
    kind = ChannelKind(channel)
    if state in (DeliveryState.FAILED.value, DeliveryState.SUPPRESSED.value):
        return CanaryOutcome(kind, address, provider, False, f"{state}: {error or 'no reason recorded'}")
    if state != DeliveryState.SENT.value:
        waiting = f"; last error: {error}" if error else ""
        return CanaryOutcome(kind, address, provider, False, f"not sent yet ({state}){waiting}")
    if status in DELIVERED:
        return CanaryOutcome(kind, address, provider, True, f"delivered ({provider} reported it)")
    if status in NOT_DELIVERED:
        return CanaryOutcome(kind, address, provider, False, f"{status} ({provider} reported it)")
    if provider in CONFIRMING_PROVIDERS:
        return CanaryOutcome(
            kind,
            address,
            provider,
            None,
            f"accepted by {provider}; no delivery report"
            + (f" yet (last: {status})" if status else ": are its status callback / event webhook set up?"),
        )
    return CanaryOutcome(kind, address, provider, True, f"accepted by the receiving end ({provider})")
