"""``maintenance.ics``: the maintenance windows as an iCalendar feed (RFC 5545) that people subscribe
to in their calendar, regenerated with the page.

One ``VEVENT`` per window (scheduled, in progress, finished or cancelled within the history): its
``UID`` never changes, so a calendar moves the event when the window is rescheduled; ``SEQUENCE``
grows with every notice about it; a cancelled window stays in the feed with ``STATUS:CANCELLED`` so
calendars remove it instead of keeping a stale event.
"""

from __future__ import annotations

from icalendar import Calendar, Event

from channels.statuspage.model import PublicIncident, StatusSnapshot


def _uid(site: StatusSnapshot, item: PublicIncident) -> str:
    host = (site.site_url or "").split("://")[-1].split("/")[0] or site.page_id or "tocsin"
    return f"maintenance-{item.id}@{host}"


def _event(site: StatusSnapshot, item: PublicIncident) -> Event:
    event = Event()
    event.add("uid", _uid(site, item))
    event.add("dtstamp", site.generated_at)
    event.add("dtstart", item.starts_at)
    event.add("dtend", item.ends_at or item.starts_at)
    event.add("summary", f"Maintenance: {item.title}")
    latest = item.updates[0]
    text = latest.message
    if item.components:
        text += "\n\nAffects: " + ", ".join(item.components)
    event.add("description", text)
    event.add("status", "CANCELLED" if item.maintenance_stage == "cancelled" else "CONFIRMED")
    event.add("sequence", len(item.updates) - 1)
    event.add("last-modified", latest.published_at)
    event.add("transp", "TRANSPARENT")
    if site.site_url:
        event.add("url", site.site_url.rstrip("/") + "/" + item.path)
    return event


def maintenance_calendar(site: StatusSnapshot) -> bytes:
    calendar = Calendar()
    calendar.add("prodid", "-//Tocsin//Status page//EN")
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("method", "PUBLISH")
    calendar.add("x-wr-calname", f"{site.organisation} maintenance")
    windows = [m for m in (*site.maintenance, *site.history) if m.kind == "maintenance" and m.starts_at]
    for item in sorted(windows, key=lambda m: (m.starts_at, m.id)):
        calendar.add_component(_event(site, item))
    return bytes(calendar.to_ical())
