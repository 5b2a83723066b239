"""Every email shows its recipient's own "manage or stop these updates" link (their self-service page) in
the body and in ``List-Help``, beside the RFC 8058 one-click ``List-Unsubscribe``, on every email
provider: the SMTP conversation, the outbox files and SendGrid's per-recipient substitutions and
headers."""

from __future__ import annotations

import email
import email.policy
from email.message import EmailMessage
from typing import Any

import pytest

from channels.base import MANAGE_URL_PLACEHOLDER, ChannelKind, Message, Recipient
from channels.email_mime import EmailBuilder
from tests.emulators import SendGridEmulator
from tests.test_channel_sendgrid import API_KEY, make_adapter
from tests.test_channel_smtp import _adapter, smtp_server  # noqa: F401 (the fixture)

TEXT = "Checkout fails for some customers. We are sorry. " * 4 + (
    "\n\n--\nAcme\nManage or stop these updates: " + MANAGE_URL_PLACEHOLDER + "\n"
)
HTML = "<p>Checkout fails for some customers. Désolés.</p>" * 8 + (
    f'<a href="{MANAGE_URL_PLACEHOLDER}">Manage or stop these updates</a>\n'
)
MESSAGE = Message(ChannelKind.EMAIL, 7, 42, "[Major · Investigating] Checkout failing", TEXT, HTML)


def link(n: int) -> str:
    """The reader's own manage page. Long, with '%' and '_': quoted-printable must encode and wrap it
    without breaking it."""
    return f"https://tocsin.acme.example/manage?token=m.{n}.1830139200.{'Ab_-%3D' * 12}{n}"


def one_click(n: int) -> str:
    return f"https://tocsin.acme.example/unsubscribe?token=u.{n}.1830139200.{'Ab_-=' * 12}{n}"


def people(count: int) -> list[Recipient]:
    return [
        Recipient(i, f"user{i}@example.org", unsubscribe_url=one_click(i), manage_url=link(i))
        for i in range(1, count + 1)
    ]


def parts(message: EmailMessage) -> tuple[str, str]:
    found = {
        p.get_content_type(): str(p.get_content())
        for p in message.walk()
        if p.get_content_maintype() == "text"
    }
    return found["text/plain"], found["text/html"]


def assert_own_link(message: EmailMessage, n: int) -> None:
    text, html = parts(message)
    assert f"Manage or stop these updates: {link(n)}" in text
    assert f'<a href="{link(n)}">Manage or stop these updates</a>' in html
    assert MANAGE_URL_PLACEHOLDER not in text + html
    assert str(message["List-Unsubscribe"]) == f"<{one_click(n)}>"
    assert str(message["List-Unsubscribe-Post"]) == "List-Unsubscribe=One-Click"
    assert str(message["List-Help"]) == f"<{link(n)}>"


def test_each_built_email_carries_its_own_link() -> None:
    builder = EmailBuilder(MESSAGE, "status@acme.example")
    for recipient in people(3):
        raw = builder.build(recipient)
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        assert_own_link(parsed, recipient.delivery_id)
        body = raw.split(b"\r\n\r\n", 1)[1]  # List-Unsubscribe may be long; the body's lines may not
        assert max(len(line) for line in body.split(b"\r\n")) <= 78, "quoted-printable lines stay short"


def test_a_message_without_the_link_is_shared_unchanged() -> None:
    plain = Message(ChannelKind.EMAIL, 7, 42, "Subject", "No link here.\n", "<p>No link here.</p>")
    builder = EmailBuilder(plain, "status@acme.example")
    first, second = (builder.build(r) for r in people(2))
    assert first.split(b"Date:", 1)[1] == second.split(b"Date:", 1)[1]


def test_smtp_delivers_each_recipient_their_own_link(smtp_server: tuple[Any, Any]) -> None:  # noqa: F811
    sink, controller = smtp_server
    results = _adapter(controller).send(MESSAGE, people(3))
    assert [r.outcome.value for r in results] == ["sent"] * 3
    by_rcpt = {rcpts[0]: parsed for _, rcpts, parsed in sink.messages}
    for n in (1, 2, 3):
        assert_own_link(by_rcpt[f"user{n}@example.org"], n)


@pytest.fixture
def emulator() -> Any:
    with SendGridEmulator(api_key=API_KEY) as emu:
        yield emu


def test_sendgrid_substitutes_each_recipients_link(emulator: SendGridEmulator) -> None:
    make_adapter(emulator).send(MESSAGE, people(3))
    assert emulator.stats["accepted_requests"] == 1, "still one request for the whole batch"
    for received in emulator.received:
        n = int(received["email"].removeprefix("user").split("@")[0])
        assert f"Manage or stop these updates: {link(n)}" in received["text"]
        assert f'href="{link(n)}"' in received["html"]
        assert received["headers"] == {
            "List-Unsubscribe": f"<{one_click(n)}>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
            "List-Help": f"<{link(n)}>",
        }


def test_a_recipient_without_a_manage_page_gets_the_one_click_link_in_the_body() -> None:
    builder = EmailBuilder(MESSAGE, "status@acme.example")
    raw = builder.build(Recipient(1, "user1@example.org", unsubscribe_url=one_click(1)))
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    text, _ = parts(parsed)
    assert f"Manage or stop these updates: {one_click(1)}" in text and parsed["List-Help"] is None
