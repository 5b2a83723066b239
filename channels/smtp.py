"""The SMTP provider: any mail server or relay, one connection per batch, one message per recipient.

Errors map to the contract as follows:

* cannot connect, timeout, server disconnects, 421, 4xx on connect/MAIL FROM -> ``TransientError`` for the
  whole call, unless some recipients already have an outcome: then those keep it and the rest get
  ``Result.retry``;
* authentication refused (535), AUTH or STARTTLS not offered, 5xx greeting, sender refused with 5xx ->
  ``ProviderUnavailable`` (try the next provider);
* a recipient refused or the message rejected for one recipient: 5xx -> ``Result.failed``, 4xx ->
  ``Result.retry``.

With ``use_ssl`` (implicit TLS, usually port 465) ``starttls`` is ignored.
"""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Sequence
from typing import ClassVar, Self

import tenacity
from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from channels.base import (
    AdapterBase,
    Capabilities,
    ChannelError,
    ChannelKind,
    Message,
    PermanentError,
    ProviderUnavailable,
    Recipient,
    Result,
    TransientError,
)
from channels.email_mime import BadAddress, EmailBuilder, format_address
from channels.readiness import Readiness


class SmtpOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    host: str = Field(min_length=1)
    port: int = Field(default=587, ge=1, le=65535)
    """587 by default; 465 when ``use_ssl`` is set and no port is given."""
    username: str | None = None
    password: SecretStr | None = None
    starttls: bool = True
    use_ssl: bool = False
    timeout: float = Field(default=10, gt=0)
    from_email: str
    from_name: str | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.use_ssl and "port" not in self.model_fields_set:
            self.port = 465
        if (self.username is None) != (self.password is None):
            raise ValueError("username and password go together: give both or neither")
        format_address(self.from_email)  # raises a ValueError naming the address
        return self


class _Refused(TransientError):
    """The connection was refused or dropped at once: worth one more try before giving the batch back."""


_RECONNECT = tenacity.Retrying(
    retry=tenacity.retry_if_exception_type(_Refused),
    stop=tenacity.stop_after_attempt(2),
    wait=tenacity.wait_fixed(0.2),
    reraise=True,
)
"""Connecting is idempotent: a refused or reset connection (a relay restarting) is tried once more,
0.2 s later, in the same call. A timeout is not: it has already cost the configured timeout."""


class _StopBatch(Exception):
    """Nothing more can go over this connection (disconnected, 421, sender refused); carries the reason."""


