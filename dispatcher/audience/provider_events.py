"""What providers tell us after the send: delivery status, bounces, opt-outs. Recorded in the ledger."""

from __future__ import annotations

from sqlalchemy import update

from channels.base import ChannelKind
from dispatcher.engine.runtime import Runtime
from dispatcher.store.schema import contact_points, deliveries


def record_provider_status(
    rt: Runtime,
    status: str,
    *,
    provider_message_id: str | None = None,
    delivery_id: int | None = None,
    error: str | None = None,
) -> int:
    """Set the provider's later word on a delivery (found by provider message id or delivery id)."""
    if provider_message_id is None and delivery_id is None:
        return 0
    query = update(deliveries)
    if delivery_id is not None:
        query = query.where(deliveries.c.id == delivery_id)
    if provider_message_id is not None:
        query = query.where(deliveries.c.provider_message_id == provider_message_id)
    values: dict[str, object] = {"provider_status": status[:30], "provider_status_at": rt.clock.now()}
    if error:
        values["last_error"] = error[:2000]
    with rt.engine.begin() as conn:
        return conn.execute(query.values(**values)).rowcount


def set_opt_out(rt: Runtime, channel: ChannelKind, address: str, opted_out: bool, reason: str) -> int:
    """Opt an address out of (or back into) a channel. Opted-out addresses are suppressed, never sent to."""
    with rt.engine.begin() as conn:
        return conn.execute(
            update(contact_points)
            .where(contact_points.c.channel == channel.value, contact_points.c.address == address)
            .values(
                opted_out=opted_out,
                opted_out_reason=reason[:200] if opted_out else None,
                opted_out_at=rt.clock.now() if opted_out else None,
            )
        ).rowcount
