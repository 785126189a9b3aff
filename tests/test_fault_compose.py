"""The production topology without Docker: the processes infra/docker-compose.yml runs,
started by its own commands with its own environment, pass a rollout and a webhook delivery.

There is no Docker engine here, so this is how the compose file's commands, environment and
healthchecks get tested. The file is read as compose reads it (YAML anchors and merge keys,
`${VAR:-default}` / `${VAR:?message}` interpolation) and each twofa service is started as a
process, `replicas` times. What is rewritten, and only that:
* addresses: the infrastructure services (postgres, redis, mailpit) become this test's
  database, a private redis-server and an SMTP sink on loopback; the API's 0.0.0.0:8000
  becomes 127.0.0.1 on a free port (in the command and its healthcheck);
* the relay's heartbeat file moves from /tmp into the test's folder (tests run in parallel);
* TWOFA_WEBHOOK_ALLOW_PRIVATE=true is added, the receiver being on loopback.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
import yaml
from cryptography.fernet import Fernet

from tests.private_services import PrivateRedis, available
from tests.stack import ROOT, SmtpSink, backend, create_database, drop_database, free_port, wait_until
from tests.twofactor import bearer, enroll
from tests.webhook_receiver import Receiver

pytestmark = [pytest.mark.uses_backend, pytest.mark.slow,
              pytest.mark.skipif(backend() != "postgres", reason="production: PostgreSQL + Redis"),
              pytest.mark.skipif(not available() and not os.environ.get("CI"),
                                 reason="redis-server needed")]
COMPOSE = ROOT / "infra" / "docker-compose.yml"
TEAM = 150
# What the operator exports before `docker compose up` (the file refuses to start without keys).
OPERATOR_ENV = {"TWOFA_ENCRYPTION_KEYS": Fernet.generate_key().decode()}
ADMIN = ("admin@compose.test", "admin-password-123")


def interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's variable substitution: ${VAR}, ${VAR:-default}, ${VAR:?error}, $$."""
    def one(match: re.Match[str]) -> str:
        name, op, arg = match.group(1), match.group(2), match.group(3) or ""
        given = env.get(name)
        if op == ":-":
            return given if given else arg
        if op == ":?":
            if not given:
                raise AssertionError(f"compose refuses to start: {name}: {arg}")
            return given
        return given or ""

    pattern = r"\$\{(\w+)(?:(:-|:\?)([^}]*))?\}"
    return re.sub(pattern, one, value.replace("$$", "\0")).replace("\0", "$")


@dataclass
class Service:
    name: str
    command: list[str]
    env: dict[str, str]
    replicas: int
    healthcheck: list[str] | None  # argv, run as the container would


def read_compose(addresses: dict[str, str], api_port: int, folder: Path) -> dict[str, Service]:
    """The twofa services (built from infra/Dockerfile), with addresses and paths rewritten."""
    spec = yaml.safe_load(COMPOSE.read_text())
    heartbeat = str(folder / "relay.heartbeat")

    def rewrite(text: str) -> str:  # commands and healthchecks (environment: only the file)
        text = text.replace("0.0.0.0", "127.0.0.1").replace(":8000/", f":{api_port}/")
        text = re.sub(r"^8000$", str(api_port), text)  # the argument of --port
        return text.replace("/tmp/relay.heartbeat", heartbeat)

    services = {}
    for name, svc in spec["services"].items():
        if svc.get("build", {}).get("dockerfile") != "infra/Dockerfile":
            continue  # postgres, redis, mailpit: this test's own servers stand in
        env = {k: _relocated(interpolate(str(v), OPERATOR_ENV), addresses)
               for k, v in svc.get("environment", {}).items()}
        env = {k: v.replace("/tmp/relay.heartbeat", heartbeat) for k, v in env.items()}
        check = svc.get("healthcheck", {}).get("test")
        argv = None
        if check:
            kind, *rest = check
            argv = ["sh", "-c", rest[0]] if kind == "CMD-SHELL" else rest
            argv = [rewrite(a) for a in argv]
        services[name] = Service(name, [rewrite(a) for a in svc["command"]], env,
                                 svc.get("deploy", {}).get("replicas", 1), argv)
    return services


