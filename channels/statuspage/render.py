"""Render the status site from a ``StatusSnapshot``: every file, in memory, before anything is written.

Files (paths relative to the site root)::

    index.html               current status, open incidents, maintenance, components with their
                             uptime bars, recent history, a link to subscribe
    components/<slug>.html   one component: its 90-day bar and each day's incidents
    components/<slug>.atom   Atom 1.0 of the updates about that component
    incidents/<id>.html      one page per incident or maintenance window, with its public timeline
    history.html             everything resolved or finished in the last ``history_days``
    feed.atom                Atom 1.0: one entry per public update
    maintenance.ics          the maintenance windows as an iCalendar feed
    badge.svg                the page's state as a badge; badges/<slug>.svg per component
    embed/banner.html        a no-JavaScript banner to embed in a product (an iframe)
    api/v2/*.json            Statuspage-compatible JSON (channels.statuspage.statuspage_api)
    tocsin-status.json       Tocsin's own document (docs/pages/status-json.md, docs/pages/status.schema.json);
    status.json              the same, kept at its old name for readers of earlier versions

Templates are ``statuspage/*.j2`` in the template folders given (a user folder first, then the packaged
one), rendered in a Jinja2 sandbox with autoescaping on for every file (HTML and Atom alike) and
``StrictUndefined``, so an incident title ``<script>…`` shows as text and a template typo is an error.
"""

from __future__ import annotations

import re
import traceback
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from jinja2 import FileSystemLoader, StrictUndefined, TemplateSyntaxError
from jinja2.sandbox import SandboxedEnvironment
from markupsafe import Markup, escape

from channels.statuspage import statuspage_api
from channels.statuspage.badges import badge
from channels.statuspage.calendar import maintenance_calendar
from channels.statuspage.model import ComponentState, StatusSnapshot

FEED_ENTRIES = 100
"""The newest public updates the feed carries."""

TEMPLATES = {
    "index": "statuspage/index.html.j2",
    "incident": "statuspage/incident.html.j2",
    "history": "statuspage/history.html.j2",
    "feed": "statuspage/feed.atom.j2",
    "component": "statuspage/component.html.j2",
    "banner": "statuspage/banner.html.j2",
}

_LABELS = {
    "operational": "Operational",
    "under_maintenance": "Under maintenance",
    "degraded_performance": "Degraded performance",
    "partial_outage": "Partial outage",
    "major_outage": "Major outage",
    "in_progress": "In progress",
    "reminded": "Scheduled",
    "none": "Operational",
}
_ICONS = {
    "operational": "✓",
    "none": "✓",
    "under_maintenance": "⚙",
    "maintenance": "⚙",
    "scheduled": "⚙",
    "reminded": "⚙",
    "in_progress": "⚙",
    "completed": "✓",
    "cancelled": "\u2013",  # en dash
    "degraded_performance": "!",
    "minor": "!",
    "partial_outage": "!",
    "major": "!",
    "major_outage": "✕",
    "critical": "✕",
    "resolved": "✓",
}
# XML 1.0 cannot carry these at all, escaped or not.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


class SiteRenderError(Exception):
    """A status page template cannot be rendered; ``str()`` names the template and line."""


def _as_utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _iso_utc(value: datetime) -> str:
    return _as_utc(value).isoformat(timespec="seconds").replace("+00:00", "Z")


def _utc_datetime(value: datetime) -> str:
    return _as_utc(value).strftime("%Y-%m-%d %H:%M UTC")


def _site_datetime(value: datetime) -> str:
    """A time as the page shows it: in the site's zone (``StatusSnapshot.time_zone``, which ``render``
    gives every time), with UTC beside it, since everyone reads the same page."""
    utc = _as_utc(value)
    if value.tzinfo is None or value.tzname() == "UTC":
        return _utc_datetime(utc)
    same_day = value.date() == utc.date()
    beside = utc.strftime("%H:%M UTC" if same_day else "%Y-%m-%d %H:%M UTC")
    return f"{value:%Y-%m-%d %H:%M} {value.tzname()} ({beside})"


def _in_zone(value: Any, zone: ZoneInfo) -> Any:
    """``value`` (the snapshot as a dict) with every time in ``zone``: the same instants."""
    if isinstance(value, datetime):
        return _as_utc(value).astimezone(zone)
    if isinstance(value, dict):
        return {k: _in_zone(v, zone) for k, v in value.items()}
    if isinstance(value, list):
        return [_in_zone(v, zone) for v in value]
    return value


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise SiteRenderError(f"time_zone: unknown time zone {name!r}") from None


def _label(value: str | None) -> str:
    if not value:
        return ""
    return _LABELS.get(value, value.replace("_", " ").capitalize())


def _icon(value: str | None) -> str:
    return _ICONS.get(value or "", "•")


def _paragraphs(value: str) -> Markup:
    """Plain text to HTML paragraphs (blank line: new paragraph, newline: <br>), escaped."""
    blocks = [b for b in re.split(r"\n\s*\n", value.strip()) if b.strip()]
    return Markup(
        "".join(
            "<p>" + str(Markup("<br>\n").join(escape(line) for line in block.splitlines())) + "</p>\n"
            for block in blocks
        )
    )


def _xml_text(value: str) -> str:
    return _NOT_XML.sub("", value)


