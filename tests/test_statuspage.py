"""The status page: publishing an update rebuilds a static site (HTML, status.json, Atom) and puts it in a
folder and an S3 bucket (a real S3 HTTP server: moto's ThreadedMotoServer on 127.0.0.1)."""

from __future__ import annotations

import json
import socket
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import jsonschema
import pytest
from moto.server import ThreadedMotoServer
from sqlalchemy import select

from channels.base import ChannelKind
from dispatcher.comms.maintenance import MaintenanceDraft, advance_maintenance, schedule_maintenance
from dispatcher.comms.publish import publish
from dispatcher.config.settings import ChannelSettings
from dispatcher.domain.models import Audience, Incident, IncidentStatus, Severity
from dispatcher.engine.runtime import Runtime
from dispatcher.runners.embedded import EmbeddedRunner
from dispatcher.store.schema import deliveries
from tests.helpers import draft, incident, publish_and_deliver, states

DOCS = Path(__file__).resolve().parent.parent / "docs" / "pages"
ATOM = "{http://www.w3.org/2005/Atom}"
KEY_ID, SECRET = "AKIDSTATUSPAGE", "sEcReT-status-page-key-do-not-log"


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def s3_client(endpoint: str) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=KEY_ID,
        aws_secret_access_key=SECRET,
    )


@pytest.fixture
def bucket(s3_endpoint: str) -> str:
    name = f"status-{uuid.uuid4().hex[:12]}"
    s3_client(s3_endpoint).create_bucket(Bucket=name)
    return name


def site_options(tmp_path: Path, endpoint: str | None = None, bucket: str | None = None) -> dict[str, Any]:
    options: dict[str, Any] = {
        "directory": str(tmp_path / "www" / "status"),
        "components": ["API", "Checkout"],
    }
    if bucket is not None:
        options.update(
            s3_bucket=bucket,
            s3_prefix="status/",
            s3_endpoint_url=endpoint,
            s3_region="us-east-1",
            s3_access_key_id=KEY_ID,
            s3_secret_access_key=SECRET,
        )
    return options


def with_statuspage(make_runtime: Callable[..., Runtime], options: dict[str, Any], **more: Any) -> Runtime:
    return make_runtime(
        channels={ChannelKind.STATUSPAGE: ChannelSettings(providers=["statuspage"], enabled=True)},
        providers={"statuspage": options},
        organisation="Example Corp",
        status_page_url="https://status.example.com",
        **more,
    )


def site_files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def bucket_objects(endpoint: str, name: str) -> dict[str, dict[str, Any]]:
    client = s3_client(endpoint)
    found = {}
    for item in client.list_objects_v2(Bucket=name).get("Contents", []):
        obj = client.get_object(Bucket=name, Key=item["Key"])
        found[item["Key"]] = {
            "body": obj["Body"].read(),
            "type": obj["ContentType"],
            "cache": obj.get("CacheControl"),
        }
    return found


def schema() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((DOCS / "status.schema.json").read_text(encoding="utf-8"))
    return loaded


def validate(document: Any) -> None:
    jsonschema.Draft202012Validator(
        schema(), format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    ).validate(document)


