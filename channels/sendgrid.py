"""SendGrid email adapter (v3 Mail Send through the official ``sendgrid`` SDK).

One HTTP request carries up to 1,000 recipients, one personalization each, so recipients never see each
other and every personalization's ``custom_args`` carries the Tocsin delivery id (SendGrid echoes
``custom_args`` back in its Event Webhook, which is how events are matched to ledger rows).

SendGrid has no idempotency key: a timeout after SendGrid accepted a request becomes a duplicate when the
batch is retried. That is the at-least-once price; ``custom_args`` lets the event webhook spot it.
"""

from __future__ import annotations

import http.client
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from email_validator import EmailNotValidError, validate_email
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from python_http_client.exceptions import HTTPError
from sendgrid import SendGridAPIClient

from channels._http.hints import base_url, retry_after, seconds_until_epoch
from channels.base import (
    MANAGE_URL_PLACEHOLDER,
    AdapterBase,
    Capabilities,
    ChannelError,
    ChannelKind,
    Message,
    PermanentError,
    ProviderUnavailable,
    Recipient,
    Result,
    TransientError,
    personal_link,
)
from channels.email_mime import LIST_HELP, LIST_UNSUBSCRIBE, LIST_UNSUBSCRIBE_POST, ONE_CLICK
from channels.readiness import Readiness

MAX_RECIPIENTS_PER_REQUEST = 1000
SEND_SCOPE = "mail.send"


API_KEY_PREFIX = "SG."


def _looks_like_email(value: str) -> str:
    """The address as given, if it is one (syntax only: no DNS lookup at start-up)."""
    try:
        validate_email(value, check_deliverability=False)
    except EmailNotValidError as exc:
        raise ValueError(f"not an email address: {value!r} ({exc})") from None
    return value