def _percent(value: float | None) -> str:
    """Uptime as people read it: ``99.95%``, never rounded up to 100% while there was downtime."""
    if value is None:
        return "no data"
    return f"{int(value * 10_000) / 100:.2f}%"


def _day(value: Any) -> str:
    return f"{value:%d %b %Y}"


def feed_id(snapshot: StatusSnapshot, what: str) -> str:
    """A stable ``urn:uuid:`` for the feed or one of its entries (the same on every publish)."""
    namespace = snapshot.site_url or f"tocsin:{snapshot.organisation}"
    return f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, f'{namespace}#{what}')}"


class SiteRenderer:
    """Renders the status site from a snapshot with the templates of ``template_dirs`` (first wins)."""

    def __init__(self, template_dirs: Sequence[Path]) -> None:
        self.search_path = [str(Path(d)) for d in template_dirs]
        self.env = SandboxedEnvironment(
            loader=FileSystemLoader(self.search_path),
            undefined=StrictUndefined,
            autoescape=True,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.filters.update(
            iso_utc=_iso_utc,
            utc_datetime=_utc_datetime,
            site_datetime=_site_datetime,
            label=_label,
            icon=_icon,
            paragraphs=_paragraphs,
            xml_text=_xml_text,
            percent=_percent,
            day=_day,
        )

    def render(self, snapshot: StatusSnapshot) -> dict[str, bytes]:
        """Every file of the site: relative path -> content. Raises ``SiteRenderError``."""
        site = _in_zone(snapshot.model_dump(mode="python"), _zone(snapshot.time_zone))
        groups: dict[str, list[dict[str, Any]]] = {}
        for component in site["components"]:  # already in page order: a group sits where its first is
            groups.setdefault(component["group"] or "", []).append(component)
        site["groups"] = list(groups.items())
        files: dict[str, bytes] = {}
        for item in site["incidents"] + site["maintenance"] + site["history"]:
            files[item["path"]] = self._render("incident", site=site, item=item, root="../")
        for component, state in zip(site["components"], snapshot.components, strict=True):
            slug = component["slug"]
            files[f"components/{slug}.html"] = self._render(
                "component", site=site, component=component, root="../"
            )
            files[f"components/{slug}.atom"] = self._render(
                "feed", site=site, feed=self._feed(snapshot, site, state)
            )
            files[f"badges/{slug}.svg"] = badge(
                component["name"], _label(component["status"]), component["status"]
            )
        files["history.html"] = self._render("history", site=site, root="")
        files["feed.atom"] = self._render("feed", site=site, feed=self._feed(snapshot, site))
        files["maintenance.ics"] = maintenance_calendar(snapshot)
        files["badge.svg"] = badge("status", snapshot.status.description, snapshot.status.indicator)
        files["embed/banner.html"] = self._render("banner", site=site, root="../")
        files.update(statuspage_api.files(snapshot))
        document = (snapshot.model_dump_json(indent=2) + "\n").encode("utf-8")
        files["tocsin-status.json"] = document
        files["status.json"] = document
        files["index.html"] = self._render("index", site=site, root="")
        return files

    @staticmethod
    def _feed(
        snapshot: StatusSnapshot, site: dict[str, Any], component: ComponentState | None = None
    ) -> dict[str, Any]:
        """The whole page's feed, or one component's (updates of the incidents that name it)."""
        items = site["incidents"] + site["maintenance"] + site["history"]
        if component is not None:
            items = [i for i in items if component.name in i["components"]]
        entries = [
            {
                "id": feed_id(snapshot, f"update-{update['id']}"),
                "title": f"{item['title']}: {_label(update['status'])}",
                "published_at": update["published_at"],
                "status": update["status"],
                "message": update["message"],
                "path": item["path"],
            }
            for item in items
            for update in item["updates"]
        ]
        entries.sort(key=lambda e: (e["published_at"], e["id"]), reverse=True)
        entries = entries[:FEED_ENTRIES]
        base = snapshot.site_url.rstrip("/") + "/" if snapshot.site_url else ""
        own = f"components/{component.slug}" if component is not None else None
        return {
            "id": feed_id(snapshot, own or "feed"),
            "title": f"{snapshot.organisation} status" + (f": {component.name}" if component else ""),
            "self": f"{own}.atom" if own else "feed.atom",
            "page": f"{own}.html" if own else "index.html",
            "updated": entries[0]["published_at"] if entries else snapshot.generated_at,
            "base": base,
            "entries": entries,
        }

    def _render(self, which: str, **variables: Any) -> bytes:
        name = TEMPLATES[which]
        try:
            template = self.env.get_template(name)
            text = template.render(**variables)
        except TemplateSyntaxError as exc:
            raise SiteRenderError(
                f"{exc.filename or name}:{exc.lineno}: syntax error: {exc.message}"
            ) from None
        except Exception as exc:  # TemplateError, UndefinedError, SecurityError, a bad filter value
            where = self._where(exc, name)
            raise SiteRenderError(f"{where}: {type(exc).__name__}: {exc}") from None
        return (text.strip() + "\n").encode("utf-8")

    def _where(self, exc: BaseException, name: str) -> str:
        """The template file and line the error happened at (Jinja maps frames to template lines)."""
        for frame in reversed(traceback.extract_tb(exc.__traceback__)):
            if frame.filename.startswith(tuple(self.search_path)) and not frame.filename.endswith(".py"):
                return f"{frame.filename}:{frame.lineno}"
        return name
