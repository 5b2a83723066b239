"""The status page: a static site rebuilt on every public update, so it stays up when your site is down.

A broadcast channel (``statuspage``). The dispatcher sends one ``Message`` whose ``json_body`` is the
whole site's ``StatusSnapshot`` (built from the database, public updates only); this adapter renders
the HTML pages, ``status.json`` and ``feed.atom`` from it (``channels.statuspage.render``) and publishes
them to each destination a recipient names:

* ``directory`` - a local folder, swapped atomically through a symlink (``channels.statuspage.directory``);
* ``s3`` - a bucket of any S3-compatible store, index last (``channels.statuspage.s3``).

Each destination is one ledger row per update, so a failed upload is retried like any delivery and
``tocsin status`` shows where the page went. Options (``[providers.statuspage]``)::

    directory = "/srv/status"          # a symlink Tocsin manages (see statuspage_directory)
    s3_bucket = "status-example-com"
    s3_prefix = ""                     # e.g. "status/"
    s3_endpoint_url = "https://…"      # MinIO, R2, Ceph…; unset for AWS
    s3_region = "eu-west-1"
    s3_access_key_id = "…"             # or the usual AWS_* environment / profile / role
    s3_secret_access_key = "…"
    components = ["API", "Dashboard", "Checkout"]
    history_days = 90
    uptime_days = 90                   # days on each component's history bar
    page_id = "…"                      # page.id in api/v2/*.json (default: from the organisation)
    internal_directory = "/srv/status-internal"   # staff's site, with internal updates and notes
    internal_s3_bucket = "status-internal"       # (behind the host's own access control)
    internal_s3_prefix = ""

``components``, ``history_days``, ``uptime_days`` and ``page_id`` are read by the dispatcher when it
builds the snapshot. The internal site is published only to the ``internal-*`` destinations and the
public one only to the others: one never reaches the other's target.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from channels.base import (
    AdapterBase,
    Capabilities,
    ChannelKind,
    Message,
    PermanentError,
    Recipient,
    Result,
)
from channels.readiness import Readiness, folder_writable
from channels.statuspage.directory import DirectoryPublisher, SiteDirectoryTaken
from channels.statuspage.model import SiteBundle, StatusSnapshot
from channels.statuspage.render import SiteRenderer, SiteRenderError
from channels.statuspage.s3 import S3Publisher, S3PublishError, S3Target

DIRECTORY = "directory"
S3 = "s3"
INTERNAL_DIRECTORY = "internal-directory"
INTERNAL_S3 = "internal-s3"


def _secret(value: SecretStr | None) -> str | None:
    return None if value is None else value.get_secret_value()


class StatusPageOptions(BaseModel):
    """Settings of the status page adapter; see the module docstring."""

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    directory: Path | None = None
    """Where the site is served from locally: a symlink to the live version folder."""
    keep_versions: int = Field(default=3, ge=1, le=100)
    """Older version folders kept beside the live one."""
    fsync: bool = False
    """Flush files to disk before the swap (for sites that must survive a power loss)."""
    s3_bucket: str | None = Field(default=None, min_length=3, max_length=63)
    s3_prefix: str = ""
    s3_endpoint_url: str | None = None
    s3_region: str | None = None
    s3_access_key_id: SecretStr | None = None
    s3_secret_access_key: SecretStr | None = None
    s3_session_token: SecretStr | None = None
    s3_timeout: float = Field(default=10.0, gt=0)
    live_max_age: int = Field(default=60, ge=0)
    """Cache-Control max-age (seconds) of index.html, status.json and feed.atom."""
    page_max_age: int = Field(default=300, ge=0)
    """Cache-Control max-age of incident pages and the history."""
    components: list[str] = Field(default_factory=list)
    history_days: int = Field(default=90, ge=1, le=3650)
    uptime_days: int = Field(default=90, ge=1, le=366)
    page_id: str | None = Field(default=None, min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    internal_directory: Path | None = None
    """Staff's internal site (internal updates and notes): a folder the public never reaches."""
    internal_s3_bucket: str | None = Field(default=None, min_length=3, max_length=63)
    internal_s3_prefix: str = ""
    template_dirs: list[Path] = Field(min_length=1)
    """Template folders, first found wins (Tocsin passes ``templates_dir`` and the packaged ones)."""

    @field_validator("s3_endpoint_url")
    @classmethod
    def _endpoint(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("s3_endpoint_url must start with http:// or https://")
        return value

    @model_validator(mode="after")
    def _somewhere_to_publish(self) -> Self:
        if self.directory is None and self.s3_bucket is None:
            raise ValueError("set directory and/or s3_bucket: the status site needs somewhere to go")
        if (self.s3_access_key_id is None) != (self.s3_secret_access_key is None):
            raise ValueError("set both s3_access_key_id and s3_secret_access_key, or neither")
        if self.internal_directory is not None and self.directory is not None:
            inside = self.internal_directory.resolve().is_relative_to(self.directory.resolve())
            if inside or self.internal_directory.resolve() == self.directory.resolve():
                raise ValueError("internal_directory: must not be the public directory or inside it")
        if (
            self.internal_s3_bucket is not None
            and self.internal_s3_bucket == self.s3_bucket
            and _prefix(self.internal_s3_prefix).startswith(_prefix(self.s3_prefix))
        ):
            raise ValueError("internal_s3_bucket: must not be the public bucket and prefix, or inside them")
        return self

    @property
    def prefix(self) -> str:
        """``s3_prefix`` as a key prefix: no leading slash, one trailing slash (or empty)."""
        return _prefix(self.s3_prefix)


def _prefix(value: str) -> str:
    cleaned = value.strip().strip("/")
    return f"{cleaned}/" if cleaned else ""


def _s3(options: StatusPageOptions, bucket: str | None, prefix: str) -> S3Publisher | None:
    if bucket is None:
        return None
    return S3Publisher(
        S3Target(
            bucket=bucket,
            prefix=prefix,
            endpoint_url=options.s3_endpoint_url,
            region=options.s3_region,
            access_key_id=_secret(options.s3_access_key_id),
            secret_access_key=_secret(options.s3_secret_access_key),
            session_token=_secret(options.s3_session_token),
            timeout=options.s3_timeout,
            live_max_age=options.live_max_age,
            page_max_age=options.page_max_age,
        )
    )


def _folder(options: StatusPageOptions, directory: Path | None) -> DirectoryPublisher | None:
    if directory is None:
        return None
    return DirectoryPublisher(directory, keep=options.keep_versions, fsync=options.fsync)


class StatusPageAdapter(AdapterBase):
    """Renders the status site once per call and publishes it to every destination asked for."""

    name: ClassVar[str] = "statuspage"
    capabilities: ClassVar[Capabilities] = Capabilities(
        kinds=frozenset({ChannelKind.STATUSPAGE}), max_batch=10, broadcast=True, renders_html=True
    )
    Options: ClassVar[type[BaseModel]] = StatusPageOptions

    def __init__(self, options: StatusPageOptions) -> None:
        self.options = options
        self.renderer = SiteRenderer(options.template_dirs)
        self.directory = _folder(options, options.directory)
        self.s3 = _s3(options, options.s3_bucket, options.prefix)
        self.internal_directory = _folder(options, options.internal_directory)
        self.internal_s3 = _s3(options, options.internal_s3_bucket, _prefix(options.internal_s3_prefix))

    def _targets(self) -> dict[str, DirectoryPublisher | S3Publisher | None]:
        return {
            DIRECTORY: self.directory,
            S3: self.s3,
            INTERNAL_DIRECTORY: self.internal_directory,
            INTERNAL_S3: self.internal_s3,
        }

    @property
    def destinations(self) -> list[str]:
        return [name for name, on in self._targets().items() if on is not None]

    def bundle(self, message: Message) -> SiteBundle:
        """The sites' snapshots ``message`` carries (a bundle, or a lone public snapshot)."""
        if message.kind is not ChannelKind.STATUSPAGE:
            raise PermanentError(f"statuspage carries status page snapshots, not {message.kind}")
        if not message.json_body:
            raise PermanentError("statuspage: the message carries no site snapshot")
        try:
            if '"public"' in message.json_body[:20]:
                return SiteBundle.model_validate_json(message.json_body)
            return SiteBundle(public=StatusSnapshot.model_validate_json(message.json_body))
        except ValidationError as exc:
            raise PermanentError(f"statuspage: invalid site snapshot: {exc.errors()[0]['msg']}") from None

    def render(self, message: Message, internal: bool = False) -> tuple[StatusSnapshot, dict[str, bytes]]:
        """The (public or internal) snapshot in ``message`` and every file of its site."""
        bundle = self.bundle(message)
        snapshot = bundle.internal if internal else bundle.public
        if snapshot is None:
            raise PermanentError("statuspage: the message carries no internal site")
        try:
            return snapshot, self.renderer.render(snapshot)
        except SiteRenderError as exc:
            raise PermanentError(f"statuspage: {exc}") from None

    def send(self, message: Message, recipients: Sequence[Recipient]) -> list[Result]:
        """Render each site once, then publish it to each of its recipients' destinations: the public
        site to ``directory``/``s3``, staff's site to ``internal-directory``/``internal-s3`` only."""
        rendered: dict[bool, tuple[StatusSnapshot, dict[str, bytes]]] = {}
        results = []
        for recipient in recipients:
            internal = recipient.address.startswith("internal-")
            if internal not in rendered:
                rendered[internal] = self.render(message, internal)
            snapshot, files = rendered[internal]
            version = f"{snapshot.generated_at:%Y%m%dT%H%M%S%fZ}-u{snapshot.last_update_id or 0:012d}"
            results.append(self._publish(recipient, files, version))
        return results

    def _publish(self, recipient: Recipient, files: dict[str, bytes], version: str) -> Result:
        target = self._targets().get(recipient.address)
        if isinstance(target, DirectoryPublisher):
            try:
                live = target.publish(files, version)
            except SiteDirectoryTaken as exc:
                return Result.failed(recipient.delivery_id, str(exc))
            except OSError as exc:
                return Result.retry(
                    recipient.delivery_id, f"{target.link}: cannot publish: {exc.strerror or exc}"
                )
            shown = live or f"{target.live_version()} (newer)"
            return Result.sent(recipient.delivery_id, f"{target.link}@{shown}"[:300])
        if isinstance(target, S3Publisher):
            try:
                uploaded = target.publish(files, version)
            except S3PublishError as exc:
                if exc.transient:
                    return Result.retry(recipient.delivery_id, exc.message)
                return Result.failed(recipient.delivery_id, exc.message)
            where = target.target.where
            return Result.sent(recipient.delivery_id, where if uploaded else f"{where} (newer site kept)")
        known = ", ".join(self.destinations)
        return Result.failed(
            recipient.delivery_id, f"no status page destination {recipient.address!r} (configured: {known})"
        )

    def probe(self) -> Readiness:
        """Every destination can take the site: the folder's parent is writable, the bucket takes an
        object (put, then deleted)."""
        seen = []
        if self.directory is not None:
            found = folder_writable(self.directory.link.parent, "the status site's folder")
            if not found.ready:
                return found
            seen.append(str(self.directory.link))
        if self.s3 is not None:
            refused = self.s3.probe()
            if refused is not None:
                return Readiness.not_ready(refused)
            seen.append(self.s3.target.where)
        return Readiness.ok("writable: " + ", ".join(seen))

    def close(self) -> None:
        for target in (self.s3, self.internal_s3):
            if target is not None:
                target.close()