class SendGridOptions(BaseModel):
    """Settings of the SendGrid adapter."""

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    api_key: SecretStr
    base_url: str = "https://api.sendgrid.com"
    """API host; ``https://api.eu.sendgrid.com`` for EU data residency, an emulator URL in tests."""
    from_email: str
    from_name: str | None = None
    reply_to: str | None = None
    categories: list[str] = Field(default_factory=list, max_length=10)
    timeout: float = Field(default=10.0, gt=0)
    """Seconds to wait for SendGrid (connect, and each socket read)."""

    @field_validator("base_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        return base_url(value)

    @field_validator("api_key")
    @classmethod
    def _key_shape(cls, value: SecretStr) -> SecretStr:
        # Every SendGrid API key starts "SG."; anything else is a paste of the wrong secret.
        if not value.get_secret_value().startswith(API_KEY_PREFIX):
            raise ValueError(f"a SendGrid API key starts with {API_KEY_PREFIX!r}")
        return value

    @field_validator("from_email", "reply_to")
    @classmethod
    def _email(cls, value: str | None) -> str | None:
        return None if value is None else _looks_like_email(value)


class SendGridAdapter(AdapterBase):
    """Email through SendGrid. See the module docstring."""

    name: ClassVar[str] = "sendgrid"
    capabilities: ClassVar[Capabilities] = Capabilities(
        kinds=frozenset({ChannelKind.EMAIL}),
        max_batch=MAX_RECIPIENTS_PER_REQUEST,
        renders_html=True,
    )
    Options: ClassVar[type[BaseModel]] = SendGridOptions

    def __init__(self, options: SendGridOptions) -> None:
        self.options = options
        self._sdk = SendGridAPIClient(options.api_key.get_secret_value(), host=options.base_url)
        # python_http_client passes this to urllib's opener.open(timeout=...); every request client the
        # SDK derives from this root client inherits it. Without it a hung server blocks forever.
        self._sdk.client.timeout = options.timeout

    def send(self, message: Message, recipients: Sequence[Recipient]) -> list[Result]:
        """Send ``message`` to every recipient, 1,000 per request.

        A failure of the first request raises (nothing was sent). If a later request of an oversized batch
        fails, the recipients already accepted are reported sent and the failed ones get per-recipient
        ``retry``/``failed`` results instead, so nothing is sent twice because of a raise.
        """
        if message.kind is not ChannelKind.EMAIL:
            raise PermanentError(f"sendgrid carries email, not {message.kind}")
        results: list[Result] = []
        for start in range(0, len(recipients), MAX_RECIPIENTS_PER_REQUEST):
            chunk = recipients[start : start + MAX_RECIPIENTS_PER_REQUEST]
            try:
                results.extend(self._send_chunk(message, chunk))
            except ChannelError as exc:
                if not results:
                    raise
                results.extend(_results_for_error(chunk, exc))
        return results

    def _send_chunk(self, message: Message, chunk: Sequence[Recipient]) -> list[Result]:
        """One request. When SendGrid rejects it only because of some addresses, those fail alone and
        the rest of the chunk is sent again at once: one bad address must not sink a thousand good ones."""
        try:
            provider_id = self._post(self.request_body(message, chunk))
        except RecipientsRejected as exc:
            bad = [r for i, r in enumerate(chunk) if i in exc.indices]
            good = [r for i, r in enumerate(chunk) if i not in exc.indices]
            failed = [Result.failed(r.delivery_id, exc.message) for r in bad]
            if not good:
                return failed
            provider_id = self._post(self.request_body(message, good))
            return failed + [Result.sent(r.delivery_id, provider_id) for r in good]
        return [Result.sent(r.delivery_id, provider_id) for r in chunk]

    def request_body(self, message: Message, recipients: Sequence[Recipient]) -> dict[str, Any]:
        """The v3 Mail Send JSON for one request: one personalization per recipient."""
        options = self.options
        sender: dict[str, str] = {"email": options.from_email}
        if options.from_name:
            sender["name"] = options.from_name
        shows_link = any(MANAGE_URL_PLACEHOLDER in part for part in (message.text, message.html or ""))
        personalizations = []
        for recipient in recipients:
            to: dict[str, str] = {"email": recipient.address}
            if recipient.name:
                to["name"] = recipient.name
            personalization: dict[str, Any] = {"to": [to]}
            if recipient.delivery_id > 0:  # 0 or less: a message outside the ledger (a confirmation)
                personalization["custom_args"] = {
                    "tocsin_delivery_id": str(recipient.delivery_id),
                    "tocsin_message_id": recipient.message_id,
                }
            headers: dict[str, str] = {}
            if recipient.unsubscribe_url:
                # RFC 8058 one-click unsubscribe, per recipient: SendGrid takes headers per personalization.
                headers[LIST_UNSUBSCRIBE] = f"<{recipient.unsubscribe_url}>"
                headers[LIST_UNSUBSCRIBE_POST] = ONE_CLICK
            if recipient.manage_url:
                headers[LIST_HELP] = f"<{recipient.manage_url}>"  # RFC 2369: their own manage page
            if headers:
                personalization["headers"] = headers
            if shows_link:
                # The visible "manage or stop these updates" link: SendGrid substitutes it per recipient.
                personalization["substitutions"] = {MANAGE_URL_PLACEHOLDER: personal_link(recipient)}
            personalizations.append(personalization)
        content = []
        if message.text:
            content.append({"type": "text/plain", "value": message.text})
        if message.html:
            content.append({"type": "text/html", "value": message.html})
        body: dict[str, Any] = {
            "personalizations": personalizations,
            "from": sender,
            "subject": message.subject,
            "content": content,
            "custom_args": {
                "tocsin_update_id": str(message.update_id),
                "tocsin_incident_id": str(message.incident_id),
            },
        }
        if options.reply_to:
            body["reply_to"] = {"email": options.reply_to}
        if options.categories:
            body["categories"] = list(options.categories)
        return body

    def _post(self, body: dict[str, Any]) -> str | None:
        """POST one request; returns SendGrid's X-Message-Id or raises a typed ChannelError."""
        try:
            response = self._sdk.send(body)
        except HTTPError as exc:
            raise _map_http_error(exc) from None
        except (OSError, http.client.HTTPException) as exc:
            # URLError, socket timeouts, refused/reset connections, a server closing without answering.
            raise TransientError(f"sendgrid: {type(exc).__name__}: {exc}") from None
        headers = response.headers
        message_id = headers.get("X-Message-Id") if headers is not None else None
        return None if message_id is None else str(message_id)

    def probe(self) -> Readiness:
        """``GET /v3/scopes`` with the API key: ready when the key may send (``mail.send``)."""
        try:
            response = self._sdk.client.scopes.get()
        except HTTPError as exc:
            status = int(exc.status_code)
            detail = _error_detail(exc.body)
            if status in (401, 403):
                return Readiness.not_ready(f"SendGrid refused the API key ({status}): revoked or wrong")
            if status in (404, 405):
                return Readiness.not_ready(
                    f"SendGrid answered {status} at {self.options.base_url}: is base_url right?"
                )
            return Readiness.not_ready(f"SendGrid answered {status}" + (f": {detail}" if detail else ""))
        except (OSError, http.client.HTTPException) as exc:
            return Readiness.not_ready(f"cannot reach SendGrid at {self.options.base_url}: {exc}")
        try:
            scopes = json.loads(response.body or b"{}").get("scopes") or []
        except (ValueError, AttributeError):
            return Readiness.not_ready("SendGrid's /v3/scopes answer was not the expected JSON")
        if SEND_SCOPE not in scopes:
            return Readiness.not_ready(
                f"the API key lacks the {SEND_SCOPE} scope ({len(scopes)} other scopes)"
            )
        return Readiness.ok(f"the API key may send ({SEND_SCOPE})")


def _results_for_error(recipients: Sequence[Recipient], exc: ChannelError) -> list[Result]:
    if isinstance(exc, PermanentError):
        return [Result.failed(r.delivery_id, exc.message) for r in recipients]
    retry_after = exc.retry_after if isinstance(exc, TransientError) else None
    return [Result.retry(r.delivery_id, exc.message, retry_after) for r in recipients]


def _map_http_error(exc: HTTPError) -> ChannelError:
    status = int(exc.status_code)
    headers: Mapping[str, str] = exc.headers or {}
    detail = _error_detail(exc.body)
    text = f"sendgrid {status}" + (f": {detail}" if detail else "")
    if status in (401, 403):
        return ProviderUnavailable(f"{text} (check the API key and its mail.send scope)")
    if status == 429:
        return TransientError(text, retry_after=_retry_after(headers))
    if status >= 500:
        return TransientError(text, retry_after=_retry_after(headers))
    if status in (404, 405):
        return ProviderUnavailable(f"{text} (is base_url right?)")
    indices = _rejected_personalizations(exc.body) if status == 400 else None
    if indices:
        return RecipientsRejected(text, indices)
    return PermanentError(text)


class RecipientsRejected(PermanentError):
    """A 400 whose every error names an address in a personalization: only those recipients are bad."""

    def __init__(self, message: str, indices: set[int]) -> None:
        super().__init__(message)
        self.indices = indices


_PERSONALIZATION_ADDRESS = re.compile(r"^personalizations\.(\d+)\.(?:to|cc|bcc)\.\d+\.email$")


def _rejected_personalizations(body: Any) -> set[int] | None:
    """Indices of the personalizations SendGrid blamed, if every error blames an address."""
    try:
        errors = json.loads(body).get("errors")
    except (ValueError, TypeError, AttributeError):
        return None
    if not isinstance(errors, list) or not errors:
        return None
    indices = set()
    for error in errors:
        match = _PERSONALIZATION_ADDRESS.match(str(error.get("field") if isinstance(error, dict) else ""))
        if match is None:
            return None
        indices.add(int(match.group(1)))
    return indices


def _error_detail(body: Any) -> str:
    """``field: message`` for each of SendGrid's errors, or the raw body."""
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    try:
        parsed = json.loads(body) if body else None
    except ValueError:
        return str(body)[:500]
    errors = parsed.get("errors") if isinstance(parsed, dict) else None
    if not isinstance(errors, list):
        return str(body)[:500]
    parts = []
    for error in errors:
        if not isinstance(error, dict):
            continue
        field, message = error.get("field"), error.get("message", "")
        parts.append(f"{field}: {message}" if field else str(message))
    return "; ".join(parts)


def _retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait, from Retry-After or else X-RateLimit-Reset (epoch seconds)."""
    hint = retry_after(headers)
    return hint if hint is not None else seconds_until_epoch(headers.get("X-RateLimit-Reset"))
