"""The status page as customers and their tools read it: components with a 90-day uptime bar built from
the recorded per-component impact, a page per component with each day's incidents, Statuspage-compatible
JSON under api/v2/ (validated against a schema written from Statuspage's public API documentation),
badges, an embeddable banner, a feed per component, a calendar of maintenance windows, and staff's
internal site published to a target of its own."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from icalendar import Calendar
from sqlalchemy import insert

from dispatcher.comms.components import ComponentDraft, create_component, set_component_status
from dispatcher.comms.maintenance import MaintenanceDraft, cancel_maintenance, schedule_maintenance
from dispatcher.comms.publish import publish
from dispatcher.domain.errors import ConfigurationError
from dispatcher.domain.models import Audience, Incident, IncidentStatus, Severity
from dispatcher.engine.runtime import Runtime
from dispatcher.engine.status_site import republish_site
from dispatcher.runners.embedded import EmbeddedRunner
from dispatcher.store.schema import component_impacts
from tests.helpers import ManualClock, draft, incident
from tests.test_statuspage import ATOM, site_files, site_options, validate, with_statuspage

DOCS = Path(__file__).resolve().parent.parent / "docs" / "pages"
T0 = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
STATUSPAGE_DOCUMENTS = {
    "api/v2/summary.json": "summary",
    "api/v2/status.json": "status_document",
    "api/v2/components.json": "components_document",
    "api/v2/incidents.json": "incidents_document",
    "api/v2/incidents/unresolved.json": "incidents_document",
    "api/v2/scheduled-maintenances.json": "scheduled_maintenances_document",
    "api/v2/scheduled-maintenances/upcoming.json": "scheduled_maintenances_document",
    "api/v2/scheduled-maintenances/active.json": "scheduled_maintenances_document",
}


def validate_statuspage(document: Any, which: str) -> None:
    schema = json.loads((DOCS / "statuspage-v2.schema.json").read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator(
        {**schema, "$ref": f"#/$defs/{which}"}, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    ).validate(document)


class Stage:
    """A runtime with the status site on, a clock moved by hand and an embedded runner."""

    def __init__(self, rt: Runtime, root: Path, start: datetime) -> None:
        self.rt, self.root = rt, root
        self.clock = ManualClock(start)
        rt.clock = self.clock
        self.runner = EmbeddedRunner(rt)

    def say(self, inc: Incident, message: str, status: IncidentStatus, **fields: Any) -> int:
        fields.setdefault(
            "next_update_at",
            None if status is IncidentStatus.RESOLVED else self.clock.at + timedelta(hours=1),
        )
        published = publish(self.rt, draft(inc, message, status=status, **fields), self.runner.queue)
        self.runner.run_until_idle()
        return published.update.id

    def impact(
        self, inc: Incident, component: str, level: str, at: datetime, update_id: int | None = None
    ) -> None:
        """What issue 15's release writes: one row per component each time an update changes it."""
        with self.rt.engine.begin() as conn:
            conn.execute(
                insert(component_impacts),
                {
                    "incident_id": inc.id,
                    "component": component,
                    "impact": level,
                    "effective_at": at,
                    "source": "update",
                    "update_id": update_id,
                },
            )

    def files(self) -> dict[str, bytes]:
        return site_files(self.root)

    def json(self, name: str) -> Any:
        return json.loads(self.files()[name])


@pytest.fixture
def stage(make_runtime: Callable[..., Runtime], tmp_path: Path) -> Stage:
    options = site_options(tmp_path)
    options["components"] = []
    rt = with_statuspage(make_runtime, options, public_url="https://tocsin.example.com")
    made = Stage(rt, tmp_path / "www" / "status", T0 - timedelta(days=30))
    create_component(rt, ComponentDraft(name="API", description="The public REST API"))
    create_component(rt, ComponentDraft(name="Checkout", group="Payments"))
    create_component(rt, ComponentDraft(name="Refunds", group="Payments"))
    return made