class SmtpAdapter(AdapterBase):
    """Sends email through one SMTP connection per batch."""

    name: ClassVar[str] = "smtp"
    capabilities: ClassVar[Capabilities] = Capabilities(
        kinds=frozenset({ChannelKind.EMAIL}), max_batch=100, renders_html=True
    )
    Options: ClassVar[type[BaseModel]] = SmtpOptions

    def __init__(self, options: SmtpOptions) -> None:
        self.options = options

    def send(self, message: Message, recipients: Sequence[Recipient]) -> list[Result]:
        if message.kind != ChannelKind.EMAIL:
            raise PermanentError(f"smtp carries email only, not {message.kind}")
        if not recipients:
            return []
        builder = EmailBuilder(message, self.options.from_email, self.options.from_name)
        connection = _RECONNECT(self._connect)
        results: list[Result] = []
        try:
            for index, recipient in enumerate(recipients):
                try:
                    results.append(self._send_one(connection, builder, recipient))
                except (_StopBatch, ProviderUnavailable) as exc:
                    # Recipients that already have an outcome keep it; only the rest are retried.
                    if not results:
                        if isinstance(exc, ProviderUnavailable):
                            raise
                        raise TransientError(f"smtp {self._where}: {exc}") from None
                    reason = f"batch stopped: {exc}"
                    results.extend(Result.retry(r.delivery_id, reason) for r in recipients[index:])
                    break
        finally:
            _close(connection)
        return results

    @property
    def _where(self) -> str:
        return f"{self.options.host}:{self.options.port}"

    def _connect(self) -> smtplib.SMTP:
        """Connect, say EHLO, STARTTLS and log in as configured; typed errors on failure."""
        o = self.options
        connection: smtplib.SMTP | None = None
        try:
            if o.use_ssl:
                connection = smtplib.SMTP_SSL(
                    o.host, o.port, timeout=o.timeout, context=ssl.create_default_context()
                )
            else:
                connection = smtplib.SMTP(o.host, o.port, timeout=o.timeout)
            connection.ehlo()
            if o.starttls and not o.use_ssl:
                if not connection.has_extn("starttls"):
                    raise ProviderUnavailable(
                        f"smtp {self._where}: server does not offer STARTTLS (set starttls: false to "
                        "send unencrypted)"
                    )
                connection.starttls(context=ssl.create_default_context())
                connection.ehlo()
            if o.username is not None and o.password is not None:
                connection.login(o.username, o.password.get_secret_value())
            return connection
        except smtplib.SMTPAuthenticationError as exc:
            _close(connection)
            raise ProviderUnavailable(
                f"smtp {self._where}: authentication failed ({exc.smtp_code})"
            ) from None
        except smtplib.SMTPNotSupportedError as exc:
            _close(connection)
            raise ProviderUnavailable(f"smtp {self._where}: {exc}") from None
        except smtplib.SMTPResponseException as exc:
            _close(connection)
            text = f"smtp {self._where}: {exc.smtp_code} {_reply(exc.smtp_error)}"
            if exc.smtp_code >= 500:
                raise ProviderUnavailable(text) from None
            raise TransientError(text) from None
        except ssl.SSLError as exc:
            _close(connection)
            raise ProviderUnavailable(f"smtp {self._where}: TLS failed: {exc}") from None
        except (ConnectionRefusedError, ConnectionResetError, smtplib.SMTPServerDisconnected) as exc:
            _close(connection)
            raise _Refused(f"smtp {self._where}: cannot connect: {exc}") from None
        except (OSError, smtplib.SMTPException) as exc:  # timeout, DNS, anything else on the way
            _close(connection)
            raise TransientError(f"smtp {self._where}: cannot connect: {exc}") from None
        except BaseException:
            _close(connection)
            raise

    def _send_one(self, connection: smtplib.SMTP, builder: EmailBuilder, recipient: Recipient) -> Result:
        """One message to one recipient. ``_StopBatch`` when the connection is no longer usable."""
        try:
            data = builder.build(recipient)
        except BadAddress as exc:
            return Result.failed(recipient.delivery_id, str(exc))
        options = ["SMTPUTF8"] if not (recipient.address + builder.from_email).isascii() else []
        try:
            connection.sendmail(builder.from_email, [recipient.address], data, mail_options=options)
        except smtplib.SMTPRecipientsRefused as exc:
            code, reply = next(iter(exc.recipients.values()), (450, b"refused"))
            return self._rejected(recipient, code, reply, "recipient refused")
        except smtplib.SMTPSenderRefused as exc:
            if exc.smtp_code == 421 or exc.smtp_code < 500:
                raise _StopBatch(f"sender refused: {exc.smtp_code} {_reply(exc.smtp_error)}") from None
            raise ProviderUnavailable(
                f"smtp {self._where}: sender {exc.sender!r} refused: {exc.smtp_code} {_reply(exc.smtp_error)}"
            ) from None
        except smtplib.SMTPDataError as exc:
            return self._rejected(recipient, exc.smtp_code, exc.smtp_error, "message rejected")
        except smtplib.SMTPNotSupportedError as exc:  # SMTPUTF8 needed but not offered
            return Result.failed(recipient.delivery_id, f"{exc}")
        except UnicodeEncodeError:
            return Result.failed(recipient.delivery_id, "address needs SMTPUTF8, which the server lacks")
        except (smtplib.SMTPServerDisconnected, OSError) as exc:
            raise _StopBatch(str(exc) or type(exc).__name__) from None
        except smtplib.SMTPResponseException as exc:
            if exc.smtp_code == 421:
                raise _StopBatch(f"421 {_reply(exc.smtp_error)}") from None
            return self._rejected(recipient, exc.smtp_code, exc.smtp_error, "refused")
        return Result.sent(recipient.delivery_id, builder.message_id(recipient))

    @staticmethod
    def _rejected(recipient: Recipient, code: int, reply: bytes | str, what: str) -> Result:
        text = f"{what}: {code} {_reply(reply)}"
        if code == 421:
            raise _StopBatch(text)
        if code >= 500:
            return Result.failed(recipient.delivery_id, text)
        return Result.retry(recipient.delivery_id, text)

    def probe(self) -> Readiness:
        """Connect, EHLO, STARTTLS and AUTH as sending does, then NOOP and QUIT: no message is sent."""
        try:
            connection = self._connect()
        except ChannelError as exc:
            return Readiness.not_ready(exc.message)
        try:
            code, reply = connection.noop()
        except (smtplib.SMTPException, OSError) as exc:
            return Readiness.not_ready(f"smtp {self._where}: NOOP failed: {exc}")
        finally:
            _close(connection)
        if code != 250:
            return Readiness.not_ready(f"smtp {self._where}: NOOP answered {code} {_reply(reply)}")
        login = f" as {self.options.username}" if self.options.username else ""
        return Readiness.ok(f"{self._where} accepts a session{login}")


def _reply(reply: bytes | str) -> str:
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply
    return " ".join(text.split())


def _close(connection: smtplib.SMTP | None) -> None:
    """QUIT politely if the connection is alive, close it regardless."""
    if connection is None:
        return
    try:
        connection.quit()
    except (smtplib.SMTPException, OSError):
        pass
    finally:
        connection.close()
