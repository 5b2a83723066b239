"""What a request may carry, enforced while it is read: before routing, before authentication, and
before more than the limit is ever held in memory.

* a body larger than ``limits.max_body_bytes`` (``limits.max_import_bytes`` for CSV imports) is answered
  ``413`` as soon as its ``Content-Length`` says so, or as soon as that many bytes have arrived;
* a JSON body nested deeper than ``limits.max_json_depth`` is answered ``400`` while it streams in (a
  recursive parser would otherwise crash on ``[[[[…`` with a 500);
* NUL and other control characters in a JSON value or key, a form field or a query parameter are answered
  ``422`` naming the field (PostgreSQL cannot store NUL; SQLite can, and every reader then chokes).

Answers are ``application/problem+json``; on console pages and the public self-service pages (unless
the request is JSON), a small HTML page.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from html import escape
from typing import Any
from urllib.parse import parse_qsl

from sqlalchemy.exc import SQLAlchemyError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dispatcher.config.guards import LimitSettings
from dispatcher.domain.errors import TocsinError
from dispatcher.domain.text_safety import control_character

log = logging.getLogger(__name__)

BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
IMPORT_PATHS = ("/subscribers/import", "/console/subscribers/import")
NOT_JSON = ("multipart/form-data", "application/x-www-form-urlencoded", "text/csv")
"""Bodies never read as JSON (the depth scan and the value check skip them)."""
_STRUCTURAL = re.compile(rb'[\\"\[\]{}]')


class Refused(Exception):
    """The request is answered here with ``status``; ``field`` names what is wrong, when one is."""

    def __init__(self, status: int, kind: str, detail: str, field: str | None = None) -> None:
        super().__init__(detail)
        self.status, self.kind, self.detail, self.field = status, kind, detail, field


class DepthScanner:
    """Follows the nesting of a JSON text chunk by chunk, without parsing it: strings (and escapes
    inside them) are skipped, so ``"[[["`` as a value counts for nothing."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.depth = 0
        self._in_string = False
        self._skip = -1
        self._offset = 0

    def feed(self, chunk: bytes) -> bool:
        """False as soon as the nesting goes deeper than the limit."""
        base, self._offset = self._offset, self._offset + len(chunk)
        for match in _STRUCTURAL.finditer(chunk):
            position, char = base + match.start(), match.group()
            if position == self._skip:  # the character after a backslash in a string
                continue
            if self._in_string:
                if char == b"\\":
                    self._skip = position + 1
                elif char == b'"':
                    self._in_string = False
            elif char == b'"':
                self._in_string = True
            elif char in b"[{":
                self.depth += 1
                if self.depth > self.limit:
                    return False
            elif char in b"]}":
                self.depth -= 1
        return True


