"""A loopback SMTP server that behaves like a provider's relay: it accepts so many messages a
second and answers 421 (or 451) beyond that, can refuse everything for a while, and can
require STARTTLS with a self-signed certificate the test makes itself.

It is an `SmtpSink` (tests/stack.py), so a `Stack` can run on it, and it keeps what a
person checking the relay's side would look at: when each message arrived, over how many
connections, whether they were encrypted, and how many attempts it refused.
"""

from __future__ import annotations

import datetime
import ipaddress
import ssl
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller

from tests.stack import SmtpSink, _Handler


def self_signed_certificate(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and localhost, signed by its own key: (cert, key) PEM."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "twofa test relay")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([
            x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    folder.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = folder / "relay-cert.pem", folder / "relay-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


class _ThrottlingHandler(_Handler):
    sink: ThrottlingSink

    async def handle_MAIL(self, server: Any, session: Any, envelope: Any, address: str,  # noqa: N802
                          mail_options: list[str]) -> str:
        refusal = self.sink.refusal()
        if refusal:
            return refusal
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        if set(envelope.rcpt_tos) & self.sink.refuse_data:
            with self.sink.lock:
                self.sink.refused += 1
            return f"{self.sink.code} 4.7.0 try again later"
        answer = await super().handle_DATA(server, session, envelope)
        with self.sink.lock:
            self.sink.arrivals.append(time.monotonic())
            self.sink.sessions.add(id(session))
            self.sink.encrypted.append(session.ssl is not None)
        return answer


@dataclass
class ThrottlingSink(SmtpSink):
    rate: float = 0.0  # messages a second it accepts (a token bucket); 0: as many as come
    burst: float = 1.0  # the bucket's size
    code: int = 421  # its answer to MAIL beyond the rate
    refuse_next: int = 0  # answer `code` to this many MAIL commands whatever the rate
    refuse_for: float = 0.0  # answer `code` to every MAIL this many seconds from the first
    refuse_data: set[str] = field(default_factory=set)  # answer `code` to DATA for these
    certificate: tuple[Path, Path] | None = None  # (cert, key): STARTTLS required
    arrivals: list[float] = field(default_factory=list)  # monotonic time of each accepted
    encrypted: list[bool] = field(default_factory=list)  # whether each came over TLS
    sessions: set[int] = field(default_factory=set)  # connections that carried a message
    refused: int = 0
    _tokens: float = 0.0
    _refilled: float = field(default_factory=time.monotonic)
    _first_mail: float | None = None

    def __post_init__(self) -> None:
        self._tokens = self.burst

    @property
    def url(self) -> str:
        scheme = "smtp+starttls" if self.certificate else "smtp"
        return f"{scheme}://127.0.0.1:{self.port}"

    def start(self) -> None:
        kwargs: dict[str, Any] = {}
        if self.certificate:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*map(str, self.certificate))
            kwargs = {"tls_context": context, "require_starttls": True}
        self.controller = Controller(_ThrottlingHandler(self), hostname="127.0.0.1",
                                     port=self.port, **kwargs)
        self.controller.start()

    def refusal(self) -> str | None:
        """The answer to a MAIL command that is refused, or None if it may go on."""
        with self.lock:
            now = time.monotonic()
            self._first_mail = self._first_mail or now
            if self.refuse_next > 0:
                self.refuse_next -= 1
            elif now - self._first_mail < self.refuse_for:
                pass
            elif self.rate > 0:
                self._tokens = min(self.burst, self._tokens + (now - self._refilled) * self.rate)
                self._refilled = now
                if self._tokens >= 1:
                    self._tokens -= 1
                    return None
            else:
                return None
            self.refused += 1
            return f"{self.code} 4.7.0 too many messages, slow down"

    def most_in_one_second(self) -> int:
        """The most messages accepted within any one second."""
        with self.lock:
            times = sorted(self.arrivals)
        most, first = 0, 0
        for last, t in enumerate(times):
            while t - times[first] >= 1.0:
                first += 1
            most = max(most, last - first + 1)
        return most