def test_an_update_publishes_the_site_to_the_folder_and_the_bucket(
    make_runtime: Callable[..., Runtime], tmp_path: Path, s3_endpoint: str, bucket: str
) -> None:
    rt = with_statuspage(make_runtime, site_options(tmp_path, s3_endpoint, bucket))
    inc = incident(rt, Severity.MAJOR, ["Checkout"])
    first = publish_and_deliver(rt, draft(inc, "A third of checkouts fail.\n\nWe are looking."))
    publish_and_deliver(
        rt,
        draft(
            inc,
            "INTERNAL-ONLY: the 09:05 deploy broke the payment client.",
            audience=Audience.INTERNAL,
        ),
    )
    second = publish_and_deliver(
        rt,
        draft(
            inc,
            "We found the cause and are rolling back.",
            status=IncidentStatus.IDENTIFIED,
            internal_note="NOTE-FOR-STAFF: Bob's deploy",
        ),
    )

    assert states(rt, first.update.id, ChannelKind.STATUSPAGE) == {"sent": 2}, "one row per destination"
    assert states(rt, second.update.id, ChannelKind.STATUSPAGE) == {"sent": 2}
    root = tmp_path / "www" / "status"
    files = site_files(root)
    page = f"incidents/{inc.id}.html"
    assert {"index.html", "status.json", "feed.atom", "history.html", page} <= set(files)

    status = json.loads(files["status.json"])
    validate(status)
    assert status["status"] == {"indicator": "major", "description": "Partial outage"}
    assert [(c["name"], c["status"]) for c in status["components"]] == [
        ("API", "operational"),
        ("Checkout", "partial_outage"),
    ]
    [shown] = status["incidents"]
    assert (shown["title"], shown["status"], shown["path"]) == ("Checkout failing", "identified", page)
    assert [u["message"] for u in shown["updates"]] == [
        "We found the cause and are rolling back.",
        "A third of checkouts fail.\n\nWe are looking.",
    ]
    assert status["last_update_id"] == second.update.id

    index = files["index.html"].decode()
    assert f'href="{page}"' in index, "open incidents link to their page from the index"
    assert "We found the cause and are rolling back." in index
    assert "Partial outage" in index
    timeline = files[page].decode()
    assert timeline.index("We found the cause") < timeline.index("A third of checkouts fail.")

    feed = ET.fromstring(files["feed.atom"])
    assert feed.tag == f"{ATOM}feed"
    for required in ("id", "title", "updated"):
        assert (feed.findtext(f"{ATOM}{required}") or "").strip()
    entries = feed.findall(f"{ATOM}entry")
    assert [e.findtext(f"{ATOM}content") for e in entries] == [u["message"] for u in shown["updates"]]
    for entry in entries:
        assert entry.findtext(f"{ATOM}id", "").startswith("urn:uuid:")
        assert entry.findtext(f"{ATOM}updated")
        link = entry.find(f"{ATOM}link")
        assert link is not None and link.get("href") == f"https://status.example.com/{page}"

    objects = bucket_objects(s3_endpoint, bucket)
    assert {key.removeprefix("status/"): o["body"] for key, o in objects.items()} == files
    assert objects["status/index.html"]["type"].startswith("text/html")
    assert objects["status/status.json"]["type"] == "application/json"
    assert objects["status/feed.atom"]["type"] == "application/atom+xml"
    for live in ("index.html", "status.json", "feed.atom"):
        assert objects[f"status/{live}"]["cache"] == "public, max-age=60"
    assert objects[f"status/{page}"]["cache"] == "public, max-age=300"

    everything = b"".join(files.values()) + b"".join(o["body"] for o in objects.values())
    assert b"INTERNAL-ONLY" not in everything, "internal updates never reach the status page"
    assert b"NOTE-FOR-STAFF" not in everything, "internal notes never reach the status page"


def test_an_internal_update_does_not_publish_the_page(
    make_runtime: Callable[..., Runtime], tmp_path: Path
) -> None:
    rt = with_statuspage(make_runtime, site_options(tmp_path))
    inc = incident(rt)
    internal = publish_and_deliver(rt, draft(inc, "Staff only: looking at it.", audience=Audience.INTERNAL))

    assert ChannelKind.STATUSPAGE not in internal.update.channels
    assert not (tmp_path / "www" / "status").exists(), "nothing public to show yet"


def test_a_broken_template_fails_the_publish_and_leaves_the_old_site(
    make_runtime: Callable[..., Runtime], tmp_path: Path, s3_endpoint: str, bucket: str
) -> None:
    options = site_options(tmp_path, s3_endpoint, bucket)
    rt = with_statuspage(make_runtime, options)
    inc = incident(rt)
    publish_and_deliver(rt, draft(inc, "First words."))
    root = tmp_path / "www" / "status"
    before = site_files(root)
    in_bucket = bucket_objects(s3_endpoint, bucket)

    overrides = tmp_path / "my-templates" / "statuspage"
    overrides.mkdir(parents=True)
    (overrides / "incident.html.j2").write_text("<h1>{{ item.title }}</h1>{{ no_such_variable }}\n")
    broken = with_statuspage(make_runtime, options, templates_dir=tmp_path / "my-templates")
    second = publish_and_deliver(broken, draft(inc, "Second words.", status=IncidentStatus.IDENTIFIED))

    assert states(broken, second.update.id, ChannelKind.STATUSPAGE) == {"failed": 2}
    with broken.engine.connect() as conn:
        errors = set(
            conn.execute(
                select(deliveries.c.last_error)
                .where(deliveries.c.update_id == second.update.id)
                .where(deliveries.c.channel == ChannelKind.STATUSPAGE.value)
            ).scalars()
        )
    [error] = errors
    assert "incident.html.j2" in error and "no_such_variable" in error
    assert site_files(root) == before, "the old site is served, untouched"
    assert bucket_objects(s3_endpoint, bucket) == in_bucket
    versions = [p for p in (root.parent / ".status.versions").iterdir() if p.is_dir()]
    assert len(versions) == 1, "no half-written version is left behind"


