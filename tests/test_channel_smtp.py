"""The SMTP adapter talking real SMTP to a local aiosmtpd server."""

from __future__ import annotations

import asyncio
import email
import email.policy
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

from channels import registry
from channels.base import (
    ChannelKind,
    Message,
    Outcome,
    ProviderUnavailable,
    Recipient,
    TransientError,
)
from channels.smtp import SmtpAdapter


@dataclass
class Sink:
    """An SMTP server's handler that keeps what it receives and can refuse chosen recipients."""

    messages: list[tuple[str, list[str], EmailMessage]] = field(default_factory=list)
    refuse: dict[str, str] = field(default_factory=dict)
    connections: int = 0
    dropped: int = 0
    _drop: int = 0

    def drop_next(self, count: int) -> None:
        """Hang up on the next ``count`` connections before the greeting (a relay restarting)."""
        self._drop = count

    async def handle_RCPT(
        self, server: SMTP, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Any, envelope: Any) -> str:
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), parsed))
        return "250 2.0.0 queued"


class CountingController(Controller):
    """Counts SMTP sessions (one protocol object per connection) and listens on a free port."""

    def factory(self) -> SMTP:
        self.handler.connections += 1
        server: SMTP = super().factory()  # type: ignore[no-untyped-call]
        if self.handler._drop > 0:
            self.handler._drop -= 1
            self.handler.dropped += 1
            server.connection_made = lambda transport: transport.close()  # type: ignore[method-assign]
            server.connection_lost = lambda exc: None  # type: ignore[method-assign]
        return server

    def _trigger_server(self) -> None:
        # port=0 asks the OS for a free port; learn which one before aiosmtpd probes it
        assert isinstance(self.server, asyncio.Server)
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()  # type: ignore[no-untyped-call]


def _authenticate(server: SMTP, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
    ok = isinstance(data, LoginPassword) and (data.login, data.password) == (b"tocsin", b"s3cret")
    return AuthResult(success=ok, handled=False)  # handled=False: the server replies 535 itself


@pytest.fixture
def smtp_server() -> Iterator[tuple[Sink, CountingController]]:
    sink = Sink()
    controller = CountingController(
        sink, hostname="127.0.0.1", port=0, authenticator=_authenticate, auth_require_tls=False
    )
    controller.start()
    sink.connections = 0  # the controller's own start-up probe is not a client
    try:
        yield sink, controller
    finally:
        controller.stop()


def _adapter(controller: CountingController, **overrides: Any) -> SmtpAdapter:
    options: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": controller.port,
        "starttls": False,  # the test server has no certificate
        "username": "tocsin",
        "password": "s3cret",
        "from_email": "status@example.com",
        "from_name": "Example Status",
        "timeout": 5,
    }
    options.update(overrides)
    adapter = registry.create("smtp", options)
    assert isinstance(adapter, SmtpAdapter)
    return adapter


MESSAGE = Message(
    kind=ChannelKind.EMAIL,
    update_id=7,
    incident_id=42,
    subject="[Major · Investigating] API errors",
    text="We are investigating elevated error rates.\n",
    html="<p>We are investigating elevated error rates.</p>\n",
)


def _recipients(count: int) -> list[Recipient]:
    return [Recipient(100 + i, f"user{i}@example.org", name=f"User {i}") for i in range(count)]


def test_a_batch_of_five_goes_over_one_authenticated_connection(smtp_server: tuple[Sink, Any]) -> None:
    sink, controller = smtp_server
    results = _adapter(controller).send(MESSAGE, _recipients(5))

    assert [r.outcome for r in results] == [Outcome.SENT] * 5
    assert sink.connections == 1
    assert len(sink.messages) == 5
    # one message per recipient: nobody sees anybody else's address
    for i, (mail_from, rcpt_tos, parsed) in enumerate(sink.messages):
        assert mail_from == "status@example.com"
        assert rcpt_tos == [f"user{i}@example.org"]
        assert parsed["To"] == f"User {i} <user{i}@example.org>"
        assert parsed["X-Tocsin-Delivery-Id"] == str(100 + i)
        assert parsed["Message-ID"] == f"<tocsin-{100 + i}@example.com>"
        assert results[i].provider_message_id == parsed["Message-ID"]
        assert parsed["Subject"] == MESSAGE.subject
        assert parsed["From"] == "Example Status <status@example.com>"
        text_part = parsed.get_body(("plain",))
        html_part = parsed.get_body(("html",))
        assert text_part is not None and html_part is not None
        assert "elevated error rates" in text_part.get_content()
        assert "<p>We are investigating" in html_part.get_content()


