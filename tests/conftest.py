"""Fixtures: one real twofa stack for the session (database, broker, SMTP, worker, relay)."""

from __future__ import annotations

import os
import signal
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from tests import stack as stack_module
from tests.private_services import PrivatePostgres, PrivateRedis
from tests.stack import Stack, answers, backend, check_services, free_port, wait_until
from tests.twofactor import Enrolled, bearer, enroll

ADMIN_PASSWORD = "admin-password-123"


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt  # scripts/test.sh stops a run with SIGTERM: tear the stacks down


def pytest_configure(config: pytest.Config) -> None:
    signal.signal(signal.SIGTERM, _interrupt)
    config.addinivalue_line(
        "markers", "uses_backend: builds its own Stack (no backend fixture), so runs on each backend")
    config.addinivalue_line(
        "markers", "backend_independent: needs a backend, but nothing it checks depends on which "
        "(page layout, languages in the browser): the postgres run of scripts/test.sh leaves it "
        "out, as it leaves out tests that use no backend")
    if backend() == "postgres" or os.environ.get("CI"):
        try:
            check_services()
        except Exception as exc:  # the suite fails, it never skips, when a service is missing
            raise pytest.UsageError(
                f"PostgreSQL/Redis must answer on 127.0.0.1 (run .ci/run to start them): {exc}"
            ) from exc


def pytest_report_header(config: pytest.Config) -> str:
    return f"twofa test backend: {backend()}"


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    main = Stack(home=tmp_path_factory.mktemp("stack")).setup()
    os.environ.update(main.env)  # this process acts as the API and the admin's CLI
    from services.config import get_settings

    get_settings.cache_clear()
    main.start_worker()
    main.start_relay()
    yield main
    main.teardown()


class Clock:
    """Moves the clock that enforcement reads (grace periods, reminders, exemptions) in every
    process of a stack at once, instead of sleeping through hours."""

    def __init__(self, stack: Stack) -> None:
        self.path = Path(stack.env["TWOFA_TEST_CLOCK_FILE"])
        self.offset = timedelta(0)

    def advance(self, **delta: float) -> None:
        from services import clock

        self.offset += timedelta(**delta)
        clock.set_offset(self.path, self.offset)

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset


@pytest.fixture
def clock(stack: Stack) -> Iterator[Clock]:
    moved = Clock(stack)
    yield moved
    from services import clock as service_clock

    service_clock.set_offset(moved.path, timedelta(0))  # the next test starts on time


@pytest.fixture(scope="session")
def client(stack: Stack) -> Iterator[TestClient]:
    from services.asgi import create_app

    with TestClient(create_app(), base_url="http://testserver") as c:
        yield c


@dataclass
class WorkspaceHandle:
    slug: str
    name: str
    admin_email: str
    admin_id: int
    client: TestClient
    admin_secret: str | None = None  # set once the admin has 2FA (enroll_admin)
    _enrolled_admin_token: str | None = None
    _api_key: str | None = None

    def login(self, email: str | None = None, password: str = ADMIN_PASSWORD) -> dict[str, str]:
        r = self.client.post("/v1/login", json={
            "workspace": self.slug, "email": email or self.admin_email, "password": password})
        assert r.status_code == 200, r.text
        return r.json()

    def admin_headers(self) -> dict[str, str]:
        """A full admin session: a fresh sign-in, or once the admin has 2FA, the session in
        which they enrolled (signing in again would need a code)."""
        if self._enrolled_admin_token:
            return bearer(self._enrolled_admin_token)
        body = self.login()
        assert body["status"] == "authenticated", body
        return bearer(body["token"])

    def enroll_admin(self) -> Enrolled:
        """Turn on the admin's own 2FA, as an admin must before requiring it."""
        token = self.admin_headers()["Authorization"].split()[1]
        enrolled = enroll(self.client, token)
        self.admin_secret, self._enrolled_admin_token = enrolled.secret, token
        return enrolled

    def require_two_factor(self, on: bool = True) -> dict[str, Any]:
        """PUT the policy as the admin (enrolling the admin first when turning it on)."""
        if on and not self.admin_secret:
            self.enroll_admin()
        r = self.client.put(f"/v1/workspaces/{self.slug}/two-factor-policy",
                            headers=self.admin_headers(), json={"require_two_factor": on})
        assert r.status_code == 200, r.text
        return dict(r.json())

    def api_key(self) -> str:
        """This workspace's API key for host-application calls (made once, as
        `twofa apikey create` does, so it works whatever the admin's sign-in state)."""
        if self._api_key is None:
            from services.accounts import workspaces
            from services.db import unit_of_work
            from services.host_checks import api_keys

            with unit_of_work() as session:
                _, self._api_key = api_keys.create(
                    session, workspaces.get_by_slug(session, self.slug), "tests")
        return self._api_key

    def introspect(self, token: str) -> dict[str, Any]:
        r = self.client.post("/v1/sessions/introspect", headers=bearer(self.api_key()),
                             json={"token": token})
        assert r.status_code == 200, r.text
        return dict(r.json())


