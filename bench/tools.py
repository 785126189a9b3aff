"""External tools of the benchmarks: wrk (HTTP load) and Postfix's smtp-sink (an SMTP server
in C, so the server's own cost stays small), installed with apt-get when missing."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

LUA = Path(__file__).with_name("wrk") / "requests.lua"
WRK_THREADS, WRK_CONNECTIONS = 2, 32
SMTP_SINK = "/usr/sbin/smtp-sink"


def ensure_tools() -> None:
    """apt-get install wrk and postfix (for smtp-sink) if absent. Postfix is installed with
    "No configuration", so no mail daemon starts or listens on port 25."""
    missing = [pkg for pkg, path in (("wrk", shutil.which("wrk")), ("postfix", _sink()))
               if not path]
    if not missing:
        return
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    if "postfix" in missing:
        subprocess.run(["debconf-set-selections"], check=True, env=env,
                       input=b"postfix postfix/main_mailer_type select No configuration\n")
    subprocess.run(["apt-get", "update", "-q"], check=True, env=env, stdout=subprocess.DEVNULL)
    subprocess.run(["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing],
                   check=True, env=env, stdout=subprocess.DEVNULL)
    if "postfix" in missing:  # belt and braces: no daemon may keep running after the install
        subprocess.run(["postfix", "stop"], env=env, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, check=False)


def _sink() -> str | None:
    return SMTP_SINK if os.path.exists(SMTP_SINK) else shutil.which("smtp-sink")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def load_average() -> float:
    return os.getloadavg()[0]


@dataclass
class WrkResult:
    name: str
    requests: int
    seconds: float
    errors: int  # connect/read/write/timeout errors and non-2xx answers
    unexpected: int  # 2xx answers without the expected text
    p50_ms: float
    p99_ms: float
    refusals: bool = False  # every answer is meant to be a 4xx (wrong codes): count them all
    server_cpu_us: float = 0.0  # the API process's CPU time per request (user + system)

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def ok_rps(self) -> float:
        if self.refusals:
            return self.rps
        return (self.requests - self.errors - self.unexpected) / self.seconds if self.seconds else 0.0

    def as_dict(self) -> dict[str, object]:
        return {"requests": self.requests, "seconds": round(self.seconds, 2),
                "req_per_s": round(self.rps, 1), "ok_req_per_s": round(self.ok_rps, 1),
                "errors": self.errors, "unexpected_bodies": self.unexpected,
                "p50_ms": round(self.p50_ms, 2), "p99_ms": round(self.p99_ms, 2),
                "server_cpu_us_per_request": round(self.server_cpu_us)}


def wrk(name: str, base_url: str, lines: list[str], seconds: float, *, once: bool = False,
        expect: str = "", refusals: bool = False, server_pid: int | None = None) -> WrkResult:
    """Run `wrk -t2 -c32` over `lines` ("METHOD\\tPATH\\tAUTH\\tBODY"), cycling through them
    (or sending each once when `once`)."""
    with tempfile.NamedTemporaryFile("w", suffix=".tsv", delete=False) as f:
        f.write("\n".join(lines) + "\n")
    env = {**os.environ, "BENCH_REQUESTS": f.name, "BENCH_THREADS": str(WRK_THREADS),
           "BENCH_ONCE": "1" if once else "0", "BENCH_EXPECT": expect}
    cpu_before = cpu_seconds(server_pid)
    try:
        out = subprocess.run(
            ["wrk", f"-t{WRK_THREADS}", f"-c{WRK_CONNECTIONS}", f"-d{seconds:g}s", "--timeout", "10s",
             "-s", str(LUA), base_url],
            env=env, check=True, capture_output=True, text=True, timeout=seconds + 60).stdout
    finally:
        os.unlink(f.name)
    cpu = cpu_seconds(server_pid) - cpu_before
    data = json.loads(next(line for line in out.splitlines() if line.startswith("{")))
    errors = sum(data[k] for k in ("connect_errors", "read_errors", "write_errors", "non_2xx",
                                   "timeouts"))
    return WrkResult(name, data["requests"], data["duration_us"] / 1e6, errors,
                     data["unexpected_bodies"], data["p50_us"] / 1000, data["p99_us"] / 1000, refusals,
                     cpu / max(1, data["requests"]) * 1e6)


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU of a process so far: a cost per request that, unlike req/s, holds
    up when other work shares the cores."""
    if pid is None:
        return 0.0
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _await_listening(port: int, seconds: float, what: str) -> None:
    """Until something accepts connections on the loopback port, or stop the benchmark."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"{what} did not start")


class SmtpSink:
    """Postfix's smtp-sink on a loopback port: accepts every message, keeps none."""

    def __init__(self, port: int) -> None:
        self.port = port
        args = [_sink() or SMTP_SINK, f"127.0.0.1:{port}", "256"]
        if os.geteuid() == 0:
            args[1:1] = ["-u", "nobody"]  # it refuses to run as root
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _await_listening(port, 10, "smtp-sink")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def group_pids(pgid: int) -> list[int]:
    """The processes of a process group (one of ours: started with start_new_session)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid:
                pids.append(int(entry.name))
    return pids


def group_cpu_seconds(pgid: int) -> float:
    """User + system CPU of the live processes of a group (a worker and its pool)."""
    total = 0.0
    for pid in group_pids(pgid):
        try:
            total += cpu_seconds(pid)
        except OSError:
            continue
    return total


def peak_rss_mib(pgid: int) -> float:
    """The largest peak resident set (VmHWM) among a group's processes, in MiB."""
    peak = 0
    for pid in group_pids(pgid):
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]))
        except OSError:
            continue
    return peak / 1024


class SlowSmtp:
    """bench/slow_smtp.py on a loopback port: answers DATA after `delay` seconds."""

    def __init__(self, port: int, delay: float) -> None:
        import sys

        self.port = port
        self.proc = subprocess.Popen([sys.executable, "-m", "bench.slow_smtp", str(port), str(delay)],
                                     cwd=Path(__file__).resolve().parents[1],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _await_listening(port, 20, "the slow SMTP server")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)
