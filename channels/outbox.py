"""The outbox provider: instead of sending, write each delivery as a file you can open.

For demos, development and dry runs. Layout under ``directory``::

    update-<update_id>/email/<delivery_id>.eml     RFC 5322, text + HTML alternatives
    update-<update_id>/<kind>/<delivery_id>.json   {channel, to, subject, text, json_body, ...}

Files appear atomically (temp file in the same folder, then ``os.replace``): a crash never leaves half a
file, and writing the same delivery again replaces it. Files are not fsynced unless ``fsync`` is set, so
after a power loss a file may be missing, but it is never torn.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from channels.base import (
    AdapterBase,
    Capabilities,
    ChannelKind,
    Message,
    Recipient,
    Result,
    TransientError,
)
from channels.email_mime import BadAddress, EmailBuilder
from channels.readiness import Readiness, folder_writable

_WRITE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_BINARY", 0)


class OutboxOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    directory: Path = Path("outbox")
    from_email: str = "tocsin@localhost"
    from_name: str | None = "Tocsin"
    fsync: bool = False
    """Flush every file to disk before renaming it (slow; only for outboxes that must survive power loss)."""


class OutboxAdapter(AdapterBase):
    """Writes one file per recipient instead of sending anything."""

    name: ClassVar[str] = "outbox"
    capabilities: ClassVar[Capabilities] = Capabilities(
        kinds=frozenset(ChannelKind), max_batch=1000, renders_html=True
    )
    Options: ClassVar[type[BaseModel]] = OutboxOptions

    def __init__(self, options: OutboxOptions) -> None:
        self.options = options
        self.directory = Path(options.directory)

    def probe(self) -> Readiness:
        return folder_writable(self.directory, "the outbox folder")

    def send(self, message: Message, recipients: Sequence[Recipient]) -> list[Result]:
        relative_folder = f"update-{message.update_id}/{ChannelKind(message.kind).value}"
        folder = self.directory / relative_folder
        try:
            folder.mkdir(parents=True, exist_ok=True)  # once per batch, not per file
        except OSError as exc:
            raise TransientError(f"outbox: cannot create {folder}: {exc.strerror or exc}") from None

        if message.kind == ChannelKind.EMAIL:
            return self._write_emails(message, recipients, folder, relative_folder)
        return self._write_json(message, recipients, folder, relative_folder)

    def _write_emails(
        self, message: Message, recipients: Sequence[Recipient], folder: Path, relative_folder: str
    ) -> list[Result]:
        builder = EmailBuilder(message, self.options.from_email, self.options.from_name)
        results: list[Result] = []
        for recipient in recipients:
            try:
                data = builder.build(recipient)
            except BadAddress as exc:
                results.append(Result.failed(recipient.delivery_id, str(exc)))
                continue
            filename = f"{recipient.delivery_id}.eml"
            self._write(folder, filename, data)
            results.append(Result.sent(recipient.delivery_id, f"{relative_folder}/{filename}"))
        return results

    def _write_json(
        self, message: Message, recipients: Sequence[Recipient], folder: Path, relative_folder: str
    ) -> list[Result]:
        shared: dict[str, Any] = {
            "channel": ChannelKind(message.kind).value,
            "subject": message.subject,
            "text": message.text,
            "json_body": json.loads(message.json_body) if message.json_body is not None else None,
            "update_id": message.update_id,
            "incident_id": message.incident_id,
        }
        results: list[Result] = []
        for recipient in recipients:
            document = {
                "to": recipient.address,
                **shared,
                "delivery_id": recipient.delivery_id,
                "message_id": recipient.message_id,
            }
            data = json.dumps(document, ensure_ascii=False, indent=2).encode("utf-8") + b"\n"
            filename = f"{recipient.delivery_id}.json"
            self._write(folder, filename, data)
            results.append(Result.sent(recipient.delivery_id, f"{relative_folder}/{filename}"))
        return results

    def _write(self, folder: Path, filename: str, data: bytes) -> None:
        """Write ``folder/filename`` atomically; ``TransientError`` on any OS error."""
        final = os.path.join(folder, filename)
        temp = os.path.join(folder, f".{filename}.{os.getpid()}.{threading.get_ident()}.tmp")
        try:
            fd = os.open(temp, _WRITE_FLAGS, 0o644)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                if self.options.fsync:
                    os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(temp, final)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise TransientError(f"outbox: cannot write {final}: {exc.strerror or exc}") from None
