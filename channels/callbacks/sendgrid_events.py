"""SendGrid's signed Event Webhook: verify a request and turn its body into typed events.

SendGrid POSTs a JSON array of events to the configured URL. With the *Signed Event Webhook* on, each
request carries two headers (``SIGNATURE_HEADER`` and ``TIMESTAMP_HEADER``): an ECDSA P-256 / SHA-256
signature, DER-encoded then base64, over ``timestamp + raw body``. The verification key is shown in the
SendGrid console as base64 DER ``SubjectPublicKeyInfo`` (a PEM body without its armour lines).

``verify_event_signature`` checks the signature with the SDK's own ``EventWebhook`` and also rejects a
timestamp too far from now, so a captured request cannot be replayed later. ``parse_events`` validates
the body; ``is_suppressing`` says whether an event means "never mail this address again".

Pure functions: no I/O, no database; the HTTP endpoint and the ledger updates live elsewhere.
"""

from __future__ import annotations

import binascii
import json
import math
import time
from dataclasses import dataclass
from typing import Any, Final

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec
from sendgrid.helpers.eventwebhook import EventWebhook
from sendgrid.helpers.eventwebhook.eventwebhook_header import EventWebhookHeader

SIGNATURE_HEADER: Final[str] = EventWebhookHeader.SIGNATURE
"""``X-Twilio-Email-Event-Webhook-Signature``"""
TIMESTAMP_HEADER: Final[str] = EventWebhookHeader.TIMESTAMP
"""``X-Twilio-Email-Event-Webhook-Timestamp``"""

DELIVERY_ID_ARG: Final[str] = "tocsin_delivery_id"
"""The custom arg ``channels.sendgrid`` puts on every personalization; SendGrid echoes it as a top-level
field of each event."""

DEFAULT_TOLERANCE: Final[float] = 300.0
"""Seconds a signed timestamp may lie from now (either way), as Standard Webhooks does."""

SUPPRESSING_EVENTS: Final[frozenset[str]] = frozenset(
    {"bounce", "dropped", "spamreport", "unsubscribe", "group_unsubscribe"}
)
"""Event names that may mean the address must not be mailed again (see ``is_suppressing`` for the
soft-bounce exception)."""

SOFT_BOUNCE_TYPES: Final[frozenset[str]] = frozenset({"blocked"})
"""``bounce`` events whose ``type`` is one of these are blocks (temporary, often reputation or content
related: the receiving server refused this message, not the address), so they do not suppress."""


class InvalidPublicKey(ValueError):
    """The configured verification key is not a base64 DER EC public key (a configuration error)."""


def load_public_key(public_key: str) -> ec.EllipticCurvePublicKey:
    """Parse the key as SendGrid shows it (base64 DER SubjectPublicKeyInfo) with the SDK's converter.

    Raises ``InvalidPublicKey`` naming the problem: a wrong key is the operator's mistake, not a forged
    request, so it must be loud rather than a silent ``False`` for every event.
    """
    text = "".join(public_key.split())
    if text.startswith("-----BEGIN"):
        raise InvalidPublicKey(
            "SendGrid event webhook public key: give only the base64 text, without the "
            "-----BEGIN/END PUBLIC KEY----- lines"
        )
    if not text:
        raise InvalidPublicKey("SendGrid event webhook public key is empty")
    try:
        key = EventWebhook().convert_public_key_to_ecdsa(text)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise InvalidPublicKey(
            f"SendGrid event webhook public key is not a base64 DER public key ({exc})"
        ) from exc
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise InvalidPublicKey(
            f"SendGrid event webhook public key must be an ECDSA key, got {type(key).__name__}"
        )
    return key


def verify_event_signature(
    public_key: str | ec.EllipticCurvePublicKey,
    payload: bytes,
    signature: str,
    timestamp: str,
    now: float | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
) -> bool:
    """True when ``signature`` is SendGrid's signature of ``timestamp + payload`` and fresh.

    ``payload`` is the raw request body exactly as received (never re-serialised JSON); ``signature`` and
    ``timestamp`` are the two header values. ``now`` is unix time (default ``time.time()``); a timestamp
    more than ``tolerance`` seconds before or after it is rejected as a replay (or a badly skewed clock).

    Returns False for anything a sender could get wrong: bad signature, tampered body or timestamp,
    non-base64 signature, non-integer or stale timestamp, a body that is not UTF-8. Raises
    ``InvalidPublicKey`` only for a bad *configured* key. ``public_key`` may be a pre-loaded key (from
    ``load_public_key``) to avoid parsing it on every request.
    """
    key = public_key if isinstance(public_key, ec.EllipticCurvePublicKey) else load_public_key(public_key)
    if not _fresh(timestamp, time.time() if now is None else now, tolerance):
        return False
    try:
        # The SDK concatenates str and encodes as UTF-8; a genuine body is UTF-8 JSON, so decoding then
        # re-encoding gives back exactly the signed bytes.
        body = payload.decode("utf-8")
    except UnicodeDecodeError:
        return False
    try:
        return bool(EventWebhook().verify_signature(body, signature.strip(), timestamp, public_key=key))
    except (binascii.Error, ValueError):
        return False


