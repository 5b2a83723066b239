"""Twilio SMS adapter (Programmable Messaging through the official ``twilio`` SDK).

Twilio has no batch send: every recipient is one ``POST /2010-04-01/Accounts/{sid}/Messages.json``,
and ``send_stream`` hands over each recipient's result as soon as its request completes. Given the
dispatcher's ``Pace`` (``channels.base``), up to ``in_flight`` requests are on the wire at once, each one
let go by the pace (the account's shared rate limit and Retry-After pause), so a request that hangs for
seconds holds back only itself; without one, the requests go one after another. How the answers map:

* 201 (``SM…`` sid) -> ``sent``, the sid as provider message id;
* 400 code 21610 (the recipient replied STOP) -> ``opted_out``: the dispatcher suppresses the address;
* any other 4xx about the recipient (21211 invalid To, 21614 not a mobile, 21408 region not enabled, ...)
  -> ``failed`` with ``"twilio <code>: <message>"``;
* 5xx, timeouts, a connection dropped after the request was sent -> ``retry`` for **that recipient
  only**: the next recipient is sent as if nothing happened (the dispatcher stops the call when such
  failures come in a run);
* 429 / code 20429 -> ``retry`` with ``retry_after`` for that recipient. The throttle is the account's:
  the dispatcher pauses the whole account, for every worker. Paced, the call goes on once the pace lets
  it; unpaced, it stops, and the rest are ``untried`` with the same ``retry_after``;
* Twilio cannot be reached at all (connection refused, connect timeout) -> that recipient and the rest
  are ``untried``: no request reached Twilio, so no attempt is counted;
* 401, 403 with an account code (20xxx), 404, a bad From / Messaging Service (21212, 21603, 21701, 21705)
  -> ``ProviderUnavailable`` for the recipients still without a result (the dispatcher fails over);
* 21602 / 21617 / 21619 (no body, body over 1,600 characters) -> ``PermanentError``: the message itself
  is bad, whoever it goes to.

``send`` returns the same results as one list (``channels.base.collected``).

Twilio has no idempotency key for messages: a timeout after Twilio accepted one becomes a duplicate when
it is retried. That is the at-least-once price; each request carries the delivery id in its status
callback URL (``tocsin_delivery_id``), so the callbacks of both copies name the same ledger row.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any, ClassVar

import requests
import requests.adapters
import urllib3.exceptions
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from twilio.base.exceptions import TwilioException, TwilioRestException, TwilioServiceException
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response as TwilioResponse
from twilio.rest import Client

from channels._http.hints import retry_after
from channels.base import (
    AdapterBase,
    Capabilities,
    ChannelError,
    ChannelKind,
    LengthRule,
    Message,
    Pace,
    PermanentError,
    ProviderUnavailable,
    Recipient,
    Result,
    collected,
)
from channels.readiness import Readiness

TWILIO_API = "https://api.twilio.com"
MAX_BATCH = 100

E164 = re.compile(r"^\+[1-9]\d{6,14}$")
ACCOUNT_SID = re.compile(r"^AC[0-9a-fA-F]{32}$")
MESSAGING_SERVICE_SID = re.compile(r"^MG[0-9a-fA-F]{32}$")

OPTED_OUT_CODE = 21610
"""The recipient replied STOP to this sender; Twilio refuses every message to them until START."""

BAD_MESSAGE_CODES = frozenset({21602, 21617, 21619})
"""The request's body is wrong whoever it goes to (missing, over 1,600 characters)."""

BAD_SENDER_CODES = frozenset({21212, 21603, 21701, 21705})
"""The configured From / Messaging Service is wrong whoever it goes to: this provider cannot carry."""


CALLBACK_DELIVERY_PARAM = "tocsin_delivery_id"