class ManualClock:
    def __init__(self, start: datetime) -> None:
        self.at = start

    def now(self) -> datetime:
        return self.at


def test_maintenance_and_history_on_the_page(make_runtime: Callable[..., Runtime], tmp_path: Path) -> None:
    t0 = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
    rt = with_statuspage(make_runtime, site_options(tmp_path))
    clock = ManualClock(t0 - timedelta(days=120))
    rt.clock = clock
    runner = EmbeddedRunner(rt)

    def publish_now(inc: Incident, message: str, status: IncidentStatus) -> None:
        promise = None if status is IncidentStatus.RESOLVED else clock.at + timedelta(hours=1)
        publish(rt, draft(inc, message, status=status, next_update_at=promise), runner.queue)
        runner.run_until_idle()

    def resolve(inc: Incident, what: str) -> None:
        publish_now(inc, f"{what} down.", IncidentStatus.INVESTIGATING)
        publish_now(inc, f"{what} fixed; watching.", IncidentStatus.MONITORING)
        clock.at += timedelta(hours=2)  # past the policy's resolve hold
        publish_now(inc, f"{what} back.", IncidentStatus.RESOLVED)

    resolve(incident(rt, Severity.MINOR, ["API"]), "Old trouble")
    clock.at = t0 - timedelta(days=10)
    resolve(incident(rt, Severity.MAJOR, ["Checkout"]), "Checkout")
    clock.at = t0
    window = schedule_maintenance(
        rt,
        runner.queue,
        MaintenanceDraft(
            title="Database upgrade",
            starts_at=t0 + timedelta(hours=2),
            ends_at=t0 + timedelta(hours=3),
            components=["Database"],
        ),
    )
    runner.run_until_idle()

    status = json.loads((tmp_path / "www" / "status" / "status.json").read_text())
    validate(status)
    assert status["incidents"] == []
    assert [m["title"] for m in status["maintenance"]] == ["Database upgrade"]
    assert status["maintenance"][0]["maintenance_stage"] == "scheduled"
    assert [h["title"] for h in status["history"]] == ["Checkout failing"], "older than 90 days: gone"
    assert status["status"]["indicator"] == "none"
    index = (tmp_path / "www" / "status" / "index.html").read_text()
    assert "Scheduled maintenance" in index and "Database upgrade" in index

    clock.at = t0 + timedelta(hours=2, minutes=1)
    advance_maintenance(rt, runner.queue)
    runner.run_until_idle()
    status = json.loads((tmp_path / "www" / "status" / "status.json").read_text())
    validate(status)
    assert status["status"]["indicator"] == "maintenance"
    assert {c["name"]: c["status"] for c in status["components"]} == {
        "API": "operational",
        "Checkout": "operational",
        "Database": "under_maintenance",
    }
    history = (tmp_path / "www" / "status" / "history.html").read_text()
    assert "Checkout failing" in history and "Old trouble" not in history
    assert (tmp_path / "www" / "status" / f"incidents/{window.id}.html").exists()


def test_an_unreachable_bucket_is_retried_while_the_folder_is_published(
    make_runtime: Callable[..., Runtime], tmp_path: Path
) -> None:
    with socket.socket() as sock:  # a port on 127.0.0.1 where nothing listens
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}"
    options = site_options(tmp_path, dead, "status-bucket") | {"s3_timeout": 1}
    rt = make_runtime(
        channels={
            ChannelKind.STATUSPAGE: ChannelSettings(
                providers=["statuspage"], enabled=True, retry_schedule=[600.0]
            )
        },
        providers={"statuspage": options},
    )
    published = publish_and_deliver(rt, draft(incident(rt), "Checkout fails."))

    with rt.engine.connect() as conn:
        rows = {
            r.address: r
            for r in conn.execute(
                select(deliveries).where(
                    deliveries.c.update_id == published.update.id,
                    deliveries.c.channel == ChannelKind.STATUSPAGE.value,
                )
            )
        }
    assert rows["directory"].state == "sent"
    assert rows["s3"].state == "queued", "owed again later, like any delivery"
    assert rows["s3"].next_attempt_at is not None
    assert "status-bucket" in rows["s3"].last_error and SECRET not in rows["s3"].last_error
