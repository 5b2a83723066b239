"""SendGrid v3 Mail Send emulator: ``POST /v3/mail/send``."""

from __future__ import annotations

import json
import re
import secrets
import time
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from tests.emulators.server import DownMode, Emulator, seconds_header

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")

MAX_PERSONALIZATIONS = 1000
MAX_RECIPIENTS = 1000
MAX_PAYLOAD_BYTES = 30 * 1024 * 1024
DEFAULT_SCOPES = ("mail.send", "alerts.read", "stats.read")

_MESSAGES = {
    401: "The provided authorization grant is invalid, expired, or revoked",
    403: "access forbidden",
    404: "not found",
    413: "Payload Too Large",
    429: "too many requests",
    500: "internal error",
    502: "bad gateway",
    503: "service unavailable",
    504: "gateway timeout",
}


def sendgrid_errors(*errors: tuple[str, str | None]) -> dict[str, Any]:
    """SendGrid's error body: ``{"errors": [{"message", "field", "help"}]}``."""
    return {"errors": [{"message": message, "field": field, "help": None} for message, field in errors]}


class SendGridEmulator(Emulator):
    """Accepts mail like SendGrid does and records one message per personalization recipient.

    Each ``received`` item: ``email``, ``name``, ``subject``, ``custom_args`` (request level merged with
    the personalization's), ``text``, ``html``, ``from``, ``categories``, ``message_id`` (the request's
    X-Message-Id) and ``personalization`` (its index in the request).
    """

    name = "sendgrid"

    def __init__(
        self,
        *,
        api_key: str = "SG.test-key",
        max_payload_bytes: int = MAX_PAYLOAD_BYTES,
        rate_limit: int = 600,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.api_key = api_key
        self.max_payload_bytes = max_payload_bytes
        self.rate_limit = rate_limit
        """Reported in X-RateLimit-Limit on 429s."""
        self.requests_log: list[dict[str, Any]] = []
        """One item per accepted request: ``message_id``, ``personalizations``, ``recipients``."""
        self.scopes: list[str] = list(DEFAULT_SCOPES)
        """What ``GET /v3/scopes`` lists for the key (a key that can send has ``mail.send``)."""

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/v3/mail/send", self.provider_route(self.mail_send))
        app.router.add_get("/v3/scopes", self.provider_route(self.scopes_of_key))

    def account_of(self, request: web.Request) -> str | None:
        return request.headers.get("Authorization")

    async def request_key(self, request: web.Request) -> str | None:
        """The ``tocsin_delivery_id`` of each personalization, space separated."""
        try:
            body = await request.json()
            ids = [
                str((p.get("custom_args") or {}).get("tocsin_delivery_id", ""))
                for p in body["personalizations"]
            ]
        except (ValueError, KeyError, TypeError, AttributeError):
            return None
        return " ".join(i for i in ids if i) or None

    def configure(self, options: Mapping[str, Any]) -> None:
        options = dict(options)
        if "api_key" in options:
            self.api_key = str(options.pop("api_key"))
        if "max_payload_bytes" in options:
            self.max_payload_bytes = int(options.pop("max_payload_bytes"))
        if "scopes" in options:
            self.scopes = [str(scope) for scope in options.pop("scopes")]
        super().configure(options)

    def config_json(self) -> dict[str, Any]:
        return {"api_key": self.api_key, "max_payload_bytes": self.max_payload_bytes, "scopes": self.scopes}

    def revoke_key(self) -> None:
        """The account revokes its API key: every call with it gets 401 from now on."""
        self.api_key = "SG.revoked-" + secrets.token_urlsafe(8)

    def reset(self) -> None:
        super().reset()
        self.requests_log.clear()

    # ------------------------------------------------------------------ errors

    def error_response(self, status: int, retry_after: float | None) -> web.Response:
        headers: dict[str, str] = {}
        if status == 429:
            wait = 1.0 if retry_after is None else retry_after
            headers = {
                "Retry-After": seconds_header(wait),
                "X-RateLimit-Limit": str(self.rate_limit),
                "X-RateLimit-Remaining": "0",
                "X-RateLimit-Reset": str(int(time.time() + wait)),
            }
        elif retry_after is not None:
            headers["Retry-After"] = seconds_header(retry_after)
        message = _MESSAGES.get(status, "error")
        return web.json_response(sendgrid_errors((message, None)), status=status, headers=headers)

    def unavailable_response(self, mode: DownMode) -> web.Response:
        return self.error_response(401 if mode == "auth" else 503, None)

    # ------------------------------------------------------------------ readiness probe

    async def scopes_of_key(self, request: web.Request) -> web.Response:
        """``GET /v3/scopes``: the scopes of the API key making the call (401 for a wrong or revoked key)."""
        if request.headers.get("Authorization") != f"Bearer {self.api_key}":
            self.reject(401, "bad api key")
            return self.error_response(401, None)
        return web.json_response({"scopes": self.scopes})

    # ------------------------------------------------------------------ mail send

    async def mail_send(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {self.api_key}":
            self.reject(401, "bad api key")
            return self.error_response(401, None)
        raw = await request.read()
        if len(raw) > self.max_payload_bytes:
            self.reject(413, "payload too large", size=len(raw))
            return self.error_response(413, None)
        try:
            body = json.loads(raw)
        except ValueError:
            self.reject(400, "invalid JSON")
            return web.json_response(sendgrid_errors(("Bad Request", None)), status=400)
        errors = validate_mail(body)
        if errors:
            self.reject(400, "; ".join(f"{field}: {message}" for message, field in errors))
            return web.json_response(sendgrid_errors(*errors), status=400)

        message_id = secrets.token_urlsafe(16)[:22]
        text = html = None
        for block in body.get("content") or []:
            if block.get("type") == "text/plain" and text is None:
                text = block.get("value")
            elif block.get("type") == "text/html" and html is None:
                html = block.get("value")
        top_args = body.get("custom_args") or {}
        recipients = 0
        for index, personalization in enumerate(body["personalizations"]):
            args = {**top_args, **(personalization.get("custom_args") or {})}
            subject = personalization.get("subject") or body.get("subject")
            own_text, own_html = _substituted(text, html, personalization.get("substitutions") or {})
            for kind in ("to", "cc", "bcc"):
                for address in personalization.get(kind) or []:
                    recipients += 1
                    self.accept(
                        {
                            "email": address["email"],
                            "name": address.get("name"),
                            "kind": kind,
                            "subject": subject,
                            "custom_args": args,
                            "text": own_text,
                            "html": own_html,
                            "from": body["from"],
                            "reply_to": body.get("reply_to"),
                            "categories": body.get("categories") or [],
                            "message_id": message_id,
                            "personalization": index,
                            "headers": personalization.get("headers") or {},
                        }
                    )
        if self.record:
            self.requests_log.append(
                {
                    "message_id": message_id,
                    "personalizations": len(body["personalizations"]),
                    "recipients": recipients,
                }
            )
        return web.Response(status=202, headers={"X-Message-Id": message_id})


def _substituted(
    text: str | None, html: str | None, substitutions: dict[str, str]
) -> tuple[str | None, str | None]:
    """Legacy substitution tags, applied per personalization to the text and HTML content, as SendGrid
    does for mail sent without a dynamic template."""
    for tag, value in substitutions.items():
        text = None if text is None else text.replace(tag, value)
        html = None if html is None else html.replace(tag, value)
    return text, html


def validate_mail(body: Any) -> list[tuple[str, str | None]]:
    """SendGrid-like validation. Returns ``(message, field)`` pairs, empty when the body is fine."""
    errors: list[tuple[str, str | None]] = []
    if not isinstance(body, dict):
        return [("Bad Request", None)]
    sender = body.get("from")
    if not isinstance(sender, dict) or not sender.get("email"):
        errors.append(
            (
                "The from object must be provided for every email send. It is an object that requires "
                "the email parameter, but may also contain a name parameter.",
                "from",
            )
        )
    elif not _EMAIL.match(str(sender["email"])):
        errors.append(("The from email does not contain a valid address.", "from.email"))

    personalizations = body.get("personalizations")
    if not isinstance(personalizations, list) or not personalizations:
        errors.append(
            (
                "The personalizations field is required and must have at least one personalization.",
                "personalizations",
            )
        )
        personalizations = []
    elif len(personalizations) > MAX_PERSONALIZATIONS:
        errors.append(
            (
                f"The personalizations field cannot have more than {MAX_PERSONALIZATIONS} objects.",
                "personalizations",
            )
        )
    total = 0
    every_has_subject = True
    for i, personalization in enumerate(personalizations):
        if not isinstance(personalization, dict):
            errors.append(("Invalid type. Expected: object.", f"personalizations.{i}"))
            continue
        to = personalization.get("to")
        if not isinstance(to, list) or not to:
            errors.append(
                (
                    "The to array is required for all personalization objects, and must have at least "
                    "one email object with a valid email address.",
                    f"personalizations.{i}.to",
                )
            )
        for kind in ("to", "cc", "bcc"):
            for j, address in enumerate(personalization.get(kind) or []):
                total += 1
                email = address.get("email") if isinstance(address, dict) else None
                if not email or not _EMAIL.match(str(email)):
                    errors.append(
                        ("Does not contain a valid address.", f"personalizations.{i}.{kind}.{j}.email")
                    )
        if not personalization.get("subject"):
            every_has_subject = False
        for field in ("custom_args", "substitutions"):
            for key, value in (personalization.get(field) or {}).items():
                if not isinstance(value, str):
                    errors.append(
                        (
                            "Invalid type. Expected: string, given: " + type(value).__name__ + ".",
                            f"personalizations.{i}.{field}.{key}",
                        )
                    )
    if total > MAX_RECIPIENTS:
        errors.append(
            (
                f"The total number of recipients must be less than {MAX_RECIPIENTS}. This includes all "
                "recipients defined within the to, cc, and bcc parameters, across each object that you "
                "include in the personalizations array.",
                "personalizations",
            )
        )
    if not body.get("subject") and not (personalizations and every_has_subject):
        errors.append(
            (
                "The subject is required. You can get around this requirement if you use a template with "
                "a subject defined or if every personalization has a subject defined.",
                "subject",
            )
        )
    content = body.get("content")
    if not isinstance(content, list) or not content:
        errors.append(
            (
                "Unless a valid template_id is provided, the content parameter is required. There must be "
                "at least one defined content block.",
                "content",
            )
        )
    else:
        types = [block.get("type") if isinstance(block, dict) else None for block in content]
        for k, block in enumerate(content):
            if not isinstance(block, dict) or not block.get("type") or not block.get("value"):
                errors.append(
                    (
                        "The content value must be a string at least one character in length.",
                        f"content.{k}.value",
                    )
                )
        if "text/plain" in types and types.index("text/plain") != 0:
            errors.append(
                (
                    "If present, text/plain and text/html may only be provided once, and text/plain must "
                    "be first, followed by text/html, followed by any other content.",
                    "content",
                )
            )
    return errors

