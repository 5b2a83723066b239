"""Build RFC 5322 emails for a batch: the shared part is built and serialised once per message, the
per-recipient headers (To, Message-ID, X-Tocsin-Delivery-Id, the RFC 8058 one-click
``List-Unsubscribe``/``List-Unsubscribe-Post`` pair when the recipient has an unsubscribe link, and
RFC 2369 ``List-Help`` naming their own manage page) are prepended for each recipient.

That keeps writing a million ``.eml`` files (outbox) or sending a 100-recipient SMTP batch cheap, and every
recipient gets their own copy: nobody sees anyone else's address.

A message whose text or HTML shows the recipient's own "manage or stop these updates" link
(``channels.base.MANAGE_URL_PLACEHOLDER``) gets that link per recipient: only the quoted-printable body
of each such part is encoded again and put in place of the shared one, not the whole message.
"""

from __future__ import annotations

import email.policy
import re
from datetime import UTC, datetime
from email import quoprimime
from email.errors import MessageError
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime

from channels.base import MANAGE_URL_PLACEHOLDER, Message, Recipient, personalise

DELIVERY_ID_HEADER = "X-Tocsin-Delivery-Id"
LIST_UNSUBSCRIBE = "List-Unsubscribe"
LIST_UNSUBSCRIBE_POST = "List-Unsubscribe-Post"
LIST_HELP = "List-Help"
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
        self.message = message
        self.from_name = from_name
        self.date = date or datetime.now(UTC)
        self._shared = self._body(message.text, message.html)
        # The parts that show the recipient's own link: (their encoded body in _shared, their text).
        self._personal = [
            (_quoted_printable(part), part)
            for part in (message.text, message.html)
            if part is not None and MANAGE_URL_PLACEHOLDER in part
        ]
        self._fast = all(encoded in self._shared for encoded, _ in self._personal)

    def _body(self, text: str, html: str | None) -> bytes:
        shared = EmailMessage(policy=POLICY)
        shared["From"] = format_address(self.from_email, self.from_name)
        shared["Subject"] = _one_line(self.message.subject)
        shared["Date"] = format_datetime(self.date)
        # quoted-printable keeps the message 7-bit clean, so no server needs 8BITMIME
        shared.set_content(text, cte="quoted-printable")
        if html is not None:
            shared.add_alternative(html, subtype="html", cte="quoted-printable")
        return shared.as_bytes(policy=POLICY)

    def _personalised(self, recipient: Recipient) -> bytes:
        """The shared part with this recipient's own link in each part that shows one."""
        if not self._fast:  # the email package encoded a part differently: build this one in full
            html = None if self.message.html is None else personalise(self.message.html, recipient)
            return self._body(personalise(self.message.text, recipient), html)
        body = self._shared
        for encoded, part in self._personal:
            body = body.replace(encoded, _quoted_printable(personalise(part, recipient)), 1)
        return body

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
            + help_header(recipient.manage_url)
            + (self._personalised(recipient) if self._personal else self._shared)
        )


def _quoted_printable(text: str) -> bytes:
    """A text part's body as ``set_content(text, cte="quoted-printable")`` writes it with ``POLICY``."""
    lines = text.encode("utf-8").splitlines()
    width = POLICY.max_line_length or 78
    encoded = quoprimime.body_encode((b"\n".join(lines) + b"\n").decode("latin-1"), width)
    return encoded.replace("\n", "\r\n").encode("ascii")


def unsubscribe_headers(url: str | None) -> bytes:
    """RFC 8058 one-click unsubscribe: ``List-Unsubscribe`` and ``List-Unsubscribe-Post`` (or nothing).

    The URL goes on its own line unfolded (no spaces to fold at); RFC 5322 allows up to 998 characters."""
    if not url:
        return b""
    link = _header_url(url, "unsubscribe")
    return f"{LIST_UNSUBSCRIBE}: <{link}>\r\n{LIST_UNSUBSCRIBE_POST}: {ONE_CLICK}\r\n".encode("ascii")


def help_header(url: str | None) -> bytes:
    """RFC 2369 ``List-Help``: where the recipient manages what they get (their own signed page)."""
    if not url:
        return b""
    return f"{LIST_HELP}: <{_header_url(url, 'manage')}>\r\n".encode("ascii")


def _header_url(url: str, what: str) -> str:
    if any(c in url for c in "\r\n<> ") or not url.isascii() or len(url) > 900:
        raise BadAddress(f"unusable {what} URL {url[:80]!r}")
    return url


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
