"""Self-service subscriptions: people sign themselves up by email, text or webhook, prove the contact
point is theirs, and later change what they follow through a signed "manage your subscription" link.

* **Email**: double opt-in (``dispatcher.audience.consent``): a link by email confirms it.
* **SMS**: a six-digit code is texted to the number; typing it on the page confirms it (5 tries, 15
  minutes). Only the code's HMAC is stored.
* **Webhook**: Tocsin POSTs a signed ``subscription.verify`` event (Standard Webhooks, with a new
  ``whsec_`` secret) carrying a ``challenge``; the endpoint must answer 2xx with that challenge (JSON
  ``{"challenge": "…"}`` or the bare value). Answered, the endpoint is confirmed and the secret is shown
  once, for the receiver to check every later delivery's signature.

Every answer is the same whether or not the address was subscribed already (nobody learns who
subscribes): a number already confirmed gets a text saying so, with its manage link, instead of a
code. Preferences (components, minimum severity, locale, time zone, quiet hours, channels) come with
the signup and can be changed on the manage page, which also stops everything in one go.

Links are the tokens of ``dispatcher.config.keys`` (purpose ``manage`` or ``verify``), bound to the
contact point's address, so a link dies with its address.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import quote

import httpx
import phonenumbers
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import Connection, delete, insert, select, update

from channels._http.ssrf import BlockedDestination, DestinationPolicy
from channels.base import ChannelError, ChannelKind, Message, Outcome, Recipient
from channels.webhook import secret_key, sign
from dispatcher.audience import consent
from dispatcher.audience.subscribers import new_webhook_secret
from dispatcher.config.keys import (
    CODES,
    MANAGE_VALID_FOR,
    VERIFY_VALID_FOR,
    Purpose,
    make_token,
    signature,
    signing_key,
)
from dispatcher.domain.errors import ConfigurationError, InvalidInput, TocsinError
from dispatcher.domain.models import Severity
from dispatcher.domain.quiet_hours import check_clock_time, check_timezone
from dispatcher.engine.runtime import Runtime
from dispatcher.store.schema import components, contact_points, subscribers, subscription_challenges

__all__ = [
    "ManageView",
    "Preferences",
    "SignupRequest",
    "SignupResult",
    "choosable_components",
    "manage_link",
    "manage_view",
    "request",
    "sms_help",
    "stop_everything",
    "update_preferences",
    "verify_code",
]

CODE_TRIES = 5
PING_TIMEOUT = 10.0
SELF_SERVICE_CHANNELS = (ChannelKind.EMAIL, ChannelKind.SMS, ChannelKind.WEBHOOK)


class NotSent(TocsinError):
    """No provider could carry the code or the ping now; nothing was confirmed, try again later."""

    http_status = 503


class Preferences(BaseModel):
    """What a subscriber follows and how they are told."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    components: list[str] = Field(default_factory=list, max_length=consent.MAX_COMPONENTS)
    """Empty: every component."""
    min_severity: Severity = Severity.MINOR
    locale: str = Field(default="en", max_length=20)
    timezone: str | None = Field(default=None, max_length=60)
    quiet_start: str | None = None
    quiet_end: str | None = None

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        return check_timezone(value) if value else None

    @field_validator("quiet_start", "quiet_end")
    @classmethod
    def _clock(cls, value: str | None) -> str | None:
        return check_clock_time(value) if value else None


class SignupRequest(Preferences):
    """A signup from the form or the JSON API."""

    channel: ChannelKind = ChannelKind.EMAIL
    address: str = Field(min_length=3, max_length=500)

    @field_validator("channel")
    @classmethod
    def _self_service(cls, value: ChannelKind) -> ChannelKind:
        if value not in SELF_SERVICE_CHANNELS:
            raise ValueError("must be email, sms or webhook")
        return value


@dataclass(frozen=True)
class SignupResult:
    channel: ChannelKind
    address: str
    state: Literal["confirmation_sent", "code_sent", "verified"]
    verify_token: str | None = None
    """SMS: the token of the page that takes the code."""
    secret: str | None = field(default=None, repr=False)
    """Webhook: the endpoint's signing secret, shown once."""
    manage_url: str | None = None


# --- tokens for any channel ------------------------------------------------------------------------


@dataclass(frozen=True)
class Point:
    id: int
    subscriber_id: int
    channel: str
    address: str
    confirmed: bool
    opted_out: bool


def _point(conn: Connection, point_id: int) -> Point | None:
    row = conn.execute(select(contact_points).where(contact_points.c.id == point_id)).first()
    if row is None:
        return None
    return Point(
        row.id, row.subscriber_id, row.channel, row.address, bool(row.confirmed), bool(row.opted_out)
    )


