"""Fixtures: one real twofa stack for the session (database, broker, SMTP, worker, relay)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.stack import Stack, backend, check_services, wait_until

ADMIN_PASSWORD = "admin-password-123"


def pytest_configure(config: pytest.Config) -> None:
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


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if Path(str(item.fspath)).name.startswith("test_fault"):
            item.add_marker(pytest.mark.slow)


__all__ = ["wait_until"]
