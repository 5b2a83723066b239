"""Rendered messages, one per reader variant (locale, time zone, staff, SMS opt-out hint), cached: an
update never changes once published."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from urllib.parse import quote

from sqlalchemy import Connection, select, update

from channels.base import MANAGE_URL_PLACEHOLDER, ChannelKind, Message
from channels.text.fit import Budget, sms_budget, x_budget
from dispatcher.config.keys import UNSUBSCRIBE_VALID_FOR, make_token, signing_key
from dispatcher.domain.errors import ConfigurationError
from dispatcher.domain.models import Audience, Update
from dispatcher.domain.reader_time import ReaderClock
from dispatcher.domain.readers import ReaderVariant
from dispatcher.domain.texts import localized_message
from dispatcher.engine.claims import ClaimedRow
from dispatcher.engine.runtime import Runtime
from dispatcher.engine.status_site import status_site_message
from dispatcher.engine.task_queue import BatchRef
from dispatcher.rendering.renderer import EarlierUpdate, RenderContext, Rendered
from dispatcher.store.queries import get_incident, get_update
from dispatcher.store.schema import incidents, updates

CACHE_LIMIT = 512


def render_context(
    rt: Runtime,
    update_id: int,
    earlier: tuple[int, ...] = (),
    locale: str | None = None,
    staff: bool = False,
    clock: ReaderClock | None = None,
) -> RenderContext:
    """What the templates see; ``locale`` and ``clock`` pick the text and times of updates Tocsin
    writes in every language; ``staff`` adds the update's internal note (staff's copy)."""
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
    message = localized_message(rt.policy.policy.promise, incident, update, locale, clock, rt.policy.policy)
    # Tocsin's own texts (holding messages, maintenance notices, the policy's first notice and
    # resolution) come in the reader's language already.
    own_words = update.kind in ("holding", "maintenance", "first_notice", "resolution") and locale
    texts = {
        loc: text.model_copy(update={"message": with_internal_note(update, text.message, staff)})
        if text.message is not None
        else text
        for loc, text in (update.texts or {}).items()
    }
    return RenderContext.from_models(
        incident, update, rt.settings.organisation, rt.settings.status_page_url
    ).model_copy(
        update={
            "incident_status": update.status,
            "earlier": tuple(EarlierUpdate.model_validate(dict(c)) for c in carried),
            "message": with_internal_note(update, message, staff),
            "texts": texts,
            "default_locale": locale if own_words else rt.settings.default_locale,
            "manage_url": MANAGE_URL_PLACEHOLDER if manage_links(rt) else None,
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
SMS_SEGMENTS = 2
"""The SMS budget when ``channels.sms.max_segments`` is not set."""


def budget_for(rt: Runtime, channel: ChannelKind) -> Budget | None:
    """How long a short channel's text may be: SMS segments, X's weighted length; None for others."""
    if channel is ChannelKind.SMS:
        return sms_budget(rt.settings.channels[ChannelKind.SMS].max_segments or SMS_SEGMENTS)
    if channel is ChannelKind.SOCIAL:
        return x_budget(X_LIMIT)
    return None


def render_message(
    rt: Runtime,
    channel: ChannelKind,
    context: RenderContext,
    locale: str,
    zone: str | None = None,
    opt_out_hint: bool = False,
) -> Rendered:
    """``context`` for a reader in ``locale`` and ``zone`` (None: the organisation's) on ``channel``,
    now, within the channel's budget."""
    return rt.renderer.render_for_reader(
        channel,
        context,
        locale,
        zone=zone or rt.settings.timezone,
        now=rt.clock.now(),
        sms_opt_out_hint=opt_out_hint,
        budget=budget_for(rt, channel),
    )


def render_for(
    rt: Runtime, update_id: int, channel: ChannelKind, locale: str, earlier: tuple[int, ...] = ()
) -> Message:
    """The message for the readers a delivery row's ``locale`` names (``dispatcher.domain.readers``).

    Cached per (update, channel, reader variant, carried updates) and the reader's date, since "today"
    and "tomorrow" move at midnight where the reader is."""
    reader = ReaderVariant.parse(locale)
    zone = reader.zone or rt.settings.timezone
    now = rt.clock.now()
    clock = rt.renderer.reader_clock(channel, reader.locale, zone, now)
    key = (update_id, channel, f"{locale}#{clock.local(now).date()}", earlier)
    cached = rt.render_cache.get(key)
    if cached is None:
        if len(rt.render_cache) >= CACHE_LIMIT:
            rt.render_cache.clear()
        context = render_context(rt, update_id, earlier, reader.locale, reader.staff, clock)
        rendered = render_message(rt, channel, context, reader.locale, zone, reader.opt_out_hint).message
        cached = replace(rendered, published_at=context.published_at)
        rt.render_cache[key] = cached
    return cached


def message_for(rt: Runtime, ref: BatchRef, locale: str, earlier: tuple[int, ...] = ()) -> Message:
    """The message for a batch (carrying any ``earlier`` updates its recipients missed). Social posts
    reply to the incident's previous post: one thread. The status page gets the whole site's snapshot,
    built fresh on every call (never cached: a retry publishes the newest state)."""
    if ref.channel is ChannelKind.STATUSPAGE:
        return status_site_message(rt, ref.update_id)
    message = render_for(rt, ref.update_id, ref.channel, locale, earlier)
    if ref.channel is ChannelKind.SOCIAL:
        with rt.engine.connect() as conn:
            thread = conn.execute(
                select(incidents.c.social_thread_id).where(incidents.c.id == message.incident_id)
            ).scalar_one_or_none()
        message = replace(message, reply_to_id=thread)
    return message


def remember_thread(conn: Connection, incident_id: int, post_id: str) -> None:
    conn.execute(update(incidents).where(incidents.c.id == incident_id).values(social_thread_id=post_id))


def manage_links(rt: Runtime) -> bool:
    """Whether each email recipient gets their own signed link (``personal_links`` can make them)."""
    if not rt.settings.public_url:
        return False
    try:
        signing_key(rt.settings)
    except ConfigurationError:
        return False
    return True


@dataclass(frozen=True)
class PersonalLinks:
    """A recipient's own signed links (``dispatcher.config.keys``)."""

    unsubscribe: str
    """One-click unsubscribe (RFC 8058, ``/unsubscribe?token=…``): the ``List-Unsubscribe`` header."""
    manage: str
    """Their self-service page (``/manage?token=…``, ``dispatcher.web.self_service``): change what they
    get, or stop it all. The body's "manage or stop these updates" link, and ``List-Help``."""


def personal_links(rt: Runtime, rows: Iterable[ClaimedRow]) -> dict[int, PersonalLinks]:
    """Delivery row id -> its recipient's own links, for email rows of a subscriber's contact point.

    Empty when there is no ``public_url`` or no signing key: the mail then goes without them rather than
    not at all."""
    if not rt.settings.public_url:
        return {}
    try:
        key = signing_key(rt.settings)
    except ConfigurationError:
        return {}
    base = rt.settings.public_url.rstrip("/")
    expires = rt.clock.now() + UNSUBSCRIBE_VALID_FOR
    links: dict[int, PersonalLinks] = {}
    for row in rows:
        if row.contact_point_id is not None:
            point, address = row.contact_point_id, row.address
            unsubscribe = make_token(key, "unsubscribe", point, address, expires)
            # The same link as dispatcher.audience.self_service.manage_link makes (MANAGE_VALID_FOR is
            # UNSUBSCRIBE_VALID_FOR): the engine may not import the use cases above it.
            manage = quote(make_token(key, "manage", point, address, expires), safe="")
            links[row.id] = PersonalLinks(
                f"{base}/unsubscribe?token={unsubscribe}", f"{base}/manage?token={manage}"
            )
    return links