def _check(rt: Runtime, token: str, purpose: Purpose) -> Point:
    parts = token.strip().split(".")
    if len(parts) != 4 or parts[0] != CODES[purpose] or not parts[1].isdigit() or not parts[2].isdigit():
        raise consent.BadLink(f"{purpose} link: malformed token", 422)
    point_id, expires = int(parts[1]), int(parts[2])
    with rt.engine.connect() as conn:
        point = _point(conn, point_id) if point_id <= consent.MAX_POINT_ID else None
    address = point.address if point is not None else ""
    expected = signature(signing_key(rt.settings), parts[0], point_id, expires, address)
    if not hmac.compare_digest(expected.encode(), parts[3].encode()) or point is None:
        raise consent.BadLink(
            f"{purpose} link: not valid (altered, or the address is no longer subscribed)", 404
        )
    if expires < rt.clock.now().timestamp():
        raise consent.BadLink(f"{purpose} link: expired; ask for a new one", 410)
    return point


def _base(rt: Runtime, base_url: str | None) -> str:
    base = rt.settings.public_url or base_url
    if not base:
        raise ConfigurationError("public_url: not set; links in messages need the address of `tocsin api`")
    return base.rstrip("/")


def manage_link(rt: Runtime, point_id: int, address: str, base_url: str | None = None) -> str:
    """The signed "manage your subscription" link of a contact point."""
    expires = rt.clock.now() + MANAGE_VALID_FOR
    token = make_token(signing_key(rt.settings), "manage", point_id, address, expires)
    return f"{_base(rt, base_url)}/manage?token={quote(token, safe='')}"


SMS_HELP = "{org}: outage notifications. Reply STOP to unsubscribe, START to resubscribe."


def sms_help(rt: Runtime, number: str) -> str:
    """The answer to an SMS reply of HELP: how to stop and start, and, for a subscribed number, its own
    "manage your subscription" link. Outage texts spend their budget on the news, so this is where an
    SMS reader finds the page (when links can be made: ``public_url`` and a signing key)."""
    text = SMS_HELP.format(org=rt.settings.organisation)
    with rt.engine.connect() as conn:
        point = conn.execute(
            select(contact_points.c.id, contact_points.c.address).where(
                contact_points.c.channel == ChannelKind.SMS.value, contact_points.c.address == number
            )
        ).first()
    if point is None or not rt.settings.public_url:
        return text
    try:
        return f"{text} Manage your subscription: {manage_link(rt, point.id, point.address)}"
    except ConfigurationError:  # no signing key: the keywords still work
        return text


# --- signing up ------------------------------------------------------------------------------------


def choosable_components(rt: Runtime) -> list[str]:
    """The components a subscriber may pick: the status page's, in page order."""
    with rt.engine.connect() as conn:
        names = list(
            conn.execute(
                select(components.c.name).order_by(components.c.position, components.c.name)
            ).scalars()
        )
    provider = rt.settings.channels[ChannelKind.STATUSPAGE].providers[0]
    configured = rt.settings.providers.get(provider, {}).get("components", [])
    if isinstance(configured, list):
        names += [c for c in configured if isinstance(c, str) and c not in names]
    return names


def _clean(rt: Runtime, req: SignupRequest) -> tuple[str, list[str], str]:
    if not rt.settings.channels[req.channel].enabled:
        raise InvalidInput(f"channel: {req.channel.value} is not offered here")
    known = choosable_components(rt)
    chosen = consent._clean_components(req.components)
    unknown = [c for c in chosen if known and c not in known]
    if unknown:
        raise InvalidInput(f"components: {unknown[0]!r} is not a component of this page")
    locale = consent._clean_locale(req.locale or "en")
    if req.channel is ChannelKind.EMAIL:
        return consent._clean_email(req.address), chosen, locale
    if req.channel is ChannelKind.SMS:
        return _clean_phone(req.address, rt.settings.default_region), chosen, locale
    return _clean_url(req.address), chosen, locale


