"""Build RFC 5322 emails for a batch: the shared part is built and serialised once per message, the
per-recipient headers (To, Message-ID, X-Tocsin-Delivery-Id, and the RFC 8058 one-click
``List-Unsubscribe``/``List-Unsubscribe-Post`` pair when the recipient has an unsubscribe link) are
prepended for each recipient.

That keeps writing a million ``.eml`` files (outbox) or sending a 100-recipient SMTP batch cheap, and every
recipient gets their own copy: nobody sees anyone else's address.
"""

from __future__ import annotations

import email.policy
import re
from datetime import UTC, datetime
from email.errors import MessageError
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime

from channels.base import Message, Recipient

DELIVERY_ID_HEADER = "X-Tocsin-Delivery-Id"
LIST_UNSUBSCRIBE = "List-Unsubscribe"
LIST_UNSUBSCRIBE_POST = "List-Unsubscribe-Post"
ONE_CLICK = "List-Unsubscribe=One-Click"
POLICY = email.policy.SMTP  # CRLF line endings, as on the wire


class BadAddress(ValueError):
    """An address that cannot go in an email header."""


def format_address(address: str, name: str | None = None) -> str:
    """``"Name" <addr>`` quoted as RFC 5322 needs, or ``BadAddress``."""
    try:
        if "@" not in address or any(c in address for c in "\r\n"):
            raise ValueError("not an email address")
        return str(Address(display_name=_one_line(name or ""), addr_spec=address.strip()))
    except (ValueError, MessageError, IndexError) as exc:
        raise BadAddress(f"invalid email address {address!r}: {exc}") from None


def _one_line(text: str) -> str:
    return " ".join(text.split())


class EmailBuilder:
    """One rendered ``Message`` turned into per-recipient RFC 5322 bytes."""

    def __init__(
        self,
        message: Message,
        from_email: str,
        from_name: str | None = None,
        date: datetime | None = None,
    ) -> None:
        self.from_email = from_email
        self.domain = from_email.rpartition("@")[2] or "localhost"
        shared = EmailMessage(policy=POLICY)
        shared["From"] = format_address(from_email, message.sender_name or from_name)
        shared["Subject"] = _one_line(message.subject)
        shared["Date"] = format_datetime(date or datetime.now(UTC))
        # quoted-printable keeps the message 7-bit clean, so no server needs 8BITMIME
        shared.set_content(message.text, cte="quoted-printable")
        if message.html is not None:
            shared.add_alternative(message.html, subtype="html", cte="quoted-printable")
        self._shared = shared.as_bytes(policy=POLICY)

    def message_id(self, recipient: Recipient) -> str:
        """Stable per delivery, so a retried send carries the same Message-ID."""
        return f"<{recipient.message_id}@{self.domain}>"

    def build(self, recipient: Recipient) -> bytes:
        """The full message for one recipient; ``BadAddress`` if the address cannot be used."""
        fixed = f"Message-ID: {self.message_id(recipient)}\r\n"
        if recipient.delivery_id > 0:
            fixed += f"{DELIVERY_ID_HEADER}: {recipient.delivery_id}\r\n"
        return (
            _to_header(recipient.address, recipient.name)
            + fixed.encode("ascii")
            + unsubscribe_headers(recipient.unsubscribe_url)
            + self._shared
        )


def unsubscribe_headers(url: str | None) -> bytes:
    """RFC 8058 one-click unsubscribe: ``List-Unsubscribe`` and ``List-Unsubscribe-Post`` (or nothing).

    The URL goes on its own line unfolded (no spaces to fold at); RFC 5322 allows up to 998 characters."""
    if not url:
        return b""
    if any(c in url for c in "\r\n<> ") or not url.isascii() or len(url) > 900:
        raise BadAddress(f"unusable unsubscribe URL {url[:80]!r}")
    return (f"{LIST_UNSUBSCRIBE}: <{url}>\r\n{LIST_UNSUBSCRIBE_POST}: {ONE_CLICK}\r\n").encode("ascii")


# Plain ASCII names and addresses (nearly all of them) need no quoting, encoding or folding, so they skip
# the email package's header parser, which costs about a millisecond per header.
_PLAIN_ADDRESS = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*")
_PLAIN_NAME = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~ -]*")


def _to_header(address: str, name: str | None) -> bytes:
    display = _one_line(name or "")
    if _PLAIN_ADDRESS.fullmatch(address) and _PLAIN_NAME.fullmatch(display):
        line = f"To: {display} <{address}>\r\n" if display else f"To: {address}\r\n"
        if len(line) <= 78:
            return line.encode("ascii")
    stored_name, stored_value = POLICY.header_store_parse("To", format_address(address, name))
    return POLICY.fold_binary(stored_name, stored_value)
