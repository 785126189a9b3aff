"""Rollouts against relays that behave like providers' (bench/relay_smtp.py, loopback only).

Parts (`python -m bench --only …`):
* `throttle`: a relay that accepts 50 messages/s and answers 421 beyond it; 3,000 teammates,
  2 worker processes; once with TWOFA_SMTP_MAX_RATE=50 and once with no limit set. Figures:
  the time against the ideal (invitations / 50 s), failed invitations, and the share of
  attempts the relay answered 421.
* `starttls`: `smtp+starttls://` to a relay with a self-signed certificate (trusted through
  TWOFA_SMTP_CA_FILE) that answers DATA after 50 ms, against a bare smtplib loop that does
  STARTTLS once and sends one message at a time, to the same relay in the same run.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import smtplib
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.bench_rollout import _table, email_message, rollout_once
from bench.tools import _await_listening, free_port, load_average

ROOT = Path(__file__).resolve().parents[1]


class Relay:
    """bench/relay_smtp.py in its own process, and what it counted."""

    def __init__(self, *args: str) -> None:
        self.port = free_port()
        self.stats_file = Path(tempfile.mkdtemp(prefix="twofa-relay-")) / "stats.json"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.relay_smtp", str(self.port), "--stats",
             str(self.stats_file), *args],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _await_listening(self.port, 20, "the loopback relay")

    def stats(self) -> dict[str, int]:
        time.sleep(1.0)  # it writes them every half second
        return dict(json.loads(self.stats_file.read_text()))

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def self_signed_certificate(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 signed by its own key: (cert, key) as PEM files."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "twofa bench relay")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def throttle(teammates: int = 3000, workers: int = 2, rate: float = 50.0) -> dict[str, Any]:
    """The same rollout with the limit set to the relay's rate and with no limit set."""
    invitations = teammates - 1
    ideal = invitations / rate
    out: dict[str, Any] = {"teammates": teammates, "relay_rate_per_s": rate,
                           "relay_burst": rate / 5, "ideal_seconds": round(ideal, 1)}
    rows = []
    for label, extra in (("limit", {"TWOFA_SMTP_MAX_RATE": f"{rate:g}"}), ("no_limit", {})):
        relay = Relay("--rate", str(rate), "--burst", str(rate / 5))
        # fresh_env() exports the run's settings to this process (and so to the next run's
        # processes): the run without a limit must not inherit the other's.
        os.environ.pop("TWOFA_SMTP_MAX_RATE", None)
        try:
            result = rollout_once(teammates, f"smtp://127.0.0.1:{relay.port}", workers,
                                  smtp_pid=relay.proc.pid, env_extra=extra)
            counted = relay.stats()
        finally:
            relay.stop()
        attempts = counted["accepted"] + counted["refused"]
        out[label] = {**result, "relay": counted,
                      "time_vs_ideal": round(result["seconds"] / ideal, 3),
                      "refused_share": round(counted["refused"] / attempts, 4)}
        rows.append((f"throttling relay, {'TWOFA_SMTP_MAX_RATE=' + f'{rate:g}' if extra else 'no limit'}",
                     f"{result['seconds']:.1f} s, {result['failed']} failed, "
                     f"{100 * counted['refused'] / attempts:.2f}% 421",
                     f"ideal {ideal:.0f} s", result["seconds"] / ideal))
    print(f"\nrollout of {teammates} through a relay that accepts {rate:g}/s and answers 421 "
          f"beyond, {workers} worker processes, load average {load_average():.2f}\n")
    _table(rows)
    return out


def starttls_loop(port: int, n: int, ca_file: Path) -> float:
    """Messages/s of a bare loop: STARTTLS once, then one message after the other."""
    start = time.perf_counter()
    with smtplib.SMTP("127.0.0.1", port) as conn:
        conn.starttls(context=ssl.create_default_context(cafile=str(ca_file)))
        for i in range(n):
            conn.send_message(email_message(i))
    return n / (time.perf_counter() - start)


def starttls(teammates: int = 3000, workers: int = 2, delay: float = 0.05) -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(prefix="twofa-tls-"))
    cert, key = self_signed_certificate(folder)
    relay = Relay("--delay", str(delay), "--cert", str(cert), "--key", str(key))
    try:
        load = load_average()
        before = starttls_loop(relay.port, 150, cert)
        result = rollout_once(teammates, f"smtp+starttls://127.0.0.1:{relay.port}", workers,
                              smtp_pid=relay.proc.pid,
                              env_extra={"TWOFA_SMTP_CA_FILE": str(cert)})
        after = starttls_loop(relay.port, 150, cert)
        counted = relay.stats()
    finally:
        relay.stop()
    bare = (before + after) / 2
    rate = result["invitations_per_s"]
    print(f"\nrollout over STARTTLS to a relay answering DATA after {delay * 1000:.0f} ms: "
          f"{teammates} teammates, {workers} worker processes, load average {load:.2f}\n")
    _table([("rollout over STARTTLS, flip → last accepted", f"{rate:.0f}/s",
             f"STARTTLS once, then a loop {bare:.1f}/s", rate / bare)])
    print(f"(the relay saw {counted['connections']} connections carry messages; "
          f"bare loop before and after: {before:.1f} and {after:.1f}/s)")
    return {**result, "delay_ms": delay * 1000, "load_average_at_start": round(load, 2),
            "relay": counted, "bare_starttls_loop_per_s": round(bare, 1),
            "bare_loop_before_after": [round(before, 1), round(after, 1)],
            "ratio_vs_starttls_loop": round(rate / bare, 3)}
