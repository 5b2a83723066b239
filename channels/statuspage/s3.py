"""Publish the status site to S3-compatible object storage (AWS S3, MinIO, R2, Ceph…) with boto3.

Object storage has no atomic multi-object swap, so the order makes it safe: the pages that are linked
to (incident and component pages, history) go first, then the feeds, JSON files, badges and calendar,
and ``feed.atom``, ``status.json`` and ``index.html`` last.
A reader following a link from the new index therefore always finds the page it points to. Every
object gets a ``Content-Type`` and a ``Cache-Control``: a short ``max-age`` for the pages that change on
every publish (index, status.json, feed), a longer one for incident pages and the history.

Credentials come from the options or, when those are unset, boto3's usual chain (``AWS_ACCESS_KEY_ID``
/ ``AWS_SECRET_ACCESS_KEY`` / ``AWS_SESSION_TOKEN``, ``AWS_PROFILE``, instance roles). They are never
part of a message: errors name the bucket, key and S3 error code only.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, PartialCredentialsError

LIVE_FILES = ("feed.atom", "status.json", "index.html")
"""Uploaded last, in this order, with the short max-age."""
LIVE_PREFIXES = ("api/", "badges/", "embed/")
LIVE_NAMES = frozenset({"tocsin-status.json", "maintenance.ics", "badge.svg"})
"""Also change on every publish (short max-age), uploaded after the pages and before LIVE_FILES."""

VERSION_CARRIER = "status.json"
VERSION_METADATA = "tocsin-site-version"
"""User metadata (``x-amz-meta-tocsin-site-version``) on status.json: the version of the live site."""

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".json": "application/json",
    ".atom": "application/atom+xml",
    ".svg": "image/svg+xml",
    ".ics": "text/calendar; charset=utf-8",
}

_TRANSIENT_CODES = frozenset(
    {
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "RequestTimeout",
        "RequestTimeTooSkewed",
        "InternalError",
        "ServiceUnavailable",
    }
)


PROBE_KEY = ".tocsin-probe"
"""Written and deleted by the readiness probe, beside the site's files."""


class S3PublishError(Exception):
    """An upload failed; ``transient`` says whether trying again later may help."""

    def __init__(self, message: str, transient: bool) -> None:
        super().__init__(message)
        self.message = message
        self.transient = transient