class RequestGuard:
    """ASGI middleware: reads the body itself (up to the limit), checks it, then replays it to the app."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            _check_query(scope)
            if scope["method"] not in BODY_METHODS:
                await self.app(scope, receive, send)
                return
            body = await _read_body(scope, receive, _limits(scope))
            _check_values(scope, body)
        except Refused as refused:
            await _answer(scope, send, refused)
            return
        await self.app(scope, _replay(body, receive), send)


def _limits(scope: Scope) -> LimitSettings:
    app = scope.get("app")
    try:
        limits: LimitSettings = app.state.runtime().settings.limits  # type: ignore[union-attr]
    except (TocsinError, SQLAlchemyError) as exc:
        # No runtime (database down, not initialised): the route will say so; the defaults still guard.
        log.warning("request limits: the defaults apply (%s)", exc)
        return LimitSettings()
    return limits


def _header(scope: Scope, name: bytes) -> str:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return str(value.decode("latin-1"))
    return ""


def _content_type(scope: Scope) -> str:
    return _header(scope, b"content-type").split(";", 1)[0].strip().lower()


async def _read_body(scope: Scope, receive: Receive, limits: LimitSettings) -> bytes:
    is_import = scope["path"].rstrip("/") in IMPORT_PATHS
    limit = limits.max_import_bytes if is_import else limits.max_body_bytes
    setting = "limits.max_import_bytes" if is_import else "limits.max_body_bytes"
    too_large = Refused(
        413, "content-too-large", f"the request body is larger than {limit} bytes ({setting})"
    )
    declared = _header(scope, b"content-length")
    if declared.isdigit() and int(declared) > limit:
        raise too_large  # refused before a byte of it is read
    scanner = None if _content_type(scope).startswith(NOT_JSON) else DepthScanner(limits.max_json_depth)
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise too_large
        if scanner is not None and not scanner.feed(chunk):
            raise Refused(
                400,
                "too-deep",
                f"the JSON body is nested deeper than {limits.max_json_depth} levels (limits.max_json_depth)",
                "body",
            )
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _check_query(scope: Scope) -> None:
    query = scope.get("query_string", b"").decode("latin-1")
    for name, value in parse_qsl(query, keep_blank_values=True):
        problem = control_character(name) or control_character(value)
        if problem is not None:
            raise Refused(422, "invalid-input", f"{name}: {problem}", name)


def _check_values(scope: Scope, body: bytes) -> None:
    kind = _content_type(scope)
    if not body or kind.startswith(("multipart/form-data", "text/csv")):
        return  # uploads are checked row by row by the import, which names line and column
    if kind == "application/x-www-form-urlencoded":
        pairs: Iterator[tuple[str, Any]] = iter(
            parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)
        )
    elif body.lstrip()[:1] in (b"{", b"["):
        try:
            pairs = _walk(json.loads(body), "")
        except (ValueError, RecursionError):
            return  # not JSON after all: the route answers that itself (400)
    else:
        return
    for field, value in pairs:
        problem = control_character(value) if isinstance(value, str) else None
        if problem is not None:
            raise Refused(422, "invalid-input", f"{field or 'body'}: {problem}", field or "body")


def _walk(value: Any, path: str) -> Iterator[tuple[str, Any]]:
    """(dotted field, value) for every string in a parsed JSON document, keys included."""
    if isinstance(value, dict):
        for key, item in value.items():
            where = f"{path}.{key}" if path else str(key)
            yield where, key
            yield from _walk(item, where)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _walk(item, f"{path}.{index}" if path else str(index))
    else:
        yield path, value


def _replay(body: bytes, receive: Receive) -> Receive:
    """The app reads the body already read; after it, whatever the client does next (disconnect)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


SELF_SERVICE_PAGES = frozenset(
    {"/subscribe", "/subscribe/verify", "/subscribe/confirm", "/manage", "/unsubscribe"}
)
"""Public pages a browser opens or posts a form to: refused with a page, unless the request is JSON."""


def _wants_html(scope: Scope) -> bool:
    path = scope["path"]
    if path.startswith("/console"):
        return True
    return path in SELF_SERVICE_PAGES and "json" not in _content_type(scope)


async def _answer(scope: Scope, send: Send, refused: Refused) -> None:
    if _wants_html(scope):
        body = (
            '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Cannot do that</title></head>'
            f"<body><h1>Cannot do that</h1><p>{escape(refused.detail)}</p></body></html>"
        ).encode()
        media = "text/html; charset=utf-8"
    else:
        problem: dict[str, Any] = {
            "type": f"urn:tocsin:problem:{refused.kind}",
            "title": {413: "Content Too Large", 400: "Bad Request"}.get(refused.status, "Invalid input"),
            "status": refused.status,
            "detail": refused.detail,
        }
        if refused.field is not None:
            message = refused.detail.partition(": ")[2] if refused.status == 422 else refused.detail
            problem["errors"] = [{"field": refused.field, "message": message}]
        body = json.dumps(problem).encode()
        media = "application/problem+json"
    headers = [(b"content-type", media.encode()), (b"content-length", str(len(body)).encode())]
    if refused.kind in ("content-too-large", "too-deep"):
        headers.append((b"connection", b"close"))  # the rest of the body is never read
    await send({"type": "http.response.start", "status": refused.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
