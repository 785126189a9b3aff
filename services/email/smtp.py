"""SMTP delivery over one reused connection, with failures sorted into transient/permanent.

`smtp://` sends in the clear, `smtp+starttls://` upgrades with STARTTLS (refusing a server
that does not offer it), `smtps://` speaks TLS from the start. TLS checks the certificate
and host name against the system's trust store, or against TWOFA_SMTP_CA_FILE when set.
"""

from __future__ import annotations

import re
import smtplib
import socket
import ssl
from email.utils import parseaddr
from functools import lru_cache
from types import TracebackType
from urllib.parse import unquote, urlsplit

from services import tracing
from services.config import get_settings
from services.email.message import OutgoingEmail


class SendError(Exception):
    pass


class TransientSendError(SendError):
    """Worth retrying later: connection trouble, 4xx replies."""


class RecipientDeferred(TransientSendError):
    """This recipient was refused for now (4xx on RCPT); other messages may still go out."""


class Throttled(TransientSendError):
    """The relay asks us to slow down: 421 (it closes the connection) at any step, or 451 to
    the connection, MAIL or DATA. A 451 to RCPT stays one recipient's deferral (greylisting)."""


THROTTLE_CODES = (421, 451)


class PermanentSendError(SendError):
    """The server refused this message for good (5xx): retrying cannot help."""