@dataclass(frozen=True)
class S3Target:
    bucket: str
    prefix: str = ""
    endpoint_url: str | None = None
    region: str | None = None
    access_key_id: str | None = field(default=None, repr=False)
    secret_access_key: str | None = field(default=None, repr=False)
    session_token: str | None = field(default=None, repr=False)
    timeout: float = 10.0
    live_max_age: int = 60
    page_max_age: int = 300

    @property
    def where(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"


def is_live(name: str) -> bool:
    """Whether ``name`` changes on every publish (and gets the short max-age)."""
    return (
        name in LIVE_FILES or name in LIVE_NAMES or name.startswith(LIVE_PREFIXES) or name.endswith(".atom")
    )


def upload_order(names: list[str]) -> list[str]:
    """Linked pages first (sorted), then the other live files (feeds, JSON, badges, calendar), then
    feed.atom, status.json and index.html last."""
    pages = sorted(n for n in names if not is_live(n))
    live = sorted(n for n in names if is_live(n) and n not in LIVE_FILES)
    return pages + live + [n for n in LIVE_FILES if n in names]


def content_type(name: str) -> str:
    for suffix, kind in CONTENT_TYPES.items():
        if name.endswith(suffix):
            return kind
    return "application/octet-stream"


class S3Publisher:
    """Uploads whole sites to one bucket and prefix; the boto3 client is made once and shared."""

    def __init__(self, target: S3Target) -> None:
        self.target = target
        self._client: Any = None
        self._lock = threading.Lock()

    def client(self) -> Any:
        with self._lock:
            if self._client is None:
                t = self.target
                config = Config(
                    connect_timeout=t.timeout,
                    read_timeout=t.timeout,
                    retries={"max_attempts": 2, "mode": "standard"},
                    # Most S3-compatible servers behind a custom endpoint only understand path style.
                    s3={"addressing_style": "path" if t.endpoint_url else "auto"},
                )
                self._client = boto3.session.Session().client(
                    "s3",
                    endpoint_url=t.endpoint_url,
                    region_name=t.region,
                    aws_access_key_id=t.access_key_id,
                    aws_secret_access_key=t.secret_access_key,
                    aws_session_token=t.session_token,
                    config=config,
                )
            return self._client

    def cache_control(self, name: str) -> str:
        age = self.target.live_max_age if is_live(name) else self.target.page_max_age
        return f"public, max-age={age}"

    def live_version(self) -> str | None:
        """The version of the site in the bucket now (metadata of its ``status.json``), if any."""
        key = self.target.prefix + VERSION_CARRIER
        try:
            head = self.client().head_object(Bucket=self.target.bucket, Key=key)
        except ClientError as exc:
            if str(exc.response.get("Error", {}).get("Code")) in ("404", "NoSuchKey", "NotFound"):
                return None
            raise _client_error(self.target.bucket, key, exc) from None
        except BotoCoreError as exc:
            raise _boto_error(self.target.bucket, key, exc) from None
        version = head.get("Metadata", {}).get(VERSION_METADATA)
        return str(version) if version else None

    def publish(self, files: Mapping[str, bytes], version: str) -> bool:
        """Upload every file, linked pages first and the index last. Raises ``S3PublishError``.

        ``version`` sorts after the versions of older snapshots; it is kept on ``status.json``, and a
        site older than the one in the bucket is not uploaded (returns False): two publishes that raced
        never roll the site back.
        """
        live = self.live_version()
        if live is not None and live > version:
            return False
        client = self.client()
        for name in upload_order(list(files)):
            key = self.target.prefix + name
            try:
                client.put_object(
                    Bucket=self.target.bucket,
                    Key=key,
                    Body=files[name],
                    ContentType=content_type(name),
                    CacheControl=self.cache_control(name),
                    Metadata={VERSION_METADATA: version} if name == VERSION_CARRIER else {},
                )
            except ClientError as exc:
                raise _client_error(self.target.bucket, key, exc) from None
            except BotoCoreError as exc:
                raise _boto_error(self.target.bucket, key, exc) from None
        return True

    def probe(self) -> str | None:
        """Why the bucket cannot take the site (None when it can): a tiny object put, then deleted."""
        key = self.target.prefix + PROBE_KEY
        try:
            client = self.client()
            client.put_object(Bucket=self.target.bucket, Key=key, Body=b"tocsin readiness probe")
            client.delete_object(Bucket=self.target.bucket, Key=key)
        except ClientError as exc:
            return _client_error(self.target.bucket, key, exc).message
        except BotoCoreError as exc:
            return _boto_error(self.target.bucket, key, exc).message
        return None

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None


def _boto_error(bucket: str, key: str, exc: BotoCoreError) -> S3PublishError:
    if isinstance(exc, NoCredentialsError | PartialCredentialsError):
        return S3PublishError(
            f"s3://{bucket}/{key}: no usable S3 credentials (set s3_access_key_id and "
            "s3_secret_access_key, or the AWS_* environment)",
            transient=False,
        )
    # Connection refused, timeouts, DNS: the store may answer later.
    return S3PublishError(f"s3://{bucket}/{key}: {type(exc).__name__}: {exc}", transient=True)


def _client_error(bucket: str, key: str, exc: ClientError) -> S3PublishError:
    error = exc.response.get("Error", {})
    code = str(error.get("Code", "Unknown"))
    status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    transient = status >= 500 or status == 429 or code in _TRANSIENT_CODES
    detail = str(error.get("Message", "")).strip()
    shown = f"{code} (HTTP {status})" if status else code
    return S3PublishError(
        f"s3://{bucket}/{key}: {shown}" + (f": {detail}" if detail else ""), transient=transient
    )