@pytest.fixture
def make_workspace(client: TestClient) -> Iterator[object]:
    from services.accounts import workspaces
    from services.db import unit_of_work

    def make(name: str = "Acme & Co <Team>", teammates: int = 0,
             password: str = "member-password") -> WorkspaceHandle:
        slug = f"ws-{uuid.uuid4().hex[:10]}"
        with unit_of_work() as session:
            ws, admin = workspaces.create(session, slug, name, f"admin@{slug}.test",
                                          ADMIN_PASSWORD)
            if teammates:
                workspaces.seed(session, ws, teammates, password)
        return WorkspaceHandle(slug, name, admin.email, admin.id, client)

    yield make


@pytest.fixture
def workspace(make_workspace: object) -> WorkspaceHandle:
    return make_workspace()  # type: ignore[operator]


def start_api(stack: Stack, port: int | None = None, **env: str) -> Iterator[httpx.Client]:
    """`twofa api` as production runs it, in its own process, and a client for it."""
    port, name = port or free_port(), f"api-{uuid.uuid4().hex[:6]}"
    stack.start(name, "api", "--port", str(port), env=env)
    http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60)
    try:
        wait_until(lambda: answers(http), 30, message=f"the API on port {port}\n{stack.log(name)}")
        yield http
    finally:
        http.close()
        stack.kill(name)


@pytest.fixture(scope="session")
def api(stack: Stack) -> Iterator[httpx.Client]:
    """One real `twofa api` with the stack's settings, shared by every module that uses it (a
    module that needs other settings overrides `api` with a server of its own). Shared: one
    start-up (seconds of CPU) per run instead of one per module; each test makes its own
    workspace, as it does on the session's stack and database."""
    yield from start_api(stack)


@pytest.fixture
def make_ws(api: httpx.Client, make_workspace: Any) -> Any:
    """make_workspace, with the handle talking to the module's real server over HTTP."""
    def make(teammates: int = 0, password: str = "member-password") -> WorkspaceHandle:
        ws: WorkspaceHandle = make_workspace(teammates=teammates, password=password)
        ws.client = api  # type: ignore[assignment]  # httpx.Client: the same API as TestClient
        return ws
    return make


# Fixtures that stand up a backend; a test using none of them touches no backend, and the
# postgres run of scripts/test.sh (TWOFA_TEST_SKIP_BACKEND_FREE=1) leaves it out.
BACKEND_FIXTURES = {"stack", "client", "workspace", "make_workspace", "own_stack", "quiet_stack"}


def backend_free(item: pytest.Item) -> bool:
    """No backend fixture and no `uses_backend` mark (tests that build a Stack themselves)."""
    names = set(getattr(item, "fixturenames", ()))
    return not names & BACKEND_FIXTURES and item.get_closest_marker("uses_backend") is None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if Path(str(item.fspath)).name.startswith("test_fault"):
            item.add_marker(pytest.mark.slow)
    if os.environ.get("TWOFA_TEST_SKIP_BACKEND_FREE"):
        skipped = [item for item in items if run_once(item)]
        if skipped:
            config.hook.pytest_deselected(items=skipped)
            items[:] = [item for item in items if not run_once(item)]


def run_once(item: pytest.Item) -> bool:
    """Tests that scripts/test.sh runs in the embedded run only: those that touch no backend,
    and those marked `backend_independent` (a browser checking how pages read, on a `twofa up`
    that any backend serves alike). Once is enough, and the postgres run has more to do."""
    return backend_free(item) or item.get_closest_marker("backend_independent") is not None


@pytest.fixture(autouse=True)
def _backend_needs_a_mark(request: pytest.FixtureRequest) -> Iterator[None]:
    """A test that builds a Stack or asks for the backend without a backend fixture must say
    so (`uses_backend`), or scripts/test.sh would run it on one backend only."""
    stack_module.backend_free_test = backend_free(request.node)
    yield
    stack_module.backend_free_test = False


__all__ = ["wait_until"]


# Servers of a test's own, for the tests that stop and restart them (tests/private_services.py).
@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path / "redis")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def private_pg() -> Iterator[PrivatePostgres]:
    cluster = PrivatePostgres()
    try:
        cluster.init()
        cluster.start()
        yield cluster
    finally:
        cluster.remove()
