"""Secrets never reach the logs, whatever part of the request carried them.

The access log prints each request's path and query string; people (and scripts) put tokens there by
mistake (``?access_token=…``), and the signed links of emails carry theirs there by design
(``/unsubscribe?token=…``). Every query parameter named like a secret is masked, and anything shaped like
a Tocsin API token (``tcn_…``) or a bearer credential is masked wherever it appears in a message."""

from __future__ import annotations

import logging
import re
from urllib.parse import parse_qsl, quote

MASK = "********"
_SECRET_NAME = re.compile(r"(key|token|secret|password|passwd|credential|signature|sig|auth|code)", re.I)
_API_TOKEN = re.compile(r"tcn_[A-Za-z0-9_\-]+")
_BEARER = re.compile(r"\b(bearer|basic)(\s+|%20|\+)[^\s&\"']+", re.I)
LOGGERS = ("uvicorn.access", "uvicorn.error", "dispatcher")


def redact_target(target: str) -> str:
    """A request target (``/path?query``) with secret-named query values masked."""
    path, sep, query = target.partition("?")
    if not sep:
        return redact_text(target)
    pairs = []
    for name, value in parse_qsl(query, keep_blank_values=True):
        shown = MASK if _SECRET_NAME.search(name) else quote(value, safe="")
        pairs.append(f"{quote(name, safe='')}={shown}")
    return redact_text(f"{path}?{'&'.join(pairs)}")


def redact_text(text: str) -> str:
    """``text`` with API tokens and bearer/basic credentials masked."""
    text = _API_TOKEN.sub("tcn_" + MASK, text)
    return _BEARER.sub(lambda m: f"{m.group(1)}{m.group(2)}{MASK}", text)


class RedactSecrets(logging.Filter):
    """Masks secrets in a record's message and arguments before any handler formats it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact_text(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(_redacted(arg) for arg in record.args)
        return True


def _redacted(arg: object) -> object:
    if not isinstance(arg, str):
        return arg
    return redact_target(arg) if arg.startswith("/") else redact_text(arg)


def install() -> None:
    """Add the filter to the loggers that see requests (idempotent; survives uvicorn's log config)."""
    for name in LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactSecrets) for f in logger.filters):
            logger.addFilter(RedactSecrets())
