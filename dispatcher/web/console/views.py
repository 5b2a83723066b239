"""Rendering the console's pages: Jinja2 with HTML autoescaping on, templates packaged beside this module."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from importlib.resources import files
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from starlette.responses import HTMLResponse

from dispatcher.domain.ids import incident_ref, update_ref

STATIC = files("dispatcher.web.console") / "static"


def _when(moment: datetime | None) -> str:
    if moment is None:
        return "-"
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _ago(moment: datetime | None, now: datetime) -> str:
    """``5 min ago`` / ``in 5 min``, for promises and overdue updates."""
    if moment is None:
        return "-"
    seconds = int((now - moment).total_seconds())
    minutes = abs(seconds) // 60
    amount = f"{minutes // 60} h {minutes % 60} min" if minutes >= 60 else f"{minutes} min"
    return f"{amount} ago" if seconds >= 0 else f"in {amount}"


def _pretty_json(text: str) -> str:
    try:
        return json.dumps(json.loads(text), indent=2, ensure_ascii=False)
    except ValueError:
        return text


def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("dispatcher.web.console", "templates"),
        autoescape=select_autoescape(["html"], default=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = _when
    env.filters["pretty_json"] = _pretty_json
    env.filters["inc"] = incident_ref  # ids people read as inc-3 and upd-7, as the CLI prints them
    env.filters["upd"] = update_ref
    env.globals["ago"] = _ago
    return env


ENV = _environment()


def page(name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    return HTMLResponse(ENV.get_template(name).render(**context), status_code=status_code)
