"""Twilio Programmable Messaging emulator: ``POST /2010-04-01/Accounts/{sid}/Messages.json``."""

from __future__ import annotations

import base64
import math
import re
import secrets
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from email.utils import formatdate
from typing import Any

from aiohttp import web

from tests.emulators.server import DownMode, Emulator, seconds_header

E164 = re.compile(r"^\+[1-9]\d{6,14}$")

_ERRORS: dict[int, tuple[int, str]] = {
    # HTTP status -> (Twilio error code, message) for injected failures
    401: (20003, "Authenticate"),
    404: (20404, "The requested resource was not found"),
    429: (20429, "Too Many Requests"),
    500: (20500, "Internal Server Error"),
    502: (20500, "Bad Gateway"),
    503: (20503, "Service Unavailable"),
    504: (20500, "Gateway Timeout"),
}


def twilio_error(code: int, message: str, status: int) -> dict[str, Any]:
    """Twilio's legacy REST error body (no ``type``/``title``, so the SDK raises TwilioRestException)."""
    return {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }


class TwilioEmulator(Emulator):
    """Queues SMS like Twilio does. Each ``received`` item: ``sid``, ``to``, ``from``,
    ``messaging_service_sid``, ``body``, ``status_callback``, ``account_sid``.

    ``stop_numbers`` answer 21610 (recipient replied STOP), ``landlines`` answer 21614.

    ``sender_mps`` (off by default; also ``--sender-mps`` and the config key ``sender_mps``, ``null`` or
    ``0`` turns it off): each sender (``From`` number, or ``MessagingServiceSid`` when there is no
    ``From``) may create at most that many messages in any sliding one-second window. A message over it is
    refused with 429, Twilio's error body (code 20429) and ``Retry-After`` (whole seconds until the oldest
    message of the window leaves it), counted in ``stats["rejected"]["429"]``; it creates nothing and does
    not count against the window. Real Twilio *queues* messages over a sender's MPS rather than refusing
    them (and answers 20429 for too many concurrent API requests), so what matters for a client is the
    same: never more than MPS per second per sender. A sliding window is what "N messages per second"
    means, and it tolerates the few milliseconds of network jitter a correctly paced client cannot
    avoid, where a token bucket of burst 1 would refuse a message arriving a microsecond before its slot.
    """

    name = "twilio"

    def __init__(
        self,
        *,
        account_sid: str = "AC" + "0" * 32,
        auth_token: str = "test-auth-token",
        stop_numbers: Iterable[str] = (),
        landlines: Iterable[str] = (),
        sender_mps: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.stop_numbers = set(stop_numbers)
        self.landlines = set(landlines)
        self.sender_mps = _mps(sender_mps)
        self._clock = clock
        self._windows: dict[str, deque[float]] = {}
        """Per sender: when each message of the last second was created (clock seconds)."""
        self.account_status = "active"
        """What fetching the account answers: ``active``, ``suspended`` or ``closed``."""
        self.phone_numbers: set[str] | None = None
        """The account's own numbers (``IncomingPhoneNumbers``); None: every E.164 number is one of them."""

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post(
            "/2010-04-01/Accounts/{sid}/Messages.json", self.provider_route(self.create_message)
        )
        app.router.add_get("/2010-04-01/Accounts/{sid}.json", self.provider_route(self.fetch_account))
        app.router.add_get(
            "/2010-04-01/Accounts/{sid}/IncomingPhoneNumbers.json", self.provider_route(self.list_numbers)
        )

    async def request_key(self, request: web.Request) -> str | None:
        """The ``To`` number of a message request."""
        form = await request.post()
        to = form.get("To")
        return None if to is None else str(to)

    def account_of(self, request: web.Request) -> str | None:
        return request.match_info.get("sid")

    def configure(self, options: Mapping[str, Any]) -> None:
        options = dict(options)
        for key in ("account_sid", "auth_token"):
            if key in options:
                setattr(self, key, str(options.pop(key)))
        if "stop_numbers" in options:
            self.stop_numbers = set(options.pop("stop_numbers"))
        if "landlines" in options:
            self.landlines = set(options.pop("landlines"))
        if "sender_mps" in options:
            self.sender_mps = _mps(options.pop("sender_mps"))
            self._windows.clear()
        if "account_status" in options:
            self.account_status = str(options.pop("account_status"))
        if "phone_numbers" in options:
            numbers = options.pop("phone_numbers")
            self.phone_numbers = None if numbers is None else set(numbers)
        super().configure(options)

    def config_json(self) -> dict[str, Any]:
        return {
            "account_sid": self.account_sid,
            "auth_token": self.auth_token,
            "stop_numbers": sorted(self.stop_numbers),
            "landlines": sorted(self.landlines),
            "sender_mps": self.sender_mps,
        }

    def reset(self) -> None:
        """Also forgets the per-sender windows (``sender_mps`` itself stays)."""
        super().reset()
        self._windows.clear()

    def _over_sender_limit(self, sender: str) -> float | None:
        """None when ``sender`` may create one more message now (and note it), else the seconds until
        the oldest message of its window leaves it."""
        if self.sender_mps is None:
            return None
        now = self._clock()
        window = self._windows.setdefault(sender, deque())
        while window and window[0] <= now - 1.0:
            window.popleft()
        if len(window) + 1 > self.sender_mps:
            return window[0] + 1.0 - now
        window.append(now)
        return None

    def error_response(self, status: int, retry_after: float | None) -> web.Response:
        code, message = _ERRORS.get(status, (20500, "Error"))
        headers: dict[str, str] = {}
        if status == 429 or retry_after is not None:
            headers["Retry-After"] = seconds_header(1.0 if retry_after is None else retry_after)
        return web.json_response(twilio_error(code, message, status), status=status, headers=headers)

    def unavailable_response(self, mode: DownMode) -> web.Response:
        return self.error_response(401 if mode == "auth" else 503, None)

    def _authorized(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return False
        try:
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except ValueError:
            return False
        return (
            user == self.account_sid
            and password == self.auth_token
            and request.match_info["sid"] == self.account_sid
        )

    def _fail(self, code: int, message: str, status: int = 400) -> web.Response:
        self.reject(status, message, code=code)
        return web.json_response(twilio_error(code, message, status), status=status)

    # ------------------------------------------------------------------ readiness probe

    def _authenticated(self, request: web.Request) -> bool:
        """Credentials right, whichever account the path names."""
        header = request.headers.get("Authorization", "")
        try:
            user, _, password = base64.b64decode(header.removeprefix("Basic ")).decode().partition(":")
        except ValueError:
            return False
        return header.startswith("Basic ") and (user, password) == (self.account_sid, self.auth_token)

    def _account_refusal(self, request: web.Request) -> web.Response | None:
        """401 (code 20003) for wrong credentials; 404 (20404) for an account these credentials do not
        own, as Twilio answers."""
        if not self._authenticated(request):
            self.reject(401, "bad credentials", code=20003)
            return web.json_response(twilio_error(20003, "Authenticate", 401), status=401)
        if request.match_info["sid"] != self.account_sid:
            self.reject(404, "another account", code=20404)
            message = f"The requested resource {request.path} was not found"
            return web.json_response(twilio_error(20404, message, 404), status=404)
        return None

    async def fetch_account(self, request: web.Request) -> web.Response:
        """``GET /2010-04-01/Accounts/{sid}.json``: the account, with its ``status``."""
        refused = self._account_refusal(request)
        if refused is not None:
            return refused
        now = formatdate(usegmt=True)
        return web.json_response(
            {
                "sid": self.account_sid,
                "friendly_name": "Tocsin test account",
                "status": self.account_status,
                "type": "Full",
                "date_created": now,
                "date_updated": now,
                "owner_account_sid": self.account_sid,
                "auth_token": "<redacted>",
                "uri": f"/2010-04-01/Accounts/{self.account_sid}.json",
                "subresource_uris": {},
            }
        )

    async def list_numbers(self, request: web.Request) -> web.Response:
        """``GET …/IncomingPhoneNumbers.json?PhoneNumber=…``: the account's numbers, filtered."""
        refused = self._account_refusal(request)
        if refused is not None:
            return refused
        wanted = request.query.get("PhoneNumber")
        owned = [wanted] if wanted and E164.match(wanted) else []
        if self.phone_numbers is not None:
            owned = [n for n in (owned if wanted else sorted(self.phone_numbers)) if n in self.phone_numbers]
        uri = f"/2010-04-01/Accounts/{self.account_sid}/IncomingPhoneNumbers.json"
        numbers = [
            {
                "sid": "PN" + secrets.token_hex(16),
                "account_sid": self.account_sid,
                "phone_number": number,
                "friendly_name": number,
                "capabilities": {"sms": True, "mms": False, "voice": True},
                "uri": f"{uri[:-5]}/PN.json",
            }
            for number in owned
        ]
        return web.json_response(
            {
                "incoming_phone_numbers": numbers,
                "end": max(0, len(numbers) - 1),
                "first_page_uri": uri,
                "next_page_uri": None,
                "page": 0,
                "page_size": 50,
                "previous_page_uri": None,
                "start": 0,
                "uri": uri,
            }
        )

    # ------------------------------------------------------------------ messages

    async def create_message(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            self.reject(401, "bad credentials", code=20003)
            return web.json_response(twilio_error(20003, "Authenticate", 401), status=401)
        form = await request.post()
        to = str(form.get("To", ""))
        sender = form.get("From")
        service = form.get("MessagingServiceSid")
        body = str(form.get("Body", ""))
        if not to:
            return self._fail(21604, "A 'To' phone number is required.")
        if not sender and not service:
            return self._fail(21603, "A 'From' phone number is required.")
        if not body and not form.get("MediaUrl"):
            return self._fail(21602, "Message body is required.")
        if not E164.match(to):
            return self._fail(21211, f"The 'To' number {to} is not a valid phone number.")
        if to in self.stop_numbers:
            return self._fail(21610, "Attempt to send to unsubscribed recipient")
        if to in self.landlines:
            return self._fail(21614, f"'To' number {to} is not a valid mobile number")
        wait = self._over_sender_limit(str(sender or service))
        if wait is not None:
            self.reject(429, f"sender {sender or service} over {self.sender_mps:g} messages/s", code=20429)
            return web.json_response(
                twilio_error(20429, "Too Many Requests", 429),
                status=429,
                headers={"Retry-After": str(max(1, math.ceil(wait)))},
            )

        sid = "SM" + secrets.token_hex(16)
        now = formatdate(usegmt=True)
        uri = f"/2010-04-01/Accounts/{self.account_sid}/Messages/{sid}.json"
        segments = 1 if len(body) <= 160 else -(-len(body) // 153)
        message = {
            "account_sid": self.account_sid,
            "api_version": "2010-04-01",
            "body": body,
            "date_created": now,
            "date_sent": None,
            "date_updated": now,
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            "from": None if sender is None else str(sender),
            "messaging_service_sid": None if service is None else str(service),
            "num_media": "0",
            "num_segments": str(segments),
            "price": None,
            "price_unit": "USD",
            "sid": sid,
            "status": "accepted" if service else "queued",
            "subresource_uris": {"media": uri.replace(".json", "/Media.json")},
            "to": to,
            "uri": uri,
        }
        status_callback = form.get("StatusCallback")
        self.accept(
            {
                "sid": sid,
                "to": to,
                "from": message["from"],
                "messaging_service_sid": message["messaging_service_sid"],
                "body": body,
                "status_callback": None if status_callback is None else str(status_callback),
                "account_sid": self.account_sid,
            }
        )
        return web.json_response(message, status=201)


def _mps(value: Any) -> float | None:
    if value in (None, 0, False, ""):
        return None
    mps = float(value)
    if not math.isfinite(mps) or mps < 0:
        raise ValueError(f"sender_mps must be a number > 0 (or null/0 for off), not {value!r}")
    return mps