def _relocated(value: str, addresses: dict[str, str]) -> str:
    """A URL naming a compose service (postgres:5432) points at the stand-in instead; its
    scheme (the driver) is kept as the compose file says."""
    parts = urlsplit(value)
    if not parts.scheme or parts.hostname not in addresses:
        return value
    target = urlsplit(addresses[parts.hostname])
    return urlunsplit((parts.scheme, target.netloc, target.path or parts.path, "", ""))


class Topology:
    def __init__(self, services: dict[str, Service], folder: Path) -> None:
        self.services, self.folder = services, folder
        self.procs: list[tuple[str, subprocess.Popen[bytes]]] = []
        self.path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"

    def env(self, service: Service, **extra: str) -> dict[str, str]:
        # The container's environment: the compose entries and nothing of this test's own.
        return {"PATH": self.path, "HOME": str(self.folder), "LANG": "C.UTF-8",
                "TWOFA_WEBHOOK_ALLOW_PRIVATE": "true", **service.env, **extra}

    def run(self, name: str, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        service = self.services[name]
        return subprocess.run(list(args) or service.command, env=self.env(service, **extra),
                              cwd=self.folder, capture_output=True, text=True, timeout=300)

    def up(self, name: str) -> None:
        service = self.services[name]
        for replica in range(1, service.replicas + 1):
            log = open(self.folder / f"{name}-{replica}.log", "ab")  # noqa: SIM115
            self.procs.append((f"{name}-{replica}", subprocess.Popen(
                service.command, env=self.env(service), cwd=self.folder, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True)))

    def healthy(self, name: str) -> bool:
        service = self.services[name]
        assert service.healthcheck, name
        done = subprocess.run(service.healthcheck, env=self.env(service), cwd=self.folder,
                              capture_output=True, timeout=60)
        return done.returncode == 0

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-1500:]}"
                         for p in sorted(self.folder.glob("*.log")))

    def down(self) -> dict[str, int]:
        """As `docker compose down`: SIGTERM to each main process, SIGKILL if it lingers."""
        for _, proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        codes = {}
        for name, proc in self.procs:
            try:
                codes[name] = proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                codes[name] = proc.wait()
        return codes


@pytest.fixture
def topology(tmp_path: Path) -> Iterator[tuple[Topology, SmtpSink, int]]:
    redis = PrivateRedis(tmp_path / "redis")
    redis.start()
    smtp = SmtpSink()
    smtp.start()
    database = create_database()
    folder = tmp_path / "compose"
    folder.mkdir()
    port = free_port()
    addresses = {"postgres": database.replace("+psycopg", ""), "redis": redis.url,
                 "mailpit": smtp.url}
    top = Topology(read_compose(addresses, port, folder), folder)
    try:
        yield top, smtp, port
    finally:
        top.down()
        smtp.stop()
        redis.stop()
        drop_database(database)


def test_the_compose_processes_run_a_rollout_and_deliver_a_webhook(
    topology: tuple[Topology, SmtpSink, int]
) -> None:
    top, smtp, port = topology
    assert set(top.services) == {"migrate", "api", "worker", "webhook-worker", "relay"}
    assert top.services["api"].env["TWOFA_ENV"] == "production"

    migrated = top.run("migrate")
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr
    slug = f"compose-{uuid.uuid4().hex[:6]}"
    for args, extra in (
        (["twofa", "workspace", "create", slug, "--name", "Compose", "--admin-email", ADMIN[0],
          "--admin-password", ADMIN[1]], {}),
        # Test data: `seed` refuses production, so it alone runs as a test installation.
        (["twofa", "seed", slug, "--teammates", str(TEAM), "--password", "member-pw-123"],
         {"TWOFA_ENV": "test"}),
    ):
        done = top.run("api", *args, **extra)
        assert done.returncode == 0, done.stdout + done.stderr

    for name in ("api", "worker", "webhook-worker", "relay"):
        top.up(name)
    assert sum(1 for name, _ in top.procs if name.startswith("worker-")) == 2  # replicas: 2
    for name in ("api", "worker", "webhook-worker", "relay"):  # the compose healthchecks
        wait_until(lambda n=name: top.healthy(n), 120, 1, message=f"{name} healthy\n{top.logs()}")

    receiver = Receiver().start()
    try:
        _rollout_and_webhook(top, smtp, port, slug, receiver)
    finally:
        receiver.stop()
    codes = top.down()
    assert all(code in (0, -signal.SIGTERM) for code in codes.values()), (codes, top.logs())


