"""The status page adapter on its own: what its pages say and how safely it publishes them.

No database here: snapshots are built by hand, the adapter renders them with the packaged templates
and publishes to a real folder and to a real S3 HTTP server (moto's ThreadedMotoServer on 127.0.0.1).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from channels import registry
from channels.base import ChannelKind, Message, Outcome, Recipient
from channels.statuspage.adapter import StatusPageAdapter
from channels.statuspage.directory import DirectoryPublisher
from channels.statuspage.model import StatusSnapshot
from channels.statuspage.s3 import upload_order
from dispatcher.rendering.renderer import packaged_templates_dir

T0 = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
ATOM = "{http://www.w3.org/2005/Atom}"
HOSTILE = '<script>alert("x")</script> & "friends"'
SECRET = "sEcReT-key-that-must-never-be-logged"


def snapshot(title: str = "Checkout failing", message: str = "Checkout fails.", n: int = 1) -> StatusSnapshot:
    """An open major incident on Checkout with ``n`` public updates, as the dispatcher would build it."""
    updates = [
        {
            "id": i,
            "status": "investigating",
            "message": f"{message} ({i})",
            "published_at": T0 + timedelta(minutes=i),
        }
        for i in range(n, 0, -1)
    ]
    return StatusSnapshot.model_validate(
        {
            "organisation": "Example <Corp>",
            "site_url": "https://status.example.com",
            "generated_at": T0 + timedelta(minutes=n),
            "last_update_id": n,
            "status": {"indicator": "major", "description": "Partial outage"},
            "components": [
                {"name": "API", "status": "operational"},
                {"name": "Checkout", "status": "partial_outage"},
            ],
            "incidents": [
                {
                    "id": 7,
                    "title": title,
                    "status": "investigating",
                    "severity": "major",
                    "components": ["Checkout"],
                    "opened_at": T0,
                    "updated_at": updates[0]["published_at"],
                    "path": "incidents/7.html",
                    "updates": updates,
                }
            ],
        }
    )


def message(snap: StatusSnapshot) -> Message:
    return Message(
        kind=ChannelKind.STATUSPAGE,
        update_id=snap.last_update_id or 0,
        incident_id=7,
        subject="status",
        text="status",
        json_body=snap.model_dump_json(),
    )


def adapter(**options: Any) -> StatusPageAdapter:
    options.setdefault("template_dirs", [str(packaged_templates_dir())])
    made = registry.create("statuspage", options)
    assert isinstance(made, StatusPageAdapter)
    return made


def publish(site: StatusPageAdapter, snap: StatusSnapshot, to: str = "directory") -> Outcome:
    [result] = site.send(message(snap), [Recipient(delivery_id=1, address=to)])
    return result.outcome


# ---------------------------------------------------------------------------------------------- pages


def test_titles_and_messages_show_as_text_never_as_markup(tmp_path: Path) -> None:
    site = adapter(directory=str(tmp_path / "status"))
    _, files = site.render(message(snapshot(title=HOSTILE, message=HOSTILE)))

    for name in ("index.html", "incidents/7.html", "feed.atom"):
        text = files[name].decode()
        assert "<script>" not in text, name
        assert "&lt;script&gt;" in text, name
    feed = ET.fromstring(files["feed.atom"])
    assert feed.findtext(f"{ATOM}title") == "Example <Corp> status"
    [entry] = feed.findall(f"{ATOM}entry")
    assert entry.findtext(f"{ATOM}title") == f"{HOSTILE}: Investigating"
    assert entry.findtext(f"{ATOM}content") == f"{HOSTILE} (1)"
    assert json.loads(files["status.json"])["incidents"][0]["title"] == HOSTILE


def test_pages_work_on_a_phone_without_javascript_and_say_states_in_words(tmp_path: Path) -> None:
    site = adapter(directory=str(tmp_path / "status"))
    _, files = site.render(message(snapshot()))

    for name in ("index.html", "incidents/7.html", "history.html"):
        page = files[name].decode()
        assert page.startswith("<!doctype html>")
        assert '<html lang="en">' in page
        assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in page
        assert "<script" not in page, "no JavaScript needed"
        assert page.count("<h1>") == 1
        assert "<style>" in page and '<link rel="stylesheet"' not in page, "CSS inline: one request"
    index = files["index.html"].decode()
    assert '<span aria-hidden="true">! </span>Partial outage' in index, (
        "the state is written, not only coloured"
    )
    assert "Operational" in index
    assert 'href="incidents/7.html"' in index
    assert 'href="../index.html"' in files["incidents/7.html"].decode()


def test_the_feed_is_atom_with_stable_ids(tmp_path: Path) -> None:
    site = adapter(directory=str(tmp_path / "status"))
    _, first = site.render(message(snapshot(n=2)))
    _, later = site.render(message(snapshot(n=3)))

    def ids(files: Mapping[str, bytes]) -> list[str]:
        feed = ET.fromstring(files["feed.atom"])
        assert feed.find(f"{ATOM}author/{ATOM}name") is not None
        self_link = [link for link in feed.findall(f"{ATOM}link") if link.get("rel") == "self"]
        assert self_link[0].get("href") == "https://status.example.com/feed.atom"
        return [e.findtext(f"{ATOM}id", "") for e in feed.findall(f"{ATOM}entry")]

    assert len(ids(first)) == 2 and len(ids(later)) == 3
    assert ids(later)[1:] == ids(first), "an entry keeps its id from one publish to the next"
    assert ET.fromstring(later["feed.atom"]).findtext(f"{ATOM}updated") == "2026-11-25T09:03:00Z"


# ---------------------------------------------------------------------------------------------- folder


def test_a_reader_never_sees_a_partial_site(tmp_path: Path) -> None:
    """Publishing swaps a symlink: a reader gets the whole old file or the whole new one."""
    root = tmp_path / "status"
    site = adapter(directory=str(root), keep_versions=2)
    assert publish(site, snapshot(n=1)) is Outcome.SENT
    stop = threading.Event()
    seen: set[int] = set()
    problems: list[str] = []

    def read() -> None:
        while not stop.is_set():
            try:
                index = (root / "index.html").read_text()
                status = json.loads((root / "status.json").read_text())
            except (OSError, ValueError) as exc:
                problems.append(repr(exc))
                continue
            if not index.rstrip().endswith("</html>"):
                problems.append("partial index.html")
            seen.add(status["last_update_id"])

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for n in range(2, 30):
            assert publish(site, snapshot(n=n, message="Long text. " * 200)) is Outcome.SENT
    finally:
        stop.set()
        reader.join()

    assert problems == []
    assert len(seen) > 1, "the reader saw the site change while it read"
    assert json.loads((root / "status.json").read_text())["last_update_id"] == 29
    assert root.is_symlink()
    versions = [p for p in (tmp_path / ".status.versions").iterdir() if p.is_dir()]
    assert len(versions) == 3, "the live version and the 2 before it are kept; older ones removed"


def tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


class FailingFiles(Mapping[str, bytes]):
    """A site whose writing fails half-way (as a full disk would)."""

    def __init__(self, files: Mapping[str, bytes], fail_after: int) -> None:
        self.files, self.fail_after = dict(files), fail_after

    def __getitem__(self, key: str) -> bytes:
        return self.files[key]

    def __len__(self) -> int:
        return len(self.files)

    def __iter__(self) -> Iterator[str]:
        for i, name in enumerate(self.files):
            if i == self.fail_after:
                raise OSError(28, "No space left on device")
            yield name


def test_a_failure_while_writing_leaves_the_old_site(tmp_path: Path) -> None:
    root = tmp_path / "status"
    site = adapter(directory=str(root))
    assert publish(site, snapshot(n=1)) is Outcome.SENT
    before = tree(root)
    _, new_files = site.render(message(snapshot(n=2)))
    publisher = DirectoryPublisher(root)

    with pytest.raises(OSError, match="No space"):
        publisher.publish(FailingFiles(new_files, fail_after=3), "99999999T000000000000Z-u000000000002")

    assert tree(root) == before
    assert len([p for p in (tmp_path / ".status.versions").iterdir() if p.is_dir()]) == 1


def test_an_older_snapshot_never_replaces_a_newer_site(tmp_path: Path, s3_endpoint: str) -> None:
    """Two updates published at once: the later snapshot may go out first; the earlier one then
    changes nothing, in the folder or in the bucket."""
    root = tmp_path / "status"
    bucket = new_bucket(s3_endpoint)
    site = adapter(directory=str(root), **s3_options(s3_endpoint, bucket))
    both = [Recipient(1, "directory"), Recipient(2, "s3")]
    assert [r.outcome for r in site.send(message(snapshot(n=3)), both)] == [Outcome.SENT] * 2
    older = site.send(message(snapshot(n=2)), both)

    assert [r.outcome for r in older] == [Outcome.SENT] * 2, "nothing to do is a success"
    assert json.loads((root / "status.json").read_text())["last_update_id"] == 3
    body = s3(s3_endpoint).get_object(Bucket=bucket, Key="status.json")["Body"].read()
    assert json.loads(body)["last_update_id"] == 3


def test_a_folder_holding_other_files_is_refused_and_an_empty_one_is_taken(tmp_path: Path) -> None:
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "index.html").write_text("someone else's page")
    [result] = adapter(directory=str(taken)).send(message(snapshot()), [Recipient(1, "directory")])
    assert result.outcome is Outcome.FAILED
    assert result.error is not None and "already holds files" in result.error
    assert (taken / "index.html").read_text() == "someone else's page"

    empty = tmp_path / "empty"
    empty.mkdir()
    assert publish(adapter(directory=str(empty)), snapshot()) is Outcome.SENT
    assert empty.is_symlink() and (empty / "index.html").exists()
    assert oct((empty / "index.html").stat().st_mode & 0o777) == oct(0o644), "readable by the web server"


# ---------------------------------------------------------------------------------------------- S3


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def s3_options(endpoint: str, bucket: str, **more: Any) -> dict[str, Any]:
    return {
        "s3_bucket": bucket,
        "s3_endpoint_url": endpoint,
        "s3_region": "us-east-1",
        "s3_access_key_id": "AKIDEXAMPLE",
        "s3_secret_access_key": SECRET,
        **more,
    }


def s3(endpoint: str) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="AKIDEXAMPLE",
        aws_secret_access_key=SECRET,
    )


def new_bucket(endpoint: str) -> str:
    name = f"status-{uuid.uuid4().hex[:10]}"
    s3(endpoint).create_bucket(Bucket=name)
    return name


def test_s3_uploads_the_index_last_and_never_logs_the_secret(
    s3_endpoint: str, caplog: pytest.LogCaptureFixture
) -> None:
    bucket = new_bucket(s3_endpoint)
    client = s3(s3_endpoint)
    site = adapter(**s3_options(s3_endpoint, bucket, s3_prefix="/public/"))
    caplog.set_level(logging.DEBUG)

    assert publish(site, snapshot(), to="s3") is Outcome.SENT

    keys = [o["Key"] for o in client.list_objects_v2(Bucket=bucket)["Contents"]]
    rendered = list(site.renderer.render(snapshot()))
    assert sorted(keys) == sorted(f"public/{k}" for k in rendered)
    assert {"public/index.html", "public/incidents/7.html", "public/api/v2/summary.json"} <= set(keys)
    # What the S3 server logged receiving, in order.
    puts = [r.getMessage() for r in caplog.records if r.name == "werkzeug" and '"PUT /' in r.getMessage()]
    order = [line.split(f"/{bucket}/public/")[1].split(" ")[0] for line in puts if "/public/" in line]
    assert order == upload_order(rendered)
    assert order.index("incidents/7.html") < order.index("api/v2/summary.json") < order.index("index.html")
    assert order[-1] == "index.html"
    assert SECRET not in caplog.text
    assert SECRET not in repr(site.options) and SECRET not in repr(site.s3)


def test_s3_errors_are_told_apart(s3_endpoint: str) -> None:
    missing = adapter(**s3_options(s3_endpoint, "no-such-bucket-here"))
    [result] = missing.send(message(snapshot()), [Recipient(1, "s3")])
    assert result.outcome is Outcome.FAILED, "a missing bucket will not appear by retrying"
    assert result.error is not None and "NoSuchBucket" in result.error and SECRET not in result.error

    down = adapter(**s3_options(closed_port_url(), "some-bucket", s3_timeout=1))
    [result] = down.send(message(snapshot()), [Recipient(1, "s3")])
    assert result.outcome is Outcome.RETRY, "a server that does not answer may answer later"
    assert result.error is not None and SECRET not in result.error


def closed_port_url() -> str:
    """An address on 127.0.0.1 where nothing listens."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def test_options_name_what_is_wrong() -> None:
    with pytest.raises(registry.InvalidProviderOptions, match="directory and/or s3_bucket"):
        registry.create("statuspage", {"template_dirs": [str(packaged_templates_dir())]})
    with pytest.raises(registry.InvalidProviderOptions, match="both s3_access_key_id") as caught:
        registry.create(
            "statuspage",
            {"template_dirs": ["t"], "s3_bucket": "bucket", "s3_secret_access_key": SECRET},
        )
    assert SECRET not in str(caught.value)


def test_unknown_destinations_fail_alone(tmp_path: Path) -> None:
    site = adapter(directory=str(tmp_path / "status"))
    results = site.send(message(snapshot()), [Recipient(1, "directory"), Recipient(2, "s3")])
    assert [r.outcome for r in results] == [Outcome.SENT, Outcome.FAILED]
    assert results[1].error is not None and "configured: directory" in results[1].error
    assert os.path.islink(tmp_path / "status")