def test_a_rejected_recipient_fails_alone(smtp_server: tuple[Sink, Any]) -> None:
    sink, controller = smtp_server
    sink.refuse["user1@example.org"] = "550 5.1.1 No such user"
    sink.refuse["user3@example.org"] = "452 4.2.2 Mailbox full"

    results = _adapter(controller).send(MESSAGE, _recipients(5))

    by_id = {r.delivery_id: r for r in results}
    assert by_id[101].outcome == Outcome.FAILED
    assert by_id[101].error is not None and "550" in by_id[101].error
    assert by_id[103].outcome == Outcome.RETRY  # 4xx: try again later
    assert [by_id[i].outcome for i in (100, 102, 104)] == [Outcome.SENT] * 3
    assert [rcpts for _, rcpts, _ in sink.messages] == [
        ["user0@example.org"],
        ["user2@example.org"],
        ["user4@example.org"],
    ]
    assert sink.connections == 1


def test_bad_credentials_mean_provider_unavailable(smtp_server: tuple[Sink, Any]) -> None:
    sink, controller = smtp_server
    with pytest.raises(ProviderUnavailable, match="authentication failed"):
        _adapter(controller, password="wrong").send(MESSAGE, _recipients(2))
    assert sink.messages == []


def test_password_never_appears_in_options_repr(smtp_server: tuple[Sink, Any]) -> None:
    _, controller = smtp_server
    assert "s3cret" not in repr(_adapter(controller).options)


def test_a_server_that_is_down_is_a_transient_error() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    adapter = SmtpAdapter.from_options({"host": "127.0.0.1", "port": port, "from_email": "s@example.com"})
    with pytest.raises(TransientError, match="cannot connect"):
        adapter.send(MESSAGE, _recipients(1))


def test_a_relay_that_hangs_up_once_is_connected_to_again_in_the_same_call(
    smtp_server: tuple[Sink, Any],
) -> None:
    sink, controller = smtp_server
    sink.drop_next(1)

    results = _adapter(controller).send(MESSAGE, _recipients(2))

    assert sink.dropped == 1
    assert [r.outcome for r in results] == [Outcome.SENT, Outcome.SENT]
    assert len(sink.messages) == 2


def test_a_relay_that_keeps_hanging_up_is_a_transient_error_after_two_tries(
    smtp_server: tuple[Sink, Any],
) -> None:
    sink, controller = smtp_server
    sink.drop_next(5)
    with pytest.raises(TransientError, match="cannot connect"):
        _adapter(controller).send(MESSAGE, _recipients(1))
    assert sink.dropped == 2


def test_starttls_required_but_not_offered_is_provider_unavailable(smtp_server: tuple[Sink, Any]) -> None:
    sink, controller = smtp_server
    with pytest.raises(ProviderUnavailable, match="STARTTLS"):
        _adapter(controller, starttls=True).send(MESSAGE, _recipients(1))
    assert sink.messages == []


def test_a_server_that_drops_mid_batch_keeps_what_was_sent(smtp_server: tuple[Sink, Any]) -> None:
    sink, controller = smtp_server
    sink.refuse["user2@example.org"] = "421 4.3.2 Shutting down"

    results = _adapter(controller).send(MESSAGE, _recipients(4))

    assert [r.outcome for r in results] == [Outcome.SENT, Outcome.SENT, Outcome.RETRY, Outcome.RETRY]
    assert len(sink.messages) == 2


def test_a_server_that_drops_before_anything_went_is_a_transient_error(
    smtp_server: tuple[Sink, Any],
) -> None:
    sink, controller = smtp_server
    sink.refuse["user0@example.org"] = "421 4.3.2 Shutting down"
    with pytest.raises(TransientError):
        _adapter(controller).send(MESSAGE, _recipients(3))


def test_use_ssl_defaults_to_port_465() -> None:
    adapter = SmtpAdapter.from_options({"host": "mail.example.com", "use_ssl": True, "from_email": "a@b.co"})
    assert isinstance(adapter, SmtpAdapter)
    assert adapter.options.port == 465


def test_options_are_checked() -> None:
    with pytest.raises(registry.InvalidProviderOptions, match="username and password"):
        registry.create("smtp", {"host": "h", "from_email": "a@b.co", "username": "u"})
    with pytest.raises(registry.InvalidProviderOptions, match="from_email"):
        registry.create("smtp", {"host": "h"})