def _rollout_and_webhook(top: Topology, smtp: SmtpSink, port: int, slug: str,
                         receiver: Receiver) -> None:
    http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60)
    login = http.post("/v1/login", json={"workspace": slug, "email": ADMIN[0], "password": ADMIN[1]})
    assert login.status_code == 200, login.text
    token = login.json()["token"]
    # Subscribed before the admin enrolls, so that their twofa.enabled is surely delivered.
    hook = http.post(f"/v1/workspaces/{slug}/webhooks", headers=bearer(token), json={
        "url": receiver.url("/hook"), "event_types": ["twofa.policy.changed", "twofa.enabled"]})
    assert hook.status_code == 201, hook.text
    receiver.secrets["/hook"] = hook.json()["secret"]
    enroll(http, token)  # type: ignore[arg-type]  # httpx.Client: the TestClient API

    started = time.monotonic()
    r = http.put(f"/v1/workspaces/{slug}/two-factor-policy", headers=bearer(token),
                 json={"require_two_factor": True})
    assert r.status_code == 200, r.text

    def rollout() -> dict[str, Any]:
        got = http.get(f"/v1/workspaces/{slug}/two-factor-policy", headers=bearer(token))
        return dict(got.json()["rollout"])

    wait_until(lambda: rollout()["pending"] == 0, 180, 0.5, message=f"the rollout\n{top.logs()}")
    print(f"compose topology: {TEAM} invitations in {time.monotonic() - started:.1f} s")
    assert rollout() == {"teammates": TEAM + 1, "enrolled": 1, "exempt": 0, "invited": TEAM,
                         "pending": 0, "failed": 0}
    invitations = [m for m in smtp.snapshot() if m.recipients[0].startswith("member-")]
    assert Counter(m.recipients[0] for m in invitations) == Counter(
        f"member-{i:05d}@{slug}.test" for i in range(1, TEAM + 1))
    # The links follow the compose file's TWOFA_PUBLIC_URL default.
    assert f"https://twofa.example.com/enroll?workspace={slug}" in invitations[0].part("plain")

    wait_until(lambda: len(receiver.at("/hook")) >= 2, 120, 0.2,
               message=f"the webhook deliveries\n{top.logs()}")
    got = receiver.at("/hook")
    assert all(r.verified is not None for r in got), [r.error for r in got]
    assert sorted(r.verified["type"] for r in got) == ["twofa.enabled", "twofa.policy.changed"]  # type: ignore[index]
    http.close()


def test_compose_interpolation_and_relocation() -> None:
    """The small compose reader above, on what the compose file uses."""
    env = {"SET": "x"}
    assert interpolate("${SET:-d}/${UNSET:-d}/${SET:?m}/$${SET}", env) == "x/d/x/${SET}"
    with pytest.raises(AssertionError, match="UNSET: needed"):
        interpolate("${UNSET:?needed}", env)
    assert _relocated("postgresql+psycopg://twofa:pw@postgres:5432/twofa",
                      {"postgres": "postgresql://postgres@127.0.0.1:5432/t1"}) == \
        "postgresql+psycopg://postgres@127.0.0.1:5432/t1"
    assert _relocated("https://twofa.example.com", {"postgres": "x"}) == "https://twofa.example.com"
    assert shutil.which("twofa", path=str(Path(sys.executable).parent)), "the console script"