class TwilioOptions(BaseModel):
    """Settings of the Twilio adapter. Exactly one of ``from_number`` and ``messaging_service_sid``."""

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    account_sid: str
    auth_token: SecretStr
    from_number: str | None = None
    """An E.164 number of the account (``+15551234567``)."""
    messaging_service_sid: str | None = None
    """``MG…``: let a Messaging Service pick the sender from its pool (and queue beyond its throughput)."""
    base_url: str = TWILIO_API
    """API host; an emulator URL in tests."""
    status_callback_url: str | None = None
    """Sent as ``StatusCallback``: Twilio POSTs each message's status changes there."""
    timeout: float = Field(default=10.0, gt=0)
    """Seconds to wait for Twilio (connect, and each socket read) on every call."""
    in_flight: int = Field(default=8, ge=1, le=32)
    """Requests on the wire at once, per worker process (the rate limit still decides how fast they go)."""
    max_segments: int | None = Field(default=None, ge=1, le=10)
    """Informational: the segment budget texts are shortened to before they reach the adapter."""

    @field_validator("account_sid")
    @classmethod
    def _account_sid(cls, value: str) -> str:
        if not ACCOUNT_SID.match(value):
            raise ValueError("account_sid must be 'AC' followed by 32 hex digits")
        return value

    @field_validator("from_number")
    @classmethod
    def _from_number(cls, value: str | None) -> str | None:
        if value is not None and not E164.match(value):
            raise ValueError(f"from_number must be an E.164 number like +15551234567, not {value!r}")
        return value

    @field_validator("messaging_service_sid")
    @classmethod
    def _service_sid(cls, value: str | None) -> str | None:
        if value is not None and not MESSAGING_SERVICE_SID.match(value):
            raise ValueError("messaging_service_sid must be 'MG' followed by 32 hex digits")
        return value

    @field_validator("base_url", "status_callback_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value

    @field_validator("base_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @model_validator(mode="after")
    def _one_sender(self) -> TwilioOptions:
        if (self.from_number is None) == (self.messaging_service_sid is None):
            raise ValueError("give exactly one of from_number and messaging_service_sid")
        return self


class RedirectingHttpClient(TwilioHttpClient):  # type: ignore[misc]  # the SDK ships no type hints
    """The SDK's own HTTP client, sending what it addresses to ``https://api.twilio.com`` to ``base_url``.

    It also keeps the last response of each thread, because ``TwilioRestException`` drops the headers
    (``Retry-After``). The SDK's retries stay off: with ``max_retries=None`` requests' adapters make one
    attempt, and retry policy lives in the dispatcher alone.
    """

    def __init__(self, base_url: str = TWILIO_API, timeout: float = 10.0, connections: int = 10) -> None:
        super().__init__(pool_connections=True, timeout=timeout, max_retries=None)
        self.base_url = base_url.rstrip("/")
        self._local = threading.local()
        # One kept connection per request in flight, over https and (an emulator) http; no retries.
        for scheme in ("https://", "http://"):
            self.session.mount(
                scheme, requests.adapters.HTTPAdapter(pool_maxsize=max(connections, 1), max_retries=0)
            )

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> TwilioResponse:
        if url.startswith(TWILIO_API):
            url = self.base_url + url[len(TWILIO_API) :]
        self._local.response = None
        response: TwilioResponse = super().request(method, url, *args, **kwargs)
        self._local.response = response
        return response

    @property
    def last_response(self) -> TwilioResponse | None:
        """This thread's last response (None if its last request got none)."""
        response: TwilioResponse | None = getattr(self._local, "response", None)
        return response

    def close(self) -> None:
        if self.session is not None:
            self.session.close()


class TwilioAdapter(AdapterBase):
    """SMS through Twilio. See the module docstring."""

    name: ClassVar[str] = "twilio"
    capabilities: ClassVar[Capabilities] = Capabilities(
        kinds=frozenset({ChannelKind.SMS}),
        max_batch=MAX_BATCH,
        length_rule=LengthRule.SMS_SEGMENTS,
        rate_limit_per_second=1.0,  # a long code's default; short codes and 10DLC go faster
        paced=True,
    )
    Options: ClassVar[type[BaseModel]] = TwilioOptions

    def __init__(self, options: TwilioOptions) -> None:
        self.options = options
        self._http = RedirectingHttpClient(options.base_url, options.timeout, options.in_flight)
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()
        self._client = Client(
            options.account_sid, options.auth_token.get_secret_value(), http_client=self._http
        )
        # TWILIO_EDGE / TWILIO_REGION in the environment would make the SDK address
        # api.<edge>.<region>.twilio.com, which base_url would not redirect. Hosts come from options only.
        self._client.edge = None
        self._client.region = None
        # The SDK builds its API classes on first use (~100 ms): do it now, not while a rate-limit token
        # is being spent, or the first message of a worker lands late and bunches with the next one.
        _ = self._client.messages

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        self._http.close()

    def send(self, message: Message, recipients: Sequence[Recipient]) -> list[Result]:
        """One message per recipient, in order; see the module docstring for what each answer becomes."""
        return collected(self.send_stream(message, recipients), recipients)

    def send_stream(
        self, message: Message, recipients: Sequence[Recipient], pace: Pace | None = None
    ) -> Iterator[list[Result]]:
        """Each recipient's result as soon as its request completes. Closing the stream stops it: no
        further request is made. With ``pace``, several at once (see the module docstring)."""
        if message.kind is not ChannelKind.SMS:
            raise PermanentError(f"twilio carries sms, not {message.kind}")
        if pace is not None:
            yield from self._paced(message, recipients, pace)
            return
        for index, recipient in enumerate(recipients):
            try:
                yield [self._send_one(message, recipient)]
            except _Throttled as exc:
                yield [Result.retry(recipient.delivery_id, exc.text, exc.retry_after)]
                why = f"not tried: twilio asked the account to wait ({exc.text})"
                yield [Result.untried(r.delivery_id, why, exc.retry_after) for r in recipients[index + 1 :]]
                return
            except _Unreachable as exc:
                yield [Result.untried(r.delivery_id, exc.text) for r in recipients[index:]]
                return

    def _paced(self, message: Message, recipients: Sequence[Recipient], pace: Pace) -> Iterator[list[Result]]:
        """Up to ``in_flight`` requests at once, each let go by ``pace``. Whatever stops the call (the
        pace, Twilio unreachable, an error about every recipient), the requests already sent are waited
        for and their results handed over; an error about every recipient is raised after them."""
        todo = deque(recipients)
        running: dict[Future[Result], Recipient] = {}
        stop: _Stop | None = None
        error: ChannelError | None = None
        while running or (todo and stop is None):
            delay = 0.0
            while todo and stop is None and len(running) < self.options.in_flight:
                if any(future.done() for future in running):
                    break  # hand over what was answered first: a 429 among it pauses the next request
                go = pace()
                if go is None:
                    stop = _Stop()
                elif go > 0:
                    delay = go
                    break
                else:
                    recipient = todo.popleft()
                    running[self._executor().submit(self._send_one, message, recipient)] = recipient
            if not running:
                if delay > 0:
                    time.sleep(delay)
                    yield []  # nothing yet: the reader may keep its claim meanwhile
                continue
            done, _ = wait(running, timeout=delay or None, return_when=FIRST_COMPLETED)
            group: list[Result] = []
            for future in done:
                recipient = running.pop(future)
                try:
                    group.append(future.result())
                except _Throttled as exc:  # the pace holds every further request for the account
                    group.append(Result.retry(recipient.delivery_id, exc.text, exc.retry_after))
                except _Unreachable as exc:
                    group.append(Result.untried(recipient.delivery_id, exc.text))
                    stop = stop or _Stop(exc.text)
                except ChannelError as exc:
                    error = error or exc
                    stop = stop or _Stop()
            yield group
        if error is not None:
            raise error
        if stop is not None and stop.why is not None:
            yield [Result.untried(r.delivery_id, stop.why) for r in todo]

    def _executor(self) -> ThreadPoolExecutor:
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.options.in_flight, thread_name_prefix="twilio")
            return self._pool

    def message_params(self, message: Message, recipient: Recipient) -> dict[str, Any]:
        """Keyword arguments of ``messages.create`` for one recipient."""
        options = self.options
        params: dict[str, Any] = {"to": recipient.address, "body": message.text}
        if options.messaging_service_sid is not None:
            params["messaging_service_sid"] = options.messaging_service_sid
        else:
            params["from_"] = options.from_number
        if options.status_callback_url is not None:
            # The delivery id rides in the callback URL (signed with it), so the callback finds its
            # ledger row by primary key.
            separator = "&" if "?" in options.status_callback_url else "?"
            params["status_callback"] = (
                f"{options.status_callback_url}{separator}{CALLBACK_DELIVERY_PARAM}={recipient.delivery_id}"
            )
        return params

    def _send_one(self, message: Message, recipient: Recipient) -> Result:
        """One API call: the recipient's own result. Raises ``_Throttled`` (the account must wait),
        ``_Unreachable`` (no request reached Twilio) or a ChannelError about every recipient."""
        try:
            created = self._client.messages.create(**self.message_params(message, recipient))
        except (TwilioRestException, TwilioServiceException) as exc:
            return self._map_error(recipient, exc)
        except requests.RequestException as exc:
            text = f"twilio: {type(exc).__name__}: {exc}"
            if not _reached(exc):
                raise _Unreachable(f"not tried: {text}") from None
            # A read timeout or a connection dropped once the request was out: Twilio may have accepted
            # the message (a "ghost"), and the retry may then be a duplicate.
            return Result.retry(recipient.delivery_id, text)
        except TwilioException as exc:
            return Result.retry(recipient.delivery_id, f"twilio: {type(exc).__name__}: {exc}")
        sid = getattr(created, "sid", None)
        return Result.sent(recipient.delivery_id, None if sid is None else str(sid))

    def _map_error(self, recipient: Recipient, exc: TwilioException) -> Result:
        status = int(getattr(exc, "status", 0) or 0)
        raw_code = getattr(exc, "code", None)
        code = int(raw_code) if isinstance(raw_code, int | str) and str(raw_code).isdigit() else status
        response = self._http.last_response
        detail = _error_message(response, exc)
        text = f"twilio {code}: {detail}"
        headers: Mapping[str, str] = (response.headers if response is not None else None) or {}
        if status == 401 or (status == 403 and 20000 <= code < 21000):
            raise ProviderUnavailable(f"{text} (check account_sid and auth_token)")
        if status == 404:
            raise ProviderUnavailable(f"{text} (is base_url right?)")
        if status == 429 or code == 20429:
            raise _Throttled(text, retry_after(headers))
        if status >= 500:
            return Result.retry(recipient.delivery_id, text, retry_after(headers))
        if code in BAD_SENDER_CODES:
            raise ProviderUnavailable(f"{text} (check from_number / messaging_service_sid)")
        if code in BAD_MESSAGE_CODES:
            raise PermanentError(text)
        if code == OPTED_OUT_CODE:
            return Result.opted_out(recipient.delivery_id, text)
        return Result.failed(recipient.delivery_id, text)

    def probe(self) -> Readiness:
        """Fetch the account (``GET /2010-04-01/Accounts/{sid}.json``): ready when the SID and token
        match and the account is active; then the sender number must be one of the account's."""
        sid = self.options.account_sid
        try:
            account = self._client.api.v2010.accounts(sid).fetch()
            status = str(getattr(account, "status", "") or "")
            if status != "active":
                return Readiness.not_ready(f"the Twilio account {sid} is {status or 'in an unknown state'}")
            sender = self.options.from_number
            if sender is not None and not self._client.incoming_phone_numbers.list(
                phone_number=sender, limit=1
            ):
                return Readiness.not_ready(f"from_number {sender} is not a number of the account {sid}")
        except (TwilioRestException, TwilioServiceException) as exc:
            return Readiness.not_ready(self._probe_refusal(exc))
        except (requests.RequestException, TwilioException) as exc:
            return Readiness.not_ready(
                f"cannot reach Twilio at {self.options.base_url}: {type(exc).__name__}"
            )
        sender_text = self.options.from_number or f"messaging service {self.options.messaging_service_sid}"
        return Readiness.ok(f"account {sid} is active; sending from {sender_text}")

    def _probe_refusal(self, exc: TwilioException) -> str:
        status = int(getattr(exc, "status", 0) or 0)
        code = getattr(exc, "code", None)
        detail = _error_message(self._http.last_response, exc)
        if status == 401:
            return f"Twilio refused account_sid and auth_token ({code or status}: {detail}): revoked or wrong"
        if status == 404:
            return (
                f"Twilio has no account {self.options.account_sid} for these credentials ({code or status}): "
                "the SID belongs to another account, or base_url is wrong"
            )
        return f"Twilio answered {status} ({code}): {detail}"


class _Throttled(Exception):
    """Twilio answered 429 / 20429: the account must wait (``retry_after`` seconds, if it said)."""

    def __init__(self, text: str, retry_after: float | None) -> None:
        super().__init__(text)
        self.text, self.retry_after = text, retry_after


class _Stop:
    """Why a paced call sends no more: ``why`` for the recipients it leaves untried, or None when the
    pace (the dispatcher) stopped it or an error about every recipient will say it."""

    def __init__(self, why: str | None = None) -> None:
        self.why = why


class _Unreachable(Exception):
    """No request reached Twilio (refused connection, connect timeout, name not resolved)."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text


def _reached(exc: requests.RequestException) -> bool:
    """Whether the request may have reached Twilio: False only when the connection was never made."""
    if isinstance(exc, requests.ConnectTimeout):
        return False
    if isinstance(exc, requests.ConnectionError):
        reason = exc.args[0] if exc.args else None
        cause = getattr(reason, "reason", reason)
        return not isinstance(
            cause, urllib3.exceptions.NewConnectionError | urllib3.exceptions.NameResolutionError
        )
    return True


def _error_message(response: TwilioResponse | None, exc: TwilioException) -> str:
    """Twilio's own ``message`` from the error body, else what the SDK exception carries."""
    if response is not None and response.status_code >= 400:
        try:
            body = json.loads(response.text)
        except (ValueError, TypeError):
            body = None
        if isinstance(body, dict):
            for key in ("message", "detail", "title"):
                if body.get(key):
                    return str(body[key])
    if isinstance(exc, TwilioServiceException):
        return str(exc.detail or exc.title)
    message = str(getattr(exc, "msg", "") or "")
    return message.removeprefix("Unable to create record: ") or type(exc).__name__
