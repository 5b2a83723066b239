"""The import rewrite of the regroup (issue 12), kept for the record and for rebasing older branches.

The regroup moved modules with a pure ``git mv`` commit; this script then rewrote every reference, from
one mapping table: dotted module paths (imports, entry points, ``monkeypatch`` strings), ``from
package import module`` lines, and file paths in prose (``dispatcher/delivery.py``). Run it from the
repository root: ``python .ci/regroup_imports.py [paths…]`` (default: the whole tree). It is idempotent.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

MOVES: dict[str, str] = {
    # domain: pure models and rules
    "dispatcher.models": "dispatcher.domain.models",
    "dispatcher.errors": "dispatcher.domain.errors",
    "dispatcher.durations": "dispatcher.domain.durations",
    "dispatcher.clock": "dispatcher.domain.clock",
    "dispatcher.policy": "dispatcher.domain.policy",
    "dispatcher.quiet_hours": "dispatcher.domain.quiet_hours",
    "dispatcher.guardrail_rules": "dispatcher.domain.guardrail_rules",
    "dispatcher.audiences": "dispatcher.domain.audiences",
    # config: settings and what is read from them
    "dispatcher.settings": "dispatcher.config.settings",
    "dispatcher.config_show": "dispatcher.config.show",
    "dispatcher.config_template": "dispatcher.config.template",
    "dispatcher.resources": "dispatcher.config.resources",
    # store
    "dispatcher.migrations": "dispatcher.store.migrations",
    # rendering: templates to text, no database
    "dispatcher.rendering": "dispatcher.rendering.renderer",
    # engine: the delivery machine that owns the ledger
    "dispatcher.runtime": "dispatcher.engine.runtime",
    "dispatcher.task_queue": "dispatcher.engine.task_queue",
    "dispatcher.fanout": "dispatcher.engine.fanout",
    "dispatcher.redrive": "dispatcher.engine.redrive",
    "dispatcher.claims": "dispatcher.engine.claims",
    "dispatcher.delivery": "dispatcher.engine.delivery",
    "dispatcher.ledger": "dispatcher.engine.ledger",
    "dispatcher.retry_policy": "dispatcher.engine.retry",
    "dispatcher.messages": "dispatcher.engine.messages",
    "dispatcher.status_site": "dispatcher.engine.status_site",
    "dispatcher.circuit_breaker": "dispatcher.engine.pacing.circuit_breaker",
    "dispatcher.rate_limit": "dispatcher.engine.pacing.rate_limit",
    "dispatcher.ordering": "dispatcher.engine.sequencing.ordering",
    "dispatcher.missed": "dispatcher.engine.sequencing.missed",
    "dispatcher.recipient_cap": "dispatcher.engine.sequencing.recipient_cap",
    # comms: what is said, when, by whom
    "dispatcher.publish": "dispatcher.comms.publish",
    "dispatcher.approval": "dispatcher.comms.approval",
    "dispatcher.lifecycle": "dispatcher.comms.lifecycle",
    "dispatcher.incidents": "dispatcher.comms.incidents",
    "dispatcher.followups": "dispatcher.comms.followups",
    "dispatcher.maintenance": "dispatcher.comms.maintenance",
    "dispatcher.guardrails": "dispatcher.comms.guardrails",
    "dispatcher.preview": "dispatcher.comms.preview",
    "dispatcher.tick": "dispatcher.comms.tick",
    # audience: subscribers and their consent
    "dispatcher.subscribers": "dispatcher.audience.subscribers",
    "dispatcher.consent": "dispatcher.audience.consent",
    "dispatcher.importing": "dispatcher.audience.importing",
    "dispatcher.subscriber_import": "dispatcher.audience.csv_rows",
    "dispatcher.provider_events": "dispatcher.audience.provider_events",
    # reporting, access, runners
    "dispatcher.ledger_queries": "dispatcher.reporting.ledger_queries",
    "dispatcher.status": "dispatcher.reporting.status",
    "dispatcher.metrics": "dispatcher.reporting.metrics",
    "dispatcher.tokens": "dispatcher.access.tokens",
    "dispatcher.embedded": "dispatcher.runners.embedded",
    "dispatcher.queues": "dispatcher.runners.broker",
    "dispatcher.demo_data": "dispatcher.cli.demo_data",
    # interfaces: the web ones under one package
    "dispatcher.http": "dispatcher.web",
    "dispatcher.console": "dispatcher.web.console",
    # channels
    "channels.statuspage_directory": "channels.statuspage.directory",
    "channels.statuspage_model": "channels.statuspage.model",
    "channels.statuspage_render": "channels.statuspage.render",
    "channels.statuspage_s3": "channels.statuspage.s3",
    "channels.statuspage": "channels.statuspage.adapter",
    "channels.curl_multi": "channels._http.curl_multi",
    "channels.http_hints": "channels._http.hints",
    "channels.ssrf": "channels._http.ssrf",
    "channels.sms_segments": "channels.text.sms_segments",
    "channels.x_text": "channels.text.x_text",
    "channels.sendgrid_events": "channels.callbacks.sendgrid_events",
    "channels.twilio_callbacks": "channels.callbacks.twilio_callbacks",
}

_OLD = sorted(MOVES, key=len, reverse=True)
_DOTTED = re.compile(r"(?<![\w.])(" + "|".join(re.escape(o) for o in _OLD) + r")(?![\w])")
_FROM_IMPORT = re.compile(r"^(\s*)from (dispatcher|channels) import ([\w, ]+)$", re.M)


_NEW = sorted(set(MOVES.values()), key=len, reverse=True)
_ALREADY_NEW = re.compile("(?:" + "|".join(re.escape(n) for n in _NEW) + r")(?![\w])")


_TOML_KEY = re.compile(r"\]|\.(?:enabled|providers|batch_size|retry_schedule)\b")
"""``[channels.statuspage]`` and ``channels.statuspage.enabled`` are settings, not the module."""


def _dotted(match: re.Match[str]) -> str:
    old = match.group(1)
    before = match.string[match.start() - 1 : match.start()]
    if before == "[" or _TOML_KEY.match(match.string, match.end()):
        return old
    already = _ALREADY_NEW.match(match.string, match.start())
    if already and already.end() > match.end():
        return old  # already a new path (``channels.statuspage.model``): rewrite once only
    return MOVES[old]


def _path_form(dotted: str) -> str:
    return dotted.replace(".", "/")


PACKAGES = {"dispatcher.http", "dispatcher.console", "dispatcher.migrations"}
"""Moved folders; every other entry of ``MOVES`` is a module (a ``.py`` file)."""
_PATHS = {_path_form(old): _path_form(new) for old, new in MOVES.items()}
_FOLDERS = "|".join(re.escape(_path_form(o)) for o in sorted(PACKAGES, key=len, reverse=True))
_FILES = "|".join(re.escape(_path_form(o)) for o in sorted(set(MOVES) - PACKAGES, key=len, reverse=True))
_SLASHED = re.compile(rf"(?<![\w/])(?:({_FOLDERS})(?=/)|({_FILES})(?=\.py\b))")


def _from_import(match: re.Match[str]) -> str:
    """``from dispatcher import guardrails, metrics`` -> one line per new parent package."""
    indent, package, names = match.groups()
    lines: list[str] = []
    for name in (n.strip() for n in names.split(",")):
        alias = ""
        if " as " in name:
            name, alias = (part.strip() for part in name.split(" as "))
        old = f"{package}.{name}"
        new = MOVES.get(old, old)
        parent, _, leaf = new.rpartition(".")
        local = alias or name
        suffix = f" as {local}" if local != leaf else ""
        lines.append(f"{indent}from {parent} import {leaf}{suffix}")
    return "\n".join(lines)


def rewrite(text: str) -> str:
    text = _FROM_IMPORT.sub(_from_import, text)
    text = _DOTTED.sub(_dotted, text)
    return _SLASHED.sub(lambda m: _PATHS[m.group(1) or m.group(2)], text)


SUFFIXES = {".py", ".toml", ".md", ".cfg", ".ini", ".yml", ".yaml", ".j2", ".html", ""}
SKIP = {".git", ".venv", "__pycache__", "node_modules", ".mypy_cache", ".ruff_cache"}


def main(argv: list[str]) -> int:
    roots = [Path(a) for a in argv] or [Path(".")]
    for root in roots:
        files = [root] if root.is_file() else root.rglob("*")
        for path in files:
            if not path.is_file() or SKIP & set(path.parts) or path.suffix not in SUFFIXES:
                continue
            if path.name == "regroup_imports.py":
                continue
            try:
                text = path.read_text(encoding="utf-8")
            except UnicodeDecodeError:
                continue
            new = rewrite(text)
            if new != text:
                path.write_text(new, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
