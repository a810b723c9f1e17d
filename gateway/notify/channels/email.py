"""E-mail over SMTP (aiosmtplib): a multipart/alternative message with the
plain text and a simple HTML page, UTF-8 subject and sender name (encoded as
RFC 2047 where needed), ``Auto-Submitted: auto-generated`` so that
auto-responders stay quiet.

Failures: no connection, a timeout, a dropped connection and 4xx answers are
retryable; a refused login, STARTTLS not offered and 5xx answers (a refused
recipient) are not.
"""

from __future__ import annotations

import ssl
from email.errors import HeaderParseError
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

import aiosmtplib

from gateway.clock import Clock
from gateway.notify.channels.base import Channel, ChannelError, ChannelPolicy
from gateway.notify.config import EmailChannelConfig
from gateway.notify.message import Notification, Rendered

__all__ = ["EmailChannel"]


def _smtp_error(exc: aiosmtplib.SMTPException) -> ChannelError:
    if isinstance(exc, aiosmtplib.SMTPAuthenticationError):
        return ChannelError(f"SMTP login refused ({exc.code})", retryable=False)
    if isinstance(exc, aiosmtplib.SMTPNotSupported):
        return ChannelError(f"SMTP server: {exc.message}", retryable=False)
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        codes = [e.code for e in exc.recipients]
        return ChannelError(
            f"SMTP recipient refused ({', '.join(map(str, codes))}): "
            f"{exc.recipients[0].message if exc.recipients else ''}",
            retryable=all(400 <= c < 500 for c in codes),
        )
    if isinstance(exc, (aiosmtplib.SMTPTimeoutError, aiosmtplib.SMTPServerDisconnected)):
        return ChannelError(f"SMTP {type(exc).__name__}: {exc}", retryable=True)
    if isinstance(exc, aiosmtplib.SMTPConnectError):
        return ChannelError(f"cannot connect to the SMTP server: {exc}", retryable=True)
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return ChannelError(
            f"SMTP answered {exc.code}: {exc.message}", retryable=400 <= exc.code < 500
        )
    return ChannelError(f"SMTP {type(exc).__name__}: {exc}", retryable=True)


class EmailChannel(Channel):
    kind = "email"
    address_kind = "email"

    def __init__(self, name: str, config: EmailChannelConfig, clock: Clock) -> None:
        super().__init__(name, ChannelPolicy.of(config))
        self.config = config
        self._clock = clock
        self._tls: ssl.SSLContext | None = None

    def secrets(self) -> list[str]:
        return [self.config.password.get_secret_value()] if self.config.password else []

    def message(self, n: Notification, rendered: Rendered, to: str) -> EmailMessage:
        cfg = self.config
        msg = EmailMessage()
        domain = cfg.from_address.rpartition("@")[2]
        msg["From"] = Address(cfg.from_name, addr_spec=cfg.from_address)
        msg["To"] = Address(n.recipient.name, addr_spec=to)
        msg["Subject"] = rendered.subject
        msg["Date"] = format_datetime(self._clock.now())
        msg["Message-ID"] = make_msgid(idstring=n.id, domain=domain or None)
        msg["Auto-Submitted"] = "auto-generated"
        msg["X-Gateway-Notification"] = n.id
        msg.set_content(rendered.text, charset="utf-8")
        if rendered.html:
            msg.add_alternative(rendered.html, subtype="html", charset="utf-8")
        return msg

    def _tls_context(self) -> ssl.SSLContext:
        # Reads the CA file: built once, on the first send (never in __init__).
        if self._tls is None:
            cfg = self.config
            try:
                ctx = ssl.create_default_context(
                    cafile=str(cfg.ca_file) if cfg.ca_file is not None else None
                )
            except (OSError, ssl.SSLError) as exc:
                raise ChannelError(f"ca_file {cfg.ca_file}: {exc}", retryable=False) from None
            if not cfg.validate_certs:
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
            self._tls = ctx
        return self._tls

    async def send(self, n: Notification, rendered: Rendered) -> None:
        to = self.require(n)
        cfg = self.config
        try:
            msg = self.message(n, rendered, to)
        except (ValueError, HeaderParseError) as exc:
            raise ChannelError(
                f"recipient {n.recipient.id!r}: the e-mail address or name is not usable: "
                f"{type(exc).__name__}",
                retryable=False,
            ) from None
        tls = self._tls_context() if cfg.security != "none" else None
        try:
            await aiosmtplib.send(
                msg,
                hostname=cfg.host,
                port=cfg.effective_port,
                username=cfg.username,
                password=cfg.password.get_secret_value() if cfg.password else None,
                use_tls=cfg.security == "tls",
                start_tls=cfg.security == "starttls",
                tls_context=tls,
                timeout=cfg.timeout_s,
            )
        except aiosmtplib.SMTPException as exc:
            raise _redacted(self, _smtp_error(exc)) from None
        except OSError as exc:  # ssl.SSLError included
            raise ChannelError(
                self.redact(f"SMTP {type(exc).__name__}: {exc}"), retryable=True
            ) from None


def _redacted(channel: Channel, error: ChannelError) -> ChannelError:
    return ChannelError(
        channel.redact(error.reason),
        retryable=error.retryable,
        retry_after_s=error.retry_after_s,
    )
