"""Pure helpers for the two HTTP endpoints Twilio calls back: message status callbacks and inbound SMS.

The dispatcher mounts the endpoints; these functions only check and read what Twilio POSTs (form fields).

* ``verify_signature`` checks ``X-Twilio-Signature`` (base64 HMAC-SHA1 with the account's auth token over
  the full URL Twilio requested followed by every POST parameter name and value in sorted order), using
  the SDK's own ``RequestValidator``. The URL must be exactly the public URL Twilio called (scheme, host,
  path and query), not the one a reverse proxy rewrote it to.
* ``parse_status_callback`` reads ``MessageSid`` / ``MessageStatus`` / ``ErrorCode``; the ``MessageSid``
  is the ``provider_message_id`` the Twilio adapter recorded for the delivery.
* ``parse_inbound`` reads a reply and recognises Twilio's standard opt-out / opt-in / help keywords.
  Twilio itself blocks the sender after STOP (later sends fail with error 21610) and only for a reply that
  is the keyword alone, so the same rule is applied here: "STOP" opts out, "please stop" does not.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from twilio.request_validator import RequestValidator

Keyword = Literal["stop", "start", "help"]

STOP_KEYWORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"})
START_KEYWORDS = frozenset({"START", "YES", "UNSTOP"})
HELP_KEYWORDS = frozenset({"HELP", "INFO"})

FINAL_STATUSES = frozenset({"delivered", "undelivered", "failed", "read", "canceled"})
FAILURE_STATUSES = frozenset({"undelivered", "failed"})


@dataclass(frozen=True)
class StatusEvent:
    """One status callback: ``status`` is lower case (queued, sent, delivered, undelivered, failed, ...);
    ``error_code`` is Twilio's 30xxx delivery error, if any."""

    message_sid: str
    status: str
    error_code: int | None = None

    @property
    def is_final(self) -> bool:
        """No later status is expected for this message."""
        return self.status in FINAL_STATUSES

    @property
    def is_failure(self) -> bool:
        """The carrier or Twilio gave up on the message after accepting it."""
        return self.status in FAILURE_STATUSES


@dataclass(frozen=True)
class InboundMessage:
    """One SMS a person sent to our number. ``keyword`` is set when the whole body is a standard
    keyword; ``to_number`` and ``message_sid`` are given when Twilio sent them."""

    from_number: str
    body: str
    keyword: Keyword | None
    to_number: str | None = None
    message_sid: str | None = None


def verify_signature(auth_token: str, url: str, params: Mapping[str, Any], signature: str | None) -> bool:
    """Whether ``signature`` (the ``X-Twilio-Signature`` header) is Twilio's for this URL and form.

    ``params`` are the POSTed form fields: a dict, or a multi-dict (aiohttp, Werkzeug, Django) whose
    repeated fields all count. A missing or empty signature is never valid.
    """
    if not signature or not auth_token:
        return False
    return bool(RequestValidator(auth_token).validate(url, params, signature))


def _field(params: Mapping[str, Any], *names: str) -> str | None:
    """The first non-empty field among ``names`` (Twilio still sends legacy ``Sms*`` twins), stripped."""
    for name in names:
        value = params.get(name)
        if value is not None and str(value).strip():
            return str(value).strip()
    return None


def _required(params: Mapping[str, Any], *names: str) -> str:
    value = _field(params, *names)
    if value is None:
        raise ValueError(f"Twilio callback is missing the {names[0]} field")
    return value


def parse_status_callback(params: Mapping[str, Any]) -> StatusEvent:
    """Read a status callback. Raises ``ValueError`` naming the missing or malformed field."""
    sid = _required(params, "MessageSid", "SmsSid")
    status = _required(params, "MessageStatus", "SmsStatus").lower()
    raw_code = _field(params, "ErrorCode")
    error_code: int | None = None
    if raw_code is not None:
        try:
            error_code = int(raw_code)
        except ValueError:
            raise ValueError(f"Twilio callback has a non-numeric ErrorCode: {raw_code!r}") from None
    return StatusEvent(message_sid=sid, status=status, error_code=error_code)


def keyword_of(body: str) -> Keyword | None:
    """The standard keyword ``body`` is (case-insensitive, surrounding whitespace ignored), or None."""
    word = body.strip().upper()
    if word in STOP_KEYWORDS:
        return "stop"
    if word in START_KEYWORDS:
        return "start"
    if word in HELP_KEYWORDS:
        return "help"
    return None


def parse_inbound(params: Mapping[str, Any]) -> InboundMessage:
    """Read an inbound SMS webhook. Raises ``ValueError`` naming a missing ``From``.

    A missing ``Body`` is read as empty (an MMS may have none); its keyword is then None.
    """
    from_number = _required(params, "From")
    raw_body = params.get("Body")
    body = "" if raw_body is None else str(raw_body)
    return InboundMessage(
        from_number=from_number,
        body=body,
        keyword=keyword_of(body),
        to_number=_field(params, "To"),
        message_sid=_field(params, "MessageSid", "SmsMessageSid", "SmsSid"),
    )