def checkout_outage(stage: Stage) -> Incident:
    """Three days before T0, checkout is fully down for an hour, then half down for an hour."""
    stage.clock.at = T0 - timedelta(days=3)
    inc = incident(stage.rt, Severity.MAJOR, ["Checkout"])
    start = stage.clock.at
    first = stage.say(inc, "Nobody can pay.", IncidentStatus.INVESTIGATING)
    stage.impact(inc, "Checkout", "major_outage", start, first)
    stage.clock.at = start + timedelta(hours=1)
    second = stage.say(inc, "Card payments work again; wallets do not.", IncidentStatus.IDENTIFIED)
    stage.impact(inc, "Checkout", "partial_outage", stage.clock.at, second)
    stage.clock.at = start + timedelta(minutes=80)
    stage.say(inc, "A fix is out; we are watching it.", IncidentStatus.MONITORING)
    stage.clock.at = start + timedelta(hours=2)
    last = stage.say(inc, "Every payment works again. We are sorry.", IncidentStatus.RESOLVED)
    stage.impact(inc, "Checkout", "operational", stage.clock.at, last)
    return inc


def test_each_component_shows_its_90_day_bar_and_weighted_uptime(stage: Stage) -> None:
    inc = checkout_outage(stage)
    stage.clock.at = T0
    republish_site(stage.rt)

    document = stage.json("tocsin-status.json")
    validate(document)
    parts = {c["name"]: c for c in document["components"]}
    assert [c["name"] for c in document["components"]] == ["API", "Checkout", "Refunds"]
    assert (parts["Checkout"]["group"], parts["API"]["description"]) == ("Payments", "The public REST API")
    checkout = parts["Checkout"]
    assert len(checkout["days"]) == 90 and checkout["days"][-1]["date"] == T0.date().isoformat()
    bad_day = {d["date"]: d for d in checkout["days"]}[(T0 - timedelta(days=3)).date().isoformat()]
    downtime = 3600 * 1.0 + 3600 * 0.3  # an hour of major outage, an hour of partial outage
    assert bad_day["uptime"] == pytest.approx(1 - downtime / 86400)
    assert bad_day["worst"] == "major_outage"
    assert bad_day["incidents"] == [
        {"id": inc.id, "title": "Checkout failing", "path": f"incidents/{inc.id}.html"}
    ]
    assert parts["API"]["uptime"] == 1.0 and parts["API"]["days"][-1]["worst"] == "operational"
    assert parts["Checkout"]["status"] == "operational", "resolved: back to operational"
    assert [d["uptime"] for d in parts["Checkout"]["days"][:59]] == [None] * 59, "it exists for 30 days"
    assert parts["Checkout"]["days"][60]["uptime"] == 1.0

    index = stage.files()["index.html"].decode()
    bar = re.search(r'<section class="component" data-component="checkout".*?</section>', index, re.S)
    assert bar is not None
    label = f"{(T0 - timedelta(days=3)).date():%d %b %Y}: 94.58% uptime, major outage"
    assert label in bar.group(0), "the troubled day is a link whose text says what happened"
    assert f'href="components/checkout.html#d-{(T0 - timedelta(days=3)).date()}"' in bar.group(0)
    assert "<script" not in index
    assert index.index(">Payments<") < index.index('data-component="checkout"')

    page = stage.files()["components/checkout.html"].decode()
    day = re.search(
        rf'<article class="card day" id="d-{(T0 - timedelta(days=3)).date()}">.*?</article>', page, re.S
    )
    assert day is not None and f'href="../incidents/{inc.id}.html"' in day.group(0)
    assert "Checkout failing" in day.group(0) and "94.58% uptime" in day.group(0)


def test_a_status_set_by_hand_shows_at_once_and_counts_in_the_history(stage: Stage) -> None:
    stage.clock.at = T0
    set_component_status(stage.rt, "api", "degraded", actor="alice")
    results = republish_site(stage.rt)
    assert results == {"directory": None}

    document = stage.json("tocsin-status.json")
    assert {c["name"]: c["status"] for c in document["components"]}["API"] == "degraded_performance"
    assert document["status"]["indicator"] == "minor"
    stage.clock.at = T0 + timedelta(hours=6)
    set_component_status(stage.rt, "API", "major outage", actor="alice")
    stage.clock.at = T0 + timedelta(hours=7)
    set_component_status(stage.rt, "API", "operational", actor="alice")
    republish_site(stage.rt)
    api = {c["name"]: c for c in stage.json("tocsin-status.json")["components"]}["API"]
    assert api["status"] == "operational"
    assert api["days"][-1]["worst"] == "major_outage"
    assert api["days"][-1]["uptime"] == pytest.approx(1 - 3600 / (7 * 3600 + 9 * 3600))
    components = stage.json("api/v2/components.json")["components"]
    assert {c["name"]: c["status"] for c in components}["API"] == "operational"


