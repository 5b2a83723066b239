"""Many HTTP POSTs in flight from one thread, through libcurl's multi interface (pycurl).

Why libcurl and not aiohttp on this path: webhook fan-out is one small POST per recipient, so the
client's own CPU per request sets the ceiling. Measured on the 2-core benchmark machine against the same
local receiver, aiohttp spent 0.18 ms of CPU per request (one core: ~5,500 requests/s, before Tocsin does
anything else) and libcurl 0.06 ms. See ``bench/http_ceiling.py``.

A ``CurlPool`` keeps ``concurrency`` easy handles and one multi handle for its whole life, so
connections (and TLS sessions) are reused from batch to batch. It is not thread-safe: use one per thread.

Every request names the exact address to connect to (``connect_to``): the caller checks a destination
before it is reached, and libcurl then never resolves or connects anywhere else, whatever it makes of
the URL. Redirects are not followed, proxies from the environment are not used, and only http and https
are spoken.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import certifi
import pycurl

from channels._http.ssrf import IPAddress

TIMED_OUT = pycurl.E_OPERATION_TIMEDOUT
COULDNT_CONNECT = pycurl.E_COULDNT_CONNECT
BAD_URL = frozenset({pycurl.E_URL_MALFORMAT, pycurl.E_UNSUPPORTED_PROTOCOL})


@dataclass(slots=True)
class Request:
    url: str
    address: IPAddress
    """The checked address the connection must go to."""
    port: int
    body: bytes
    headers: Callable[[], list[str]]
    """Called when the request actually starts, so a timestamp signed into a header is fresh."""


@dataclass(slots=True)
class Answer:
    status: int = 0
    """The HTTP status, 0 when no answer came."""
    retry_after: float | None = None
    error: str | None = None
    """libcurl's reason when the request failed below HTTP (connect, timeout, reset)."""
    error_code: int = 0


def _discard(_: bytes) -> None:
    """Response bodies are not needed: only the status (and ``Retry-After``) decide."""


def _connect_to(address: IPAddress, port: int) -> str:
    host = f"[{address}]" if address.version == 6 else str(address)
    return f"::{host}:{port}"  # any host and port in the URL: connect to exactly this address


class CurlPool:
    def __init__(self, concurrency: int, timeout: float, user_agent: str) -> None:
        self.multi = pycurl.CurlMulti()
        self.multi.setopt(pycurl.M_MAX_TOTAL_CONNECTIONS, concurrency)
        self.multi.setopt(pycurl.M_MAXCONNECTS, concurrency)
        self.handles = [self._new_handle(timeout, user_agent) for _ in range(concurrency)]

    @staticmethod
    def _new_handle(timeout: float, user_agent: str) -> pycurl.Curl:
        handle = pycurl.Curl()
        millis = max(1, int(timeout * 1000))
        for option, value in (
            (pycurl.NOSIGNAL, 1),
            (pycurl.TIMEOUT_MS, millis),
            (pycurl.CONNECTTIMEOUT_MS, millis),
            (pycurl.FOLLOWLOCATION, 0),
            (pycurl.PROTOCOLS, pycurl.PROTO_HTTP | pycurl.PROTO_HTTPS),
            (pycurl.NOPROXY, "*"),
            (pycurl.USERAGENT, user_agent),
            (pycurl.CAINFO, certifi.where()),
            (pycurl.WRITEFUNCTION, _discard),
        ):
            handle.setopt(option, value)
        return handle

    def run(self, requests: Sequence[Request]) -> list[Answer]:
        """Send every request, at most ``concurrency`` at a time; one answer per request, in order."""
        answers = [Answer() for _ in requests]
        multi = self.multi
        free = list(self.handles)
        index_of: dict[int, int] = {}
        attached: dict[int, pycurl.Curl] = {}
        upcoming = iter(range(len(requests)))

        def start(handle: pycurl.Curl) -> bool:
            i = next(upcoming, None)
            if i is None:
                return False
            request = requests[i]
            handle.setopt(pycurl.URL, request.url)
            handle.setopt(pycurl.CONNECT_TO, [_connect_to(request.address, request.port)])
            handle.setopt(pycurl.POSTFIELDS, request.body)
            handle.setopt(pycurl.HTTPHEADER, [*request.headers(), "Expect:"])
            index_of[id(handle)] = i
            multi.add_handle(handle)
            attached[id(handle)] = handle
            return True

        def finish(handle: pycurl.Curl, code: int, message: str) -> None:
            answer = answers[index_of.pop(id(handle))]
            answer.status = int(handle.getinfo(pycurl.RESPONSE_CODE))
            if code and not answer.status:
                answer.error, answer.error_code = message or f"curl error {code}", code
            elif answer.status >= 400:  # the caller decides which statuses may wait for Retry-After
                after = handle.getinfo(pycurl.RETRY_AFTER)
                answer.retry_after = float(after) if after and after > 0 else None
            multi.remove_handle(handle)
            del attached[id(handle)]
            if not start(handle):
                free.append(handle)

        try:
            while free and start(free.pop()):
                pass
            while index_of:
                while multi.perform()[0] == pycurl.E_CALL_MULTI_PERFORM:
                    pass
                while True:
                    queued, ok, failed = multi.info_read()
                    for handle in ok:
                        finish(handle, 0, "")
                    for handle, code, message in failed:
                        finish(handle, code, message)
                    if not queued:
                        break
                if index_of:
                    wait = multi.timeout()
                    multi.select(1.0 if wait < 0 else min(wait / 1000, 1.0))
        finally:
            # Interrupted (an exception, a signal): leave no handle attached, so the pool stays usable.
            for handle in attached.values():
                multi.remove_handle(handle)
        return answers

    def close(self) -> None:
        for handle in self.handles:
            handle.close()
        self.multi.close()
        self.handles = []