def _clean_phone(value: str, region: str) -> str:
    try:
        number = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException:
        raise InvalidInput(f"address: {value!r} is not a phone number") from None
    if not phonenumbers.is_valid_number(number):
        raise InvalidInput(f"address: {value!r} is not a valid phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _clean_url(value: str) -> str:
    try:
        url = httpx.URL(value.strip())
    except httpx.InvalidURL as exc:
        raise InvalidInput(f"address: {value!r} is not a URL ({exc})") from None
    if url.scheme not in ("https", "http") or not url.host:
        raise InvalidInput(f"address: {value!r} is not an http(s) URL")
    if url.userinfo:
        raise InvalidInput("address: a webhook URL must not carry a user name or password")
    return str(url)


def request(rt: Runtime, req: SignupRequest, base_url: str | None = None) -> SignupResult:
    """Sign up one contact point, unconfirmed, and start proving it is theirs (see the module doc)."""
    address, chosen, locale = _clean(rt, req)
    base = _base(rt, base_url)
    signing_key(rt.settings)  # a missing key is a configuration error before anything is written
    if req.channel is ChannelKind.EMAIL:
        signup = consent.request_signup(
            rt, address, locale, chosen, base_url, min_severity=req.min_severity, timezone=req.timezone
        )
        return SignupResult(req.channel, signup.address, "confirmation_sent")
    point, fresh = _store(rt, req, address, chosen, locale)
    if req.channel is ChannelKind.SMS:
        return _text_code(rt, point, fresh, locale, base)
    return _ping(rt, point, base)


def _store(
    rt: Runtime, req: SignupRequest, address: str, chosen: list[str], locale: str
) -> tuple[Point, bool]:
    """The contact point (made unconfirmed if new); whether it still has to prove itself."""
    with rt.engine.begin() as conn:
        row = conn.execute(
            select(contact_points.c.id).where(
                contact_points.c.channel == req.channel.value, contact_points.c.address == address
            )
        ).scalar_one_or_none()
        if row is not None:
            point = _point(conn, row)
            assert point is not None
            if not point.confirmed:
                _set_preferences(conn, point.subscriber_id, req, chosen, locale)
            return point, not point.confirmed or point.opted_out
        subscriber_id = conn.execute(
            insert(subscribers).returning(subscribers.c.id),
            {
                "locale": locale,
                "components": chosen,
                "min_severity_rank": req.min_severity.rank,
                "internal": False,
                "created_at": rt.clock.now(),
                "timezone": req.timezone,
                "quiet_start": req.quiet_start,
                "quiet_end": req.quiet_end,
            },
        ).scalar_one()
        secret = new_webhook_secret() if req.channel is ChannelKind.WEBHOOK else None
        point_id = conn.execute(
            insert(contact_points).returning(contact_points.c.id),
            {
                "subscriber_id": subscriber_id,
                "channel": req.channel.value,
                "address": address,
                "secret": secret,
                "opted_out": False,
                "confirmed": False,
            },
        ).scalar_one()
        point = _point(conn, point_id)
        assert point is not None
        return point, True


def _set_preferences(
    conn: Connection, subscriber_id: int, prefs: Preferences, chosen: list[str], locale: str
) -> None:
    conn.execute(
        update(subscribers)
        .where(subscribers.c.id == subscriber_id)
        .values(
            components=chosen,
            min_severity_rank=prefs.min_severity.rank,
            locale=locale,
            timezone=prefs.timezone,
            quiet_start=prefs.quiet_start,
            quiet_end=prefs.quiet_end,
        )
    )


def _code_hash(rt: Runtime, point_id: int, code: str) -> str:
    return hmac.new(
        signing_key(rt.settings), f"sms-code.{point_id}.{code}".encode(), hashlib.sha256
    ).hexdigest()


def _send_direct(rt: Runtime, channel: ChannelKind, message: Message, recipient: Recipient) -> None:
    """One message outside the ledger through the channel's providers in failover order."""
    problems: list[str] = []
    for provider in rt.providers_for(channel):
        try:
            [result] = rt.adapter(provider).send(message, [recipient])
        except (ChannelError, ConfigurationError) as exc:
            problems.append(f"{provider}: {exc}")
            continue
        if result.outcome is Outcome.SENT:
            return
        if result.outcome in (Outcome.FAILED, Outcome.OPTED_OUT):
            raise InvalidInput(f"address: {recipient.address} cannot be reached: {result.error}")
        problems.append(f"{provider}: {result.error}")
    raise NotSent(f"the {channel.value} could not be sent now ({'; '.join(problems)}); try again later")


def _text_code(rt: Runtime, point: Point, fresh: bool, locale: str, base: str) -> SignupResult:
    org = rt.settings.organisation
    manage = manage_link(rt, point.id, point.address, base)
    token = make_token(
        signing_key(rt.settings), "verify", point.id, point.address, rt.clock.now() + VERIFY_VALID_FOR
    )
    if not fresh:
        text = f"{org} status: this number already gets our status updates. Manage them: {manage}"
    else:
        code = f"{secrets.randbelow(1_000_000):06d}"
        now = rt.clock.now()
        with rt.engine.begin() as conn:
            conn.execute(
                delete(subscription_challenges).where(subscription_challenges.c.contact_point_id == point.id)
            )
            conn.execute(
                insert(subscription_challenges),
                {
                    "contact_point_id": point.id,
                    "kind": "sms_code",
                    "code_hash": _code_hash(rt, point.id, code),
                    "created_at": now,
                    "expires_at": now + VERIFY_VALID_FOR,
                },
            )
        minutes = int(VERIFY_VALID_FOR.total_seconds() // 60)
        text = (
            f"{org} status: your code is {code}. It expires in {minutes} minutes. Not you? Ignore this text."
        )
    message = Message(kind=ChannelKind.SMS, update_id=0, incident_id=0, subject="", text=text)
    _send_direct(rt, ChannelKind.SMS, message, Recipient(delivery_id=-point.id, address=point.address))
    return SignupResult(ChannelKind.SMS, point.address, "code_sent", verify_token=token)


def verify_code(rt: Runtime, token: str, code: str) -> SignupResult:
    """The code typed on the page: right, the number is confirmed; wrong, ``InvalidInput`` (and after
    ``CODE_TRIES`` wrong ones, or once expired, a new code must be asked for)."""
    point = _check(rt, token, "verify")
    typed = "".join(ch for ch in code if ch.isdigit())
    now = rt.clock.now()
    with rt.engine.begin() as conn:
        challenge = conn.execute(
            select(subscription_challenges).where(subscription_challenges.c.contact_point_id == point.id)
        ).first()
        if challenge is None:
            if point.confirmed and not point.opted_out:
                return SignupResult(
                    ChannelKind.SMS,
                    point.address,
                    "verified",
                    manage_url=manage_link(rt, point.id, point.address),
                )
            raise InvalidInput("code: no code is waiting for this number; ask for a new one")
        if challenge.expires_at < now or challenge.attempts >= CODE_TRIES:
            conn.execute(delete(subscription_challenges).where(subscription_challenges.c.id == challenge.id))
            raise InvalidInput("code: expired or tried too often; ask for a new one")
        if not hmac.compare_digest(_code_hash(rt, point.id, typed), challenge.code_hash):
            conn.execute(
                update(subscription_challenges)
                .where(subscription_challenges.c.id == challenge.id)
                .values(attempts=subscription_challenges.c.attempts + 1)
            )
            left = CODE_TRIES - challenge.attempts - 1
            raise InvalidInput(f"code: not the code we sent; {left} tr{'y' if left == 1 else 'ies'} left")
        conn.execute(delete(subscription_challenges).where(subscription_challenges.c.id == challenge.id))
        _confirm(conn, point.id, now)
    return SignupResult(
        ChannelKind.SMS, point.address, "verified", manage_url=manage_link(rt, point.id, point.address)
    )


def _confirm(conn: Connection, point_id: int, now: Any) -> None:
    conn.execute(
        update(contact_points)
        .where(contact_points.c.id == point_id)
        .values(confirmed=True, confirmed_at=now, opted_out=False, opted_out_reason=None, opted_out_at=None)
    )


def _ping(rt: Runtime, point: Point, base: str) -> SignupResult:
    """POST the signed verification event; the endpoint must answer with the challenge."""
    with rt.engine.connect() as conn:
        secret = conn.execute(
            select(contact_points.c.secret).where(contact_points.c.id == point.id)
        ).scalar_one()
    allowed = rt.settings.provider_options("webhook").get("allow_destinations", [])
    policy = DestinationPolicy(allowed if isinstance(allowed, list) else [])
    url = httpx.URL(point.address)
    try:
        policy.check_url(point.address)
        policy.resolve_and_check(url.host, url.port or (443 if url.scheme == "https" else 80))
    except BlockedDestination as exc:
        raise InvalidInput(f"address: {exc}") from None
    except OSError as exc:  # the host name does not resolve
        raise InvalidInput(f"address: cannot find the host {url.host!r} ({exc.strerror or exc})") from None
    challenge = secrets.token_urlsafe(24)
    body = json.dumps(
        {
            "type": "subscription.verify",
            "challenge": challenge,
            "organisation": rt.settings.organisation,
            "manage_url": manage_link(rt, point.id, point.address, base),
        }
    )
    webhook_id = f"tocsin-verify-{point.id}-{secrets.token_hex(4)}"
    stamp = int(time.time())
    headers = {
        "content-type": "application/json",
        "webhook-id": webhook_id,
        "webhook-timestamp": str(stamp),
        "webhook-signature": sign(secret_key(secret), webhook_id, stamp, body),
        "user-agent": "Tocsin subscription verification",
    }
    try:
        with httpx.Client(timeout=PING_TIMEOUT, follow_redirects=False) as client:
            answer = client.post(point.address, content=body, headers=headers)
    except httpx.HTTPError as exc:
        raise InvalidInput(
            f"address: the endpoint did not answer the verification ping ({type(exc).__name__})"
        ) from None
    if not answer.is_success or not _echoes(answer, challenge):
        raise InvalidInput(
            f"address: the endpoint answered the verification ping with HTTP {answer.status_code} "
            'but not with its challenge; answer 2xx with {"challenge": "<the challenge>"}'
        )
    with rt.engine.begin() as conn:
        _confirm(conn, point.id, rt.clock.now())
    return SignupResult(
        ChannelKind.WEBHOOK,
        point.address,
        "verified",
        secret=secret,
        manage_url=manage_link(rt, point.id, point.address, base),
    )


def _echoes(answer: httpx.Response, challenge: str) -> bool:
    text = answer.text.strip()
    if text == challenge:
        return True
    try:
        data = json.loads(text)
    except ValueError:
        return False
    return isinstance(data, dict) and data.get("challenge") == challenge


# --- managing a subscription -----------------------------------------------------------------------


@dataclass(frozen=True)
class ContactView:
    id: int
    channel: str
    address: str
    receiving: bool
    """Confirmed and not opted out: updates go there."""


@dataclass(frozen=True)
class ManageView:
    subscriber_id: int
    preferences: Preferences
    contacts: list[ContactView]
    choosable: list[str]


def manage_view(rt: Runtime, token: str) -> ManageView:
    """What the manage page shows for the contact point a manage link names."""
    point = _check(rt, token, "manage")
    with rt.engine.connect() as conn:
        row = conn.execute(select(subscribers).where(subscribers.c.id == point.subscriber_id)).one()
        points = conn.execute(
            select(contact_points)
            .where(contact_points.c.subscriber_id == point.subscriber_id)
            .order_by(contact_points.c.id)
        ).all()
    prefs = Preferences(
        components=list(row.components or []),
        min_severity=next((s for s in Severity if s.rank == row.min_severity_rank), Severity.MINOR),
        locale=row.locale,
        timezone=row.timezone,
        quiet_start=row.quiet_start,
        quiet_end=row.quiet_end,
    )
    contacts = [
        ContactView(p.id, p.channel, p.address, bool(p.confirmed) and not bool(p.opted_out))
        for p in points
        if bool(p.confirmed)
    ]
    return ManageView(point.subscriber_id, prefs, contacts, choosable_components(rt))


def update_preferences(
    rt: Runtime, token: str, prefs: Preferences, receiving: Sequence[int] | None
) -> ManageView:
    """Save new preferences; ``receiving``: the ids of the subscriber's contact points to keep sending to
    (the others are opted out, reason ``manage``), or None to leave every contact point as it is."""
    point = _check(rt, token, "manage")
    chosen = consent._clean_components(prefs.components)
    known = choosable_components(rt)
    unknown = [c for c in chosen if known and c not in known]
    if unknown:
        raise InvalidInput(f"components: {unknown[0]!r} is not a component of this page")
    locale = consent._clean_locale(prefs.locale or "en")
    now = rt.clock.now()
    with rt.engine.begin() as conn:
        _set_preferences(conn, point.subscriber_id, prefs, chosen, locale)
        owned = conn.execute(
            select(contact_points.c.id, contact_points.c.opted_out).where(
                contact_points.c.subscriber_id == point.subscriber_id, contact_points.c.confirmed.is_(True)
            )
        ).all()
        for pid, opted_out in owned:
            if receiving is None:
                break  # every contact point stays as it is
            keep = pid in receiving
            if keep and opted_out:
                conn.execute(
                    update(contact_points)
                    .where(contact_points.c.id == pid)
                    .values(opted_out=False, opted_out_reason=None, opted_out_at=None)
                )
            elif not keep and not opted_out:
                conn.execute(
                    update(contact_points)
                    .where(contact_points.c.id == pid)
                    .values(opted_out=True, opted_out_reason="manage", opted_out_at=now)
                )
    return manage_view(rt, token)


def stop_everything(rt: Runtime, token: str) -> ManageView:
    """Opt every contact point of the subscriber out (reason ``unsubscribe``)."""
    point = _check(rt, token, "manage")
    with rt.engine.begin() as conn:
        conn.execute(
            update(contact_points)
            .where(
                contact_points.c.subscriber_id == point.subscriber_id, contact_points.c.opted_out.is_(False)
            )
            .values(opted_out=True, opted_out_reason=consent.UNSUBSCRIBE_REASON, opted_out_at=rt.clock.now())
        )
    return manage_view(rt, token)
