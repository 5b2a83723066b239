"""Consent: self-service email signup with double opt-in, and one-click unsubscribe (RFC 8058).

* ``request_signup`` stores (or keeps) a subscriber whose email contact point is *unconfirmed* — the
  fan-out never sends updates to it — and emails a signed link ``{public_url}/subscribe/confirm?token=…``
  straight through the email channel's providers (one message, outside the delivery ledger).
* ``confirm`` checks the link and marks the contact point confirmed: from the next update on it is owed.
* Every email delivery carries ``List-Unsubscribe: <{public_url}/unsubscribe?token=…>`` and
  ``List-Unsubscribe-Post: List-Unsubscribe=One-Click`` (``personal_links``); ``unsubscribe`` opts the
  contact point out (reason ``unsubscribe``), after which it is ``suppressed`` in the ledger, never sent.

Links are tokens ``<purpose>.<contact point id>.<expiry, epoch seconds>.<signature>``; the signature is
HMAC-SHA256 over those three and the contact point's address (so a link dies with its address), checked
in constant time. The key is ``signing_key``; unset, one derived from ``webhook_secret``; neither set,
a random key generated once into ``<database file>.signing-key`` next to the SQLite database (every
process using that database shares it). With PostgreSQL one of the two settings must be given.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import quote

from email_validator import EmailNotValidError, validate_email
from jinja2 import TemplateError
from sqlalchemy import ColumnElement, Connection, func, insert, select, update

from channels.base import (
    ChannelError,
    ChannelKind,
    Message,
    Outcome,
    PermanentError,
    ProviderUnavailable,
    Recipient,
    TransientError,
)
from dispatcher.audience.subscribers import email_key
from dispatcher.config.keys import (
    CODES,
    CONFIRM_VALID_FOR,
    UNSUBSCRIBE_VALID_FOR,
    Purpose,
    make_token,
    signature,
    signing_key,
)
from dispatcher.domain.errors import ConfigurationError, InvalidInput, TocsinError
from dispatcher.domain.locales import LOCALE_PATTERN
from dispatcher.domain.models import Severity
from dispatcher.engine.runtime import Runtime
from dispatcher.store.schema import contact_points, subscribers

__all__ = [
    "ConfirmationNotSent",
    "Signup",
    "confirm",
    "request_signup",
    "unsubscribe",
]

UNSUBSCRIBE_REASON = "unsubscribe"
MAX_COMPONENTS = 50


class ConfirmationNotSent(TocsinError):
    """No email provider could carry the confirmation email now; the signup is kept, try again later."""

    http_status = 503


class BadLink(InvalidInput):
    """A confirmation or unsubscribe link that is malformed (422), forged or no longer matching any
    address (404), or expired (410)."""

    def __init__(self, message: str, http_status: int) -> None:
        super().__init__(message)
        self.http_status = http_status


MAX_POINT_ID = 2**31 - 1
"""A link naming a larger id names no contact point (PostgreSQL's integer ids stop there)."""


@dataclass(frozen=True)
class _Point:
    id: int
    subscriber_id: int
    address: str
    confirmed: bool
    opted_out: bool


def _email_point(conn: Connection, match: ColumnElement[bool]) -> _Point | None:
    """The email contact point ``match`` picks (by id or by address), if there is one."""
    row = conn.execute(
        select(
            contact_points.c.id,
            contact_points.c.subscriber_id,
            contact_points.c.address,
            contact_points.c.confirmed,
            contact_points.c.opted_out,
        ).where(match, contact_points.c.channel == ChannelKind.EMAIL.value)
    ).first()
    if row is None:
        return None
    return _Point(row.id, row.subscriber_id, row.address, bool(row.confirmed), bool(row.opted_out))


def _check_token(rt: Runtime, token: str, purpose: Purpose) -> _Point:
    """The email contact point a valid, unexpired ``purpose`` link names; ``BadLink`` otherwise."""
    parts = token.strip().split(".")
    if len(parts) != 4 or parts[0] != CODES[purpose] or not parts[1].isdigit() or not parts[2].isdigit():
        raise BadLink(f"{purpose} link: malformed token", 422)
    point_id, expires = int(parts[1]), int(parts[2])
    with rt.engine.connect() as conn:
        point = _email_point(conn, contact_points.c.id == point_id) if point_id <= MAX_POINT_ID else None
    # Compare even when there is no such point, so timing does not tell which ids exist.
    address = point.address if point is not None else ""
    expected = signature(signing_key(rt.settings), parts[0], point_id, expires, address)
    if not hmac.compare_digest(expected.encode(), parts[3].encode()) or point is None:
        raise BadLink(f"{purpose} link: not valid (altered, or the address is no longer subscribed)", 404)
    if expires < rt.clock.now().timestamp():
        raise BadLink(f"{purpose} link: expired; ask for a new one", 410)
    return point


def _base_url(rt: Runtime, base_url: str | None) -> str:
    base = rt.settings.public_url or base_url
    if not base:
        raise ConfigurationError(
            "public_url: not set; links in emails need the address people reach `tocsin api` at"
        )
    return base.rstrip("/")


def _link(rt: Runtime, path: str, purpose: Purpose, point_id: int, address: str, base: str) -> str:
    valid_for = CONFIRM_VALID_FOR if purpose == "confirm" else UNSUBSCRIBE_VALID_FOR
    token = make_token(signing_key(rt.settings), purpose, point_id, address, rt.clock.now() + valid_for)
    return f"{base}{path}?token={quote(token, safe='')}"


# --- signup and confirmation -----------------------------------------------------------------------


@dataclass(frozen=True)
class Signup:
    contact_point_id: int
    address: str
    state: Literal["confirmation_sent", "already_confirmed"]
    provider: str | None = None
    """The provider that carried the confirmation email."""


def _clean_email(value: str) -> str:
    try:
        return validate_email(value.strip(), check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise InvalidInput(f"email: {value!r} is not a valid email address: {exc}") from None


def _clean_locale(value: str) -> str:
    if not LOCALE_PATTERN.match(value.strip()):
        raise InvalidInput(f"locale: {value!r} is not a locale such as en, fr or fr-CA")
    lang, *rest = value.strip().replace("_", "-").split("-")
    return "-".join([lang.lower(), *(part.upper() if len(part) == 2 else part for part in rest)])


def _clean_components(values: Sequence[str]) -> list[str]:
    cleaned = list(dict.fromkeys(v.strip() for v in values if v and v.strip()))
    if len(cleaned) > MAX_COMPONENTS:
        raise InvalidInput(f"components: at most {MAX_COMPONENTS}, got {len(cleaned)}")
    too_long = [c for c in cleaned if len(c) > 100]
    if too_long:
        raise InvalidInput(f"components: {too_long[0][:40]!r}… is longer than 100 characters")
    return cleaned


def request_signup(
    rt: Runtime,
    email: str,
    locale: str = "en",
    components: Sequence[str] = (),
    base_url: str | None = None,
    min_severity: Severity = Severity.MINOR,
    timezone: str | None = None,
) -> Signup:
    """Sign ``email`` up, unconfirmed, and send it a confirmation link.

    An address already subscribed and confirmed is left alone (no email: nobody can flood a subscriber
    with confirmation requests). One that was unsubscribed, or is still waiting, gets a new link.
    ``base_url`` is used for the link when ``public_url`` is not configured.
    """
    if not rt.settings.channels[ChannelKind.EMAIL].enabled:
        raise ConfigurationError("channels.email: disabled; self-service signup sends email")
    address = _clean_email(email)
    chosen_locale = _clean_locale(locale or "en")
    chosen = _clean_components(components)
    base = _base_url(rt, base_url)
    signing_key(rt.settings)  # a missing key is a configuration error before anything is written
    now = rt.clock.now()
    with rt.engine.begin() as conn:
        # Case-blind, as imports compare: BOB@Example.com signing up is bob@example.com again.
        row = _email_point(conn, func.lower(contact_points.c.address) == email_key(address))
        if row is None:
            subscriber_id = conn.execute(
                insert(subscribers).returning(subscribers.c.id),
                {
                    "locale": chosen_locale,
                    "components": chosen,
                    "min_severity_rank": min_severity.rank,
                    "internal": False,
                    "created_at": now,
                    "timezone": timezone,
                },
            ).scalar_one()
            point_id = conn.execute(
                insert(contact_points).returning(contact_points.c.id),
                {
                    "subscriber_id": subscriber_id,
                    "channel": ChannelKind.EMAIL.value,
                    "address": address,
                    "opted_out": False,
                    "confirmed": False,
                },
            ).scalar_one()
        elif row.confirmed and not row.opted_out:
            return Signup(row.id, address, "already_confirmed")
        else:
            point_id = row.id
            address = row.address  # the link names the address as it is stored
            if not row.confirmed:  # still a pending self-service signup: take the latest choices
                conn.execute(
                    update(subscribers)
                    .where(subscribers.c.id == row.subscriber_id)
                    .values(
                        locale=chosen_locale,
                        components=chosen,
                        min_severity_rank=min_severity.rank,
                        timezone=timezone,
                    )
                )
            conn.execute(
                update(contact_points).where(contact_points.c.id == point_id).values(confirmed=False)
            )
    link = _link(rt, "/subscribe/confirm", "confirm", point_id, address, base)
    provider = send_confirmation(rt, point_id, address, chosen_locale, link, chosen)
    return Signup(point_id, address, "confirmation_sent", provider)


CONFIRM_TEMPLATES = {
    "subject": "email/_confirm_subject.txt.j2",
    "text": "email/_confirm_body.txt.j2",
    "html": "email/_confirm_body.html.j2",
}


def confirmation_message(rt: Runtime, locale: str, link: str, components: Sequence[str]) -> Message:
    """The confirmation email in the subscriber's language (``email/_confirm_*`` templates)."""
    variables: dict[str, Any] = {
        "organisation": rt.settings.organisation,
        "confirm_url": link,
        "components": list(components),
        "status_page_url": rt.settings.status_page_url,
        "locale": locale,
        "valid_days": CONFIRM_VALID_FOR.days,
    }
    parts: dict[str, str] = {}
    for part, name in CONFIRM_TEMPLATES.items():
        try:
            parts[part] = rt.renderer.template_for(name, locale).render(variables)
        except TemplateError as exc:
            raise ConfigurationError(f"{name}: {type(exc).__name__}: {exc}") from None
    return Message(
        kind=ChannelKind.EMAIL,
        update_id=0,
        incident_id=0,
        subject=" ".join(parts["subject"].split()),
        text=parts["text"].strip() + "\n",
        html=parts["html"].strip() + "\n",
    )


def send_confirmation(
    rt: Runtime, point_id: int, address: str, locale: str, link: str, components: Sequence[str] = ()
) -> str:
    """Send the confirmation email through the email providers in failover order; the provider used.

    ``delivery_id`` is minus the contact point id: out of the ledger, so no provider event can ever be
    taken for a ledger row's."""
    message = confirmation_message(rt, locale, link, components)
    recipient = Recipient(delivery_id=-point_id, address=address)
    problems: list[str] = []
    for provider in rt.providers_for(ChannelKind.EMAIL):
        try:
            adapter = rt.adapter(provider)
            results = adapter.send(message, [recipient])
        except ConfigurationError as exc:
            problems.append(f"{provider}: {exc}")
            continue
        except PermanentError as exc:
            raise InvalidInput(f"email: {address} cannot be sent to: {exc.message}") from None
        except (ProviderUnavailable, TransientError, ChannelError) as exc:
            problems.append(f"{provider}: {exc.message}")
            continue
        result = results[0] if results else None
        if result is not None and result.outcome is Outcome.SENT:
            return provider
        if result is not None and result.outcome in (Outcome.FAILED, Outcome.OPTED_OUT):
            raise InvalidInput(f"email: {address} cannot be sent to: {result.error}")
        problems.append(f"{provider}: {result.error if result else 'no result'}")
    raise ConfirmationNotSent(
        "the confirmation email could not be sent now (" + "; ".join(problems) + "); try again later"
    )


@dataclass(frozen=True)
class Confirmed:
    contact_point_id: int
    address: str
    already: bool
    """The link had been followed before: nothing changed."""


def confirm(rt: Runtime, token: str) -> Confirmed:
    """Follow a confirmation link: the contact point is confirmed (and opted back in)."""
    point = _check_token(rt, token, "confirm")
    if point.confirmed:
        return Confirmed(point.id, point.address, already=True)
    with rt.engine.begin() as conn:
        conn.execute(
            update(contact_points)
            .where(contact_points.c.id == point.id, contact_points.c.confirmed.is_(False))
            .values(
                confirmed=True,
                confirmed_at=rt.clock.now(),
                opted_out=False,
                opted_out_reason=None,
                opted_out_at=None,
            )
        )
    return Confirmed(point.id, point.address, already=False)


def unsubscribe(rt: Runtime, token: str) -> str:
    """Follow an unsubscribe link: the contact point is opted out. Returns its address."""
    point = _check_token(rt, token, "unsubscribe")
    if not point.opted_out:
        with rt.engine.begin() as conn:
            conn.execute(
                update(contact_points)
                .where(contact_points.c.id == point.id)
                .values(opted_out=True, opted_out_reason=UNSUBSCRIBE_REASON, opted_out_at=rt.clock.now())
            )
    return point.address


def check_unsubscribe_link(rt: Runtime, token: str) -> str:
    """The address an unsubscribe link is for, without changing anything (for the confirm page)."""
    return _check_token(rt, token, "unsubscribe").address
