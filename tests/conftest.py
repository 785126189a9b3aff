"""Fixtures: one real twofa stack for the session (database, broker, SMTP, worker, relay)."""

from __future__ import annotations

import os
import signal
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.stack import Stack, backend, check_services, wait_until

ADMIN_PASSWORD = "admin-password-123"


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt  # scripts/test.sh stops a run with SIGTERM: tear the stacks down


def pytest_configure(config: pytest.Config) -> None:
    signal.signal(signal.SIGTERM, _interrupt)
    config.addinivalue_line(
        "markers", "uses_backend: builds its own Stack (no backend fixture), so runs on each backend")
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


@pytest.fixture(scope="session")
def client(stack: Stack) -> Iterator[TestClient]:
    from services.api.app import create_app

    with TestClient(create_app(), base_url="http://testserver") as c:
        yield c


@dataclass
class WorkspaceHandle:
    slug: str
    name: str
    admin_email: str
    admin_id: int
    client: TestClient

    def login(self, email: str | None = None, password: str = ADMIN_PASSWORD) -> dict[str, str]:
        r = self.client.post("/v1/login", json={
            "workspace": self.slug, "email": email or self.admin_email, "password": password})
        assert r.status_code == 200, r.text
        return r.json()

    def admin_headers(self) -> dict[str, str]:
        body = self.login()
        assert body["status"] == "authenticated", body
        return {"Authorization": f"Bearer {body['token']}"}


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
        skipped = [item for item in items if backend_free(item)]
        if skipped:
            config.hook.pytest_deselected(items=skipped)
            items[:] = [item for item in items if not backend_free(item)]


@pytest.fixture(autouse=True)
def _stack_needs_a_mark(request: pytest.FixtureRequest) -> Iterator[None]:
    """A test that builds a Stack without a backend fixture must say so (`uses_backend`),
    or scripts/test.sh would run it on one backend only."""
    Stack.guard = backend_free(request.node)
    yield
    Stack.guard = False


__all__ = ["wait_until"]
