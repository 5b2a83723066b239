"""An SMTP sink for tests: an aiosmtpd server on 127.0.0.1 (port 0 by default) recording every message.

    with SmtpSink(username="u", password="p") as sink:
        ... send to sink.host, sink.port ...
        sink.messages[0].rcpt_tos, sink.messages[0].message["Subject"]

Faults: ``reject_rcpt`` (addresses answered ``550`` at RCPT TO) and ``fail_next(n)`` (the next ``n``
transactions answered ``421`` at MAIL FROM, which makes smtplib raise ``SMTPSenderRefused`` with code 421).
"""

from __future__ import annotations

import email
import email.policy
import threading
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any, Self

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session


@dataclass
class ReceivedMail:
    """One accepted SMTP transaction."""

    mail_from: str
    rcpt_tos: list[str]
    raw: bytes
    message: EmailMessage
    auth_login: str | None


class _Controller(Controller):
    """aiosmtpd's Controller, made to work with port 0 (it probes ``self.port`` once started)."""

    def factory(self) -> SMTP:
        with warnings.catch_warnings():  # plain-text AUTH is the point of a local test sink
            warnings.simplefilter("ignore", UserWarning)
            server: SMTP = super().factory()  # type: ignore[no-untyped-call]
        return server

    def _trigger_server(self) -> None:
        server: Any = self.server
        if self.port == 0 and server is not None:
            self.port = server.sockets[0].getsockname()[1]
        super()._trigger_server()  # type: ignore[no-untyped-call]


class SmtpSink:
    """Records every message sent to it. See the module docstring."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        username: str | None = None,
        password: str | None = None,
        reject_rcpt: Iterable[str] = (),
    ) -> None:
        self.host = host
        self.username = username
        self.password = password
        self.reject_rcpt = {address.lower() for address in reject_rcpt}
        self.messages: list[ReceivedMail] = []
        self.rejected: list[tuple[str, str]] = []
        """(command, address or reason) of everything answered with an error."""
        self.transactions = 0
        self._fail_next = 0
        self._lock = threading.Lock()
        kwargs: dict[str, Any] = {"auth_require_tls": False}
        if username is not None:
            kwargs.update(auth_required=True, authenticator=self._authenticate)
        self._controller = _Controller(self, hostname=host, port=port, **kwargs)

    @property
    def port(self) -> int:
        return int(self._controller.port)

    # ------------------------------------------------------------------ faults

    def fail_next(self, count: int) -> None:
        """Answer ``421`` to the next ``count`` transactions (at MAIL FROM)."""
        with self._lock:
            self._fail_next = count

    def reset(self) -> None:
        with self._lock:
            self.messages.clear()
            self.rejected.clear()
            self.transactions = 0
            self._fail_next = 0

    # ------------------------------------------------------------------ aiosmtpd handler hooks

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        if isinstance(auth_data, LoginPassword):
            ok = auth_data.login.decode() == self.username and auth_data.password.decode() == self.password
            if ok:
                return AuthResult(success=True, auth_data=auth_data)
        self.rejected.append(("AUTH", "bad credentials"))
        return AuthResult(success=False, handled=False)

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, mail_options: list[str]
    ) -> str:
        with self._lock:
            self.transactions += 1
            if self._fail_next > 0:
                self._fail_next -= 1
                self.rejected.append(("MAIL", "421 injected"))
                return "421 4.3.2 Service not available, closing transmission channel"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        if address.lower() in self.reject_rcpt:
            self.rejected.append(("RCPT", address))
            return "550 5.1.1 The email account that you tried to reach does not exist"
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or envelope.content
        assert isinstance(raw, bytes)
        message = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        login = session.auth_data.login.decode() if isinstance(session.auth_data, LoginPassword) else None
        self.messages.append(
            ReceivedMail(
                mail_from=envelope.mail_from or "",
                rcpt_tos=list(envelope.rcpt_tos),
                raw=raw,
                message=message,
                auth_login=login,
            )
        )
        return "250 Message accepted for delivery"

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> Self:
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