class SmtpMailer:
    """`with SmtpMailer() as m: m.send(email)`: connects lazily, reconnects once if dropped."""

    def __init__(self, url: str | None = None, timeout: float = 30.0) -> None:
        self.url = urlsplit(url or get_settings().resolved_smtp_url)
        self.timeout = timeout
        self._conn: smtplib.SMTP | None = None
        self.envelope_from = parseaddr(get_settings().mail_from)[1] or "no-reply@twofa.invalid"

    def __enter__(self) -> SmtpMailer:
        return self

    def __exit__(self, *exc: object | TracebackType) -> None:
        self.close()

    def _connect(self) -> smtplib.SMTP:
        scheme, host, port = self.url.scheme, self.url.hostname or "127.0.0.1", self.url.port
        conn: smtplib.SMTP | None = None
        try:
            if scheme == "smtps":
                conn = smtplib.SMTP_SSL(host, port or 465, timeout=self.timeout,
                                        context=tls_context(), local_hostname=_ehlo_name())
            else:
                conn = smtplib.SMTP(host, port or 25, timeout=self.timeout,
                                    local_hostname=_ehlo_name())
                if scheme == "smtp+starttls":
                    conn.starttls(context=tls_context())
            if self.url.username:
                conn.login(unquote(self.url.username), unquote(self.url.password or ""))
        except (OSError, smtplib.SMTPException) as exc:
            if conn is not None:
                conn.close()
            code = getattr(exc, "smtp_code", None)
            if code in THROTTLE_CODES:  # a greeting (or EHLO) of 421/451: too many of us
                raise Throttled(f"{code} {_text(getattr(exc, 'smtp_error', b''))}") from exc
            raise TransientSendError(f"cannot reach the SMTP server: {exc}") from exc
        return conn

    @property
    def connected(self) -> bool:
        return self._conn is not None

    def send(self, email: OutgoingEmail) -> None:
        self.send_bytes(email.to, _wire(email))

    def send_bytes(self, to: str, data: bytes) -> None:
        """Send a message already serialised with CRLF line ends (services/email/template.py),
        in a span of its own (the recipient is not named in it: no addresses in traces)."""
        with tracing.span("smtp send", kind="client", attributes={
                "server.address": self.url.hostname or "127.0.0.1",
                "server.port": self.url.port or 0}):
            self._send_bytes(to, data)

    def _send_bytes(self, to: str, data: bytes) -> None:
        for attempt in (1, 2):
            reused = self._conn is not None
            if self._conn is None:
                self._conn = self._connect()
            try:
                _sendmail(self._conn, self.envelope_from, to, data)
                return
            except (smtplib.SMTPServerDisconnected, ConnectionError) as exc:
                # A kept connection the server dropped meanwhile (its idle timeout, a
                # restart): reconnect once. A fresh one failing so is the server's trouble.
                self.close()
                if attempt == 2 or not (reused or isinstance(
                        exc, smtplib.SMTPServerDisconnected)):
                    raise TransientSendError(str(exc)) from exc
            except smtplib.SMTPRecipientsRefused as exc:
                code, reply = next(iter(exc.recipients.values()))
                if code == 421:  # the server is closing: the connection's refusal, not ours
                    self.close()
                    raise Throttled(f"{code} {_text(reply)}") from exc
                error = _classify(code, reply)
                if isinstance(error, TransientSendError):
                    raise RecipientDeferred(str(error)) from exc
                raise error from exc
            except smtplib.SMTPResponseException as exc:
                if exc.smtp_code in THROTTLE_CODES:
                    self.close()  # 421 closes the channel; after a 451 start afresh too
                    raise Throttled(f"{exc.smtp_code} {_text(exc.smtp_error)}") from exc
                self._reset()
                raise _classify(exc.smtp_code, exc.smtp_error) from exc
            except UnicodeEncodeError as exc:  # an address SMTP without SMTPUTF8 cannot carry
                self._reset()
                raise PermanentSendError(f"cannot encode the message or address: {exc}") from exc
            except (OSError, smtplib.SMTPException) as exc:
                self.close()
                raise TransientSendError(str(exc)) from exc

    def _reset(self) -> None:
        try:
            if self._conn is not None:
                self._conn.rset()
        except (OSError, smtplib.SMTPException):
            self.close()

    def close(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            try:
                conn.quit()
            except (OSError, smtplib.SMTPException):
                conn.close()


def tls_context() -> ssl.SSLContext:
    """Certificate and host name checked; TWOFA_SMTP_CA_FILE, when set, is what is trusted."""
    ca_file = get_settings().smtp_ca_file
    return ssl.create_default_context(cafile=str(ca_file) if ca_file else None)


def _text(reply: bytes | str) -> str:
    return reply.decode(errors="replace") if isinstance(reply, bytes) else reply


@lru_cache(maxsize=1)
def _ehlo_name() -> str:
    """What smtplib says in EHLO, worked out once per process: it would resolve it with
    every connection (socket.getfqdn, ~0.3 ms), and a batch opens several."""
    fqdn = socket.getfqdn()
    if "." in fqdn:
        return fqdn
    try:
        return f"[{socket.gethostbyname(socket.gethostname())}]"
    except OSError:
        return "[127.0.0.1]"


def _sendmail(conn: smtplib.SMTP, sender: str, to: str, data: bytes) -> None:
    """`conn.sendmail(sender, [to], data)`, pipelined (RFC 2920) where the server offers it:
    MAIL, RCPT and DATA in one write, then the message, so two round trips instead of four
    (a relay 10 ms away: 20 ms saved per message). Failures raise what sendmail raises."""
    conn.ehlo_or_helo_if_needed()
    if not conn.has_extn("pipelining"):
        conn.sendmail(sender, [to], data)
        return
    conn.send(f"MAIL FROM:{smtplib.quoteaddr(sender)}\r\nRCPT TO:{smtplib.quoteaddr(to)}\r\n"
              "DATA\r\n")
    mail_code, mail_reply = conn.getreply()
    if mail_code == 421:  # the server closes now: the other replies never come
        conn.close()
        raise smtplib.SMTPSenderRefused(mail_code, mail_reply, sender)
    rcpt_code, rcpt_reply = conn.getreply()
    if rcpt_code == 421:
        conn.close()
        raise smtplib.SMTPRecipientsRefused({to: (rcpt_code, rcpt_reply)})
    data_code, data_reply = conn.getreply()
    refused = mail_code != 250 or rcpt_code not in (250, 251)
    if data_code == 354 and refused:  # a server that should have refused DATA: end it empty
        conn.send(b".\r\n")
        conn.getreply()
    if mail_code != 250:
        raise smtplib.SMTPSenderRefused(mail_code, mail_reply, sender)
    if rcpt_code not in (250, 251):
        conn.rset()  # as sendmail does: the next message starts clean
        raise smtplib.SMTPRecipientsRefused({to: (rcpt_code, rcpt_reply)})
    if data_code != 354:
        raise smtplib.SMTPDataError(data_code, data_reply)
    quoted = _LEADING_DOT.sub(b"..", data)  # dot-stuffing, as smtplib's data() does
    conn.send(quoted + (b".\r\n" if quoted.endswith(b"\r\n") else b"\r\n.\r\n"))
    code, reply = conn.getreply()
    if code != 250:
        raise smtplib.SMTPDataError(code, reply)


_LEADING_DOT = re.compile(rb"(?m)^\.")


def _wire(email: OutgoingEmail) -> bytes:
    # sendmail does not turn bare LF into CRLF (docs/measurements.md): serialise with CRLF.
    return email.mime.as_bytes(policy=email.mime.policy.clone(linesep="\r\n"))


def _classify(code: int, reply: bytes | str) -> SendError:
    text = _text(reply)
    if 500 <= code < 600:
        return PermanentSendError(f"{code} {text}")
    return TransientSendError(f"{code} {text}")