def test_the_statuspage_files_match_their_schema_and_say_what_the_page_says(stage: Stage) -> None:
    checkout_outage(stage)
    stage.clock.at = T0
    api_down = incident(stage.rt, Severity.MAJOR, ["API"])
    update_id = stage.say(api_down, "The API answers 503 to everyone.", IncidentStatus.INVESTIGATING)
    stage.impact(api_down, "API", "major_outage", T0, update_id)
    window = schedule_maintenance(
        stage.rt,
        stage.runner.queue,
        MaintenanceDraft(
            title="Database upgrade",
            starts_at=T0 + timedelta(days=2),
            ends_at=T0 + timedelta(days=2, hours=1),
            components=["Refunds"],
        ),
    )
    stage.runner.run_until_idle()

    files = stage.files()
    for name, which in STATUSPAGE_DOCUMENTS.items():
        validate_statuspage(json.loads(files[name]), which)
    summary = json.loads(files["api/v2/summary.json"])
    assert (
        summary["page"]["name"] == "Example Corp" and summary["page"]["url"] == "https://status.example.com"
    )
    assert summary["status"] == {"indicator": "major", "description": "Partial System Outage"}
    by_id = {c["id"]: c for c in summary["components"]}
    assert by_id["api"]["status"] == "major_outage"
    group = next(c for c in summary["components"] if c["group"])
    assert (group["name"], group["components"]) == ("Payments", ["checkout", "refunds"])
    assert by_id["checkout"]["group_id"] == group["id"]
    [open_one] = summary["incidents"]
    assert (open_one["id"], open_one["impact"], open_one["status"]) == (
        str(api_down.id),
        "major",
        "investigating",
    )
    assert open_one["incident_updates"][0]["body"] == "The API answers 503 to everyone."
    assert open_one["incident_updates"][0]["affected_components"] == [
        {"code": "API", "name": "API", "new_status": "major_outage"}
    ]
    assert open_one["shortlink"] == f"https://status.example.com/incidents/{api_down.id}.html"
    [planned] = summary["scheduled_maintenances"]
    assert (planned["id"], planned["status"]) == (str(window.id), "scheduled")
    assert planned["scheduled_for"] == f"{T0 + timedelta(days=2):%Y-%m-%dT%H:%M:%S}.000Z"
    everything = json.loads(files["api/v2/incidents.json"])["incidents"]
    assert [(i["id"], i["status"]) for i in everything] == [
        (str(api_down.id), "investigating"),
        (str(api_down.id - 1), "resolved"),
    ], "newest first, resolved ones too"
    assert [i["id"] for i in json.loads(files["api/v2/incidents/unresolved.json"])["incidents"]] == [
        str(api_down.id)
    ]
    assert json.loads(files["api/v2/scheduled-maintenances/active.json"])["scheduled_maintenances"] == []
    upcoming = json.loads(files["api/v2/scheduled-maintenances/upcoming.json"])["scheduled_maintenances"]
    assert [m["name"] for m in upcoming] == ["Database upgrade"]
    assert json.loads(files["api/v2/status.json"])["status"]["indicator"] == "major"