def _fresh(timestamp: str, now: float, tolerance: float) -> bool:
    text = timestamp.strip()
    if not text.isascii() or not text.isdigit() or len(text) > 12:
        return False
    return math.fabs(now - int(text)) <= tolerance


@dataclass(frozen=True)
class EmailEvent:
    """One event of SendGrid's Event Webhook, reduced to what Tocsin uses."""

    email: str
    event: str
    sg_message_id: str | None
    timestamp: int
    """Unix seconds when the event happened (SendGrid's clock)."""
    delivery_id: int | None
    """The ``tocsin_delivery_id`` custom arg: the ledger row; None for mail Tocsin did not send."""
    reason: str | None
    """``reason`` (bounce, dropped, deferred) or ``response`` when there is no reason."""
    type: str | None = None
    """For ``bounce``: ``"bounce"`` (hard) or ``"blocked"`` (soft/temporary block)."""
    sg_event_id: str | None = None
    """SendGrid's unique id for the event: use it to de-duplicate redelivered webhooks."""

    @property
    def x_message_id(self) -> str | None:
        """The ``X-Message-Id`` returned by ``/v3/mail/send``: the part of ``sg_message_id`` before the
        first dot (SendGrid appends filter and recipient suffixes)."""
        if self.sg_message_id is None:
            return None
        return self.sg_message_id.split(".", 1)[0]


def parse_events(payload: bytes) -> list[EmailEvent]:
    """Parse a webhook body. Raises ``ValueError`` naming the event index and field for a bad body.

    Unknown event names and extra fields are accepted (SendGrid adds them over time); what Tocsin relies
    on is checked: ``email`` and ``event`` non-empty strings, ``timestamp`` an integer (SendGrid sends
    unix seconds), and optional string fields that are strings when present.
    """
    try:
        document = json.loads(payload)
    except UnicodeDecodeError as exc:
        raise ValueError(f"SendGrid event payload is not UTF-8 text: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise ValueError(f"SendGrid event payload is not valid JSON: {exc}") from exc
    if not isinstance(document, list):
        raise ValueError(f"SendGrid event payload must be a JSON array of events, got {_json_type(document)}")
    return [_parse_event(index, item) for index, item in enumerate(document)]


def _parse_event(index: int, item: Any) -> EmailEvent:
    where = f"SendGrid event #{index}"
    if not isinstance(item, dict):
        raise ValueError(f"{where} must be a JSON object, got {_json_type(item)}")
    email = item.get("email")
    if not isinstance(email, str) or not email.strip():
        raise ValueError(f"{where}: 'email' must be a non-empty string")
    name = item.get("event")
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"{where}: 'event' must be a non-empty string")
    stamp = item.get("timestamp")
    if isinstance(stamp, float) and stamp.is_integer():
        stamp = int(stamp)
    if isinstance(stamp, bool) or not isinstance(stamp, int):
        raise ValueError(f"{where} ({name}): 'timestamp' must be an integer (unix seconds)")
    reason = _optional_str(item, "reason", where)
    if reason is None:
        reason = _optional_str(item, "response", where)
    return EmailEvent(
        email=email.strip(),
        event=name.strip(),
        sg_message_id=_optional_str(item, "sg_message_id", where),
        timestamp=stamp,
        delivery_id=_delivery_id(item, where),
        reason=reason,
        type=_optional_str(item, "type", where),
        sg_event_id=_optional_str(item, "sg_event_id", where),
    )


def _optional_str(item: dict[str, Any], field: str, where: str) -> str | None:
    value = item.get(field)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"{where}: {field!r} must be a string, got {_json_type(value)}")
    return value


def _delivery_id(item: dict[str, Any], where: str) -> int | None:
    """Custom args arrive as strings (``"42"``); accept a JSON integer too."""
    value = item.get(DELIVERY_ID_ARG)
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        number = int(value.strip())
        if number > 0:
            return number
    raise ValueError(f"{where}: {DELIVERY_ID_ARG!r} must be a positive integer, got {value!r}")


def is_suppressing(event: EmailEvent) -> bool:
    """True when the event means this address must not be mailed again.

    Hard bounces, drops, spam reports and (group) unsubscribes suppress. A ``bounce`` whose ``type`` is
    ``"blocked"`` is a block - the receiving server refused this message for now (reputation, content,
    rate) - and does not: the address itself is fine. A ``bounce`` with no ``type`` (older payloads) is
    treated as hard. ``deferred`` and engagement events never suppress.
    """
    if event.event not in SUPPRESSING_EVENTS:
        return False
    if event.event == "bounce" and event.type is not None:
        return event.type.strip().lower() not in SOFT_BOUNCE_TYPES
    return True


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__
