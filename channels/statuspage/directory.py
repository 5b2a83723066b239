"""Publish the status site to a folder atomically: a new version folder, then one symlink swap.

The configured ``directory`` (say ``/srv/status``) is a **symlink** that Tocsin manages. Each publish
writes every file into a new folder beside it (``/srv/.status.versions/<version>-<random>/``), and only
when all of them are complete replaces the symlink in one ``os.replace`` (an atomic ``rename(2)``). So
a web server serving ``/srv/status`` sees the old site or the new one, never half of either; a failure
while writing leaves the old site untouched (the unfinished folder is removed).

The last ``keep`` versions stay on disk besides the live one, so a reader that resolved the old link a
moment ago still finds its files. A lock file serialises publishers (several workers, one folder), and
a publish older than the live site (two updates raced; the later snapshot went live first) is dropped
instead of rolling the site back.

On first use ``directory`` may be missing or an empty folder (replaced by the link); a folder with
files in it is refused rather than moved away.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import tempfile
import threading
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path

_DIR_MODE = 0o755
_FILE_MODE = 0o644


class SiteDirectoryTaken(Exception):
    """``directory`` is a folder (or file) with content that Tocsin did not create."""


class DirectoryPublisher:
    """Publishes whole sites to ``directory`` (a symlink it swaps); see the module docstring."""

    def __init__(self, directory: Path, keep: int = 3, fsync: bool = False) -> None:
        self.link = Path(os.path.abspath(directory))
        self.store = self.link.parent / f".{self.link.name}.versions"
        self.keep = keep
        self.fsync = fsync
        self._thread_lock = threading.Lock()

    def live_version(self) -> str | None:
        """The version folder the link points at now, if any."""
        if not self.link.is_symlink():
            return None
        return Path(os.readlink(self.link)).name

    def publish(self, files: Mapping[str, bytes], version: str) -> str | None:
        """Write ``files`` (relative path -> bytes) as a new version and make it live.

        ``version`` must sort after the versions of older snapshots. Returns the name of the folder now
        live, or None when a newer version was live already (then nothing changed).
        """
        self.link.parent.mkdir(parents=True, exist_ok=True)
        self.store.mkdir(exist_ok=True)
        with self._locked():
            self._adopt()
            live = self.live_version()
            if live is not None and _version_of(live) > version:
                return None
            folder = Path(tempfile.mkdtemp(prefix=f"{version}-", dir=self.store))
            temp_link = self.link.parent / f".{self.link.name}.{uuid.uuid4().hex}.link"
            try:
                os.chmod(folder, _DIR_MODE)
                self._write_all(folder, files)
                os.symlink(os.path.relpath(folder, self.link.parent), temp_link)
                os.replace(temp_link, self.link)
                if self.fsync:
                    _fsync_dir(self.link.parent)
            except BaseException:
                with contextlib.suppress(OSError):
                    temp_link.unlink()
                shutil.rmtree(folder, ignore_errors=True)
                raise
            self._prune(folder.name)
            return folder.name

    def _write_all(self, folder: Path, files: Mapping[str, bytes]) -> None:
        made: set[Path] = {folder}
        for relative, data in files.items():
            parts = Path(relative).parts
            if not parts or Path(relative).is_absolute() or ".." in parts:
                raise ValueError(f"site file {relative!r} points outside the site")
            target = folder.joinpath(*parts)
            if target.parent not in made:
                target.parent.mkdir(parents=True, exist_ok=True)
                os.chmod(target.parent, _DIR_MODE)
                made.add(target.parent)
            with open(target, "wb") as handle:
                handle.write(data)
                if self.fsync:
                    handle.flush()
                    os.fsync(handle.fileno())
            os.chmod(target, _FILE_MODE)
        if self.fsync:
            for path in made:
                _fsync_dir(path)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with self._thread_lock, open(self.store / ".lock", "a") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    def _adopt(self) -> None:
        """Make room for the link on first use: nothing there, or an empty folder, is fine."""
        if self.link.is_symlink() or not self.link.exists():
            return
        if self.link.is_dir() and not any(self.link.iterdir()):
            self.link.rmdir()
            return
        raise SiteDirectoryTaken(
            f"{self.link} already holds files Tocsin did not write; Tocsin publishes the status site "
            "by pointing a symlink there: move them away or choose another directory"
        )

    def _prune(self, live: str) -> None:
        """Keep the live version and the ``keep`` newest others; remove older ones."""
        versions = sorted(
            (p for p in self.store.iterdir() if p.is_dir() and p.name != live),
            key=lambda p: p.name,
            reverse=True,
        )
        for old in versions[self.keep :]:
            shutil.rmtree(old, ignore_errors=True)


def _version_of(folder_name: str) -> str:
    """The version a folder was made for (its name without mkdtemp's random suffix)."""
    return folder_name.rsplit("-", 1)[0]


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
