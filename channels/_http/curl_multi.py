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

from collections.abc import Callable, Iterator, Sequence
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
        for done in self.run_each(requests):
            for index, answer in done:
                answers[index] = answer
        return answers

    def run_each(self, requests: Sequence[Request], tick: float = 1.0) -> Iterator[list[tuple[int, Answer]]]:
        """Send every request, at most ``concurrency`` at a time; yield (index, answer) of the requests
        completed since the last yield, as they complete, and an empty list after ``tick`` seconds
        without any (so the caller may act on time while a slow request is still out). Closing the
        iterator early abandons the requests still on the wire."""
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

        def finish(handle: pycurl.Curl, code: int, message: str) -> tuple[int, Answer]:
            answer = Answer(status=int(handle.getinfo(pycurl.RESPONSE_CODE)))
            if code and not answer.status:
                answer.error, answer.error_code = message or f"curl error {code}", code
            elif answer.status >= 400:  # the caller decides which statuses may wait for Retry-After
                after = handle.getinfo(pycurl.RETRY_AFTER)
                answer.retry_after = float(after) if after and after > 0 else None
            index = index_of.pop(id(handle))
            multi.remove_handle(handle)
            del attached[id(handle)]
            if not start(handle):
                free.append(handle)
            return index, answer

        try:
            while free and start(free.pop()):
                pass
            while index_of:
                while multi.perform()[0] == pycurl.E_CALL_MULTI_PERFORM:
                    pass
                done: list[tuple[int, Answer]] = []
                while True:
                    queued, ok, failed = multi.info_read()
                    done += [finish(handle, 0, "") for handle in ok]
                    done += [finish(handle, code, message) for handle, code, message in failed]
                    if not queued:
                        break
                if done:
                    yield done
                elif index_of:
                    wait = multi.timeout()
                    if multi.select(tick if wait < 0 else min(wait / 1000, tick)) == 0 and wait != 0:
                        yield []
        finally:
            # Interrupted (an exception, a signal, the caller closing early): leave no handle attached,
            # so the pool stays usable.
            for handle in attached.values():
                multi.remove_handle(handle)

    def close(self) -> None:
        for handle in self.handles:
            handle.close()
        self.multi.close()
        self.handles = []