def test_badges_banner_component_feeds_and_the_maintenance_calendar(stage: Stage) -> None:
    checkout_outage(stage)
    stage.clock.at = T0
    api_down = incident(stage.rt, Severity.MAJOR, ["API"])
    stage.say(api_down, "API errors for some.", IncidentStatus.INVESTIGATING)
    kept = schedule_maintenance(
        stage.rt,
        stage.runner.queue,
        MaintenanceDraft(
            title="Network work", starts_at=T0 + timedelta(days=1), ends_at=T0 + timedelta(days=1, hours=2)
        ),
    )
    dropped = schedule_maintenance(
        stage.rt,
        stage.runner.queue,
        MaintenanceDraft(
            title="Disk swap", starts_at=T0 + timedelta(days=3), ends_at=T0 + timedelta(days=3, hours=1)
        ),
    )
    stage.runner.run_until_idle()
    cancel_maintenance(stage.rt, stage.runner.queue, dropped.id)
    stage.runner.run_until_idle()
    files = stage.files()

    badge = ET.fromstring(files["badge.svg"])
    assert badge.get("aria-label") == "status: Partial outage"
    assert badge.findtext("{http://www.w3.org/2000/svg}title") == "status: Partial outage"
    api_badge = ET.fromstring(files["badges/api.svg"])
    assert api_badge.get("aria-label") == "API: Partial outage"
    assert ET.fromstring(files["badges/refunds.svg"]).get("aria-label") == "Refunds: Operational"

    banner = files["embed/banner.html"].decode()
    assert "<script" not in banner and "Partial outage" in banner and "Checkout failing" in banner
    assert 'target="_blank"' in banner and 'href="../index.html"' in banner

    feed = ET.fromstring(files["components/checkout.atom"])
    entries = [e.findtext(f"{ATOM}content") for e in feed.findall(f"{ATOM}entry")]
    assert entries == [
        "Every payment works again. We are sorry.",
        "A fix is out; we are watching it.",
        "Card payments work again; wallets do not.",
        "Nobody can pay.",
    ], "only the updates of incidents naming Checkout"
    assert feed.findtext(f"{ATOM}title") == "Example Corp status: Checkout"
    assert [
        e.findtext(f"{ATOM}content")
        for e in ET.fromstring(files["components/api.atom"]).findall(f"{ATOM}entry")
    ] == ["API errors for some."]

    calendar = Calendar.from_ical(files["maintenance.ics"])
    events = {str(e["summary"]): e for e in calendar.walk("VEVENT")}
    assert set(events) == {"Maintenance: Network work", "Maintenance: Disk swap"}
    network = events["Maintenance: Network work"]
    assert network.decoded("dtstart") == T0 + timedelta(days=1)
    assert network.decoded("dtend") == T0 + timedelta(days=1, hours=2)
    assert str(network["status"]) == "CONFIRMED"
    assert str(network["uid"]) == f"maintenance-{kept.id}@status.example.com"
    assert str(network["url"]) == f"https://status.example.com/incidents/{kept.id}.html"
    assert str(events["Maintenance: Disk swap"]["status"]) == "CANCELLED", (
        "calendars drop the cancelled event"
    )

    index = files["index.html"].decode()
    assert 'href="https://tocsin.example.com/subscribe"' in index, "the page links to the subscribe form"


def test_staffs_internal_site_goes_to_its_own_target_only(
    make_runtime: Callable[..., Runtime], tmp_path: Path
) -> None:
    options = {**site_options(tmp_path), "internal_directory": str(tmp_path / "staff" / "status")}
    rt = with_statuspage(make_runtime, options)
    stage = Stage(rt, tmp_path / "www" / "status", T0)
    inc = incident(rt, Severity.MAJOR, ["Checkout"])
    stage.say(
        inc, "Checkout fails for some.", IncidentStatus.INVESTIGATING, internal_note="NOTE: deploy 4711"
    )
    public_before = stage.files()
    stage.say(inc, "STAFF-ONLY: rolling back 4711.", IncidentStatus.IDENTIFIED, audience=Audience.INTERNAL)

    assert stage.files() == public_before, "an internal update leaves the public site as it was"
    public_text = b"".join(public_before.values())
    assert b"NOTE: deploy 4711" not in public_text and b"STAFF-ONLY" not in public_text
    staff = site_files(tmp_path / "staff" / "status")
    page = staff[f"incidents/{inc.id}.html"].decode()
    assert "STAFF-ONLY: rolling back 4711." in page and "(to internal only)" in page
    assert "NOTE: deploy 4711" in page
    assert '<meta name="robots" content="noindex, nofollow">' in staff["index.html"].decode()
    assert "Internal status page: staff only" in staff["index.html"].decode()
    assert json.loads(staff["tocsin-status.json"])["audience"] == "internal"


def test_the_internal_site_cannot_be_the_public_folder(
    make_runtime: Callable[..., Runtime], tmp_path: Path
) -> None:
    options = {**site_options(tmp_path), "internal_directory": str(tmp_path / "www" / "status" / "staff")}
    # Refused when the runtime is built (start-up), before anything could be published there.
    with pytest.raises(ConfigurationError, match="internal_directory: must not be the public directory"):
        with_statuspage(make_runtime, options)


def test_the_examples_in_the_documentation_match_the_schemas() -> None:
    text = (DOCS / "status-json.md").read_text(encoding="utf-8")
    own, summary = (json.loads(block) for block in re.findall(r"```json\n(.*?)```", text, re.S))
    validate(own)
    validate_statuspage(summary, "summary")
