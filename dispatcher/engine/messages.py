"""Rendered messages, cached per (update, channel, locale) (an update never changes once published)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from sqlalchemy import Connection, select, update

from channels.base import ChannelKind, Message
from channels.text.sms_segments import fit_to_segments
from channels.text.x_text import fit_to_weighted
from dispatcher.config.keys import UNSUBSCRIBE_VALID_FOR, make_token, signing_key
from dispatcher.domain.audiences import split_staff
from dispatcher.domain.errors import ConfigurationError
from dispatcher.domain.models import Audience, Update
from dispatcher.domain.texts import localized_message
from dispatcher.engine.amends_codes import with_code
from dispatcher.engine.claims import ClaimedRow
from dispatcher.engine.runtime import Runtime
from dispatcher.engine.status_site import status_site_message
from dispatcher.engine.task_queue import BatchRef
from dispatcher.rendering.renderer import EarlierUpdate, RenderContext
from dispatcher.store.queries import get_incident, get_update
from dispatcher.store.schema import incidents, updates

CACHE_LIMIT = 512


def render_context(
    rt: Runtime,
    update_id: int,
    earlier: tuple[int, ...] = (),
    locale: str | None = None,
    staff: bool = False,
) -> RenderContext:
    """What the templates see; ``locale`` picks the text of updates Tocsin writes in every language;
    ``staff`` adds the update's internal note (staff's copy)."""
    with rt.engine.connect() as conn:
        update = get_update(conn, update_id)
        incident = get_incident(conn, update.incident_id)
        carried = (
            conn.execute(
                select(updates.c.id, updates.c.status, updates.c.message, updates.c.published_at)
                .where(updates.c.id.in_(earlier))
                .order_by(updates.c.id)
            )
            .mappings()
            .all()
            if earlier
            else []
        )
    return RenderContext.from_models(
        incident, update, rt.settings.organisation, rt.settings.status_page_url
    ).model_copy(
        update={
            "incident_status": update.status,
            "earlier": tuple(EarlierUpdate.model_validate(dict(c)) for c in carried),
            "message": with_internal_note(
                update,
                localized_message(rt.policy.policy.promise, incident, update, locale, rt.policy.policy),
                staff,
            ),
        }
    )


def with_internal_note(update: Update, message: str, staff: bool = False) -> str:
    """Staff's copy of an update carries its internal note in the text; nobody else's ever does.

    An internal update is all staff's. Of a public or segment update, staff's rows were written with a
    marked locale (``dispatcher.domain.audiences.staff_locale``), so their render is a variant of its own."""
    if (staff or update.audience is Audience.INTERNAL) and update.internal_note:
        return f"{message}\n\nInternal note: {update.internal_note}"
    return message


X_LIMIT = 280


def fit_for_channel(rt: Runtime, channel: ChannelKind, message: Message) -> Message:
    """Keep short texts within what the channel carries, ending with the status page link if cut."""
    link = rt.settings.status_page_url
    if channel is ChannelKind.SMS:
        limit = rt.settings.channels[ChannelKind.SMS].max_segments
        if limit:
            return replace(message, text=fit_to_segments(message.text, limit, link))
    if channel is ChannelKind.SOCIAL:
        return replace(message, text=fit_to_weighted(message.text, X_LIMIT, link))
    return message


def render_for(
    rt: Runtime, update_id: int, channel: ChannelKind, locale: str, earlier: tuple[int, ...] = ()
) -> Message:
    key = (update_id, channel, locale, earlier)
    cached = rt.render_cache.get(key)
    if cached is None:
        if len(rt.render_cache) >= CACHE_LIMIT:
            rt.render_cache.clear()
        language, staff = split_staff(locale)
        context = render_context(rt, update_id, earlier, language, staff)
        cached = fit_for_channel(rt, channel, rt.renderer.render(channel, context, language))
        rt.render_cache[key] = cached
    return cached


def message_for(rt: Runtime, ref: BatchRef, locale: str, earlier: tuple[int, ...] = ()) -> Message:
    """The message for a batch (carrying any ``earlier`` updates its recipients missed). Social posts
    reply to the incident's previous post: one thread. The status page gets the whole site's snapshot,
    built fresh on every call (never cached: a retry publishes the newest state)."""
    if ref.channel is ChannelKind.STATUSPAGE:
        return status_site_message(rt, ref.update_id)
    message = with_code(rt, ref, render_for(rt, ref.update_id, ref.channel, locale, earlier))
    if ref.channel is ChannelKind.SOCIAL:
        with rt.engine.connect() as conn:
            thread = conn.execute(
                select(incidents.c.social_thread_id).where(incidents.c.id == message.incident_id)
            ).scalar_one_or_none()
        message = replace(message, reply_to_id=thread)
    return message


def remember_thread(conn: Connection, incident_id: int, post_id: str) -> None:
    conn.execute(update(incidents).where(incidents.c.id == incident_id).values(social_thread_id=post_id))


def unsubscribe_links(rt: Runtime, rows: Iterable[ClaimedRow]) -> dict[int, str]:
    """Delivery row id -> its one-click unsubscribe link (RFC 8058), for email rows of a subscriber's
    contact point; the link is signed with the key of ``dispatcher.config.keys``.

    Empty when there is no ``public_url`` or no signing key: the mail then goes without the header
    rather than not at all."""
    if not rt.settings.public_url:
        return {}
    try:
        key = signing_key(rt.settings)
    except ConfigurationError:
        return {}
    base = rt.settings.public_url.rstrip("/")
    expires = rt.clock.now() + UNSUBSCRIBE_VALID_FOR
    links: dict[int, str] = {}
    for row in rows:
        if row.contact_point_id is not None:
            token = make_token(key, "unsubscribe", row.contact_point_id, row.address, expires)
            links[row.id] = f"{base}/unsubscribe?token={token}"
    return links
