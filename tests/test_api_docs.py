"""/docs works offline: Swagger UI comes from the app itself, and "Authorize" takes a bearer
token."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient


@pytest.fixture(scope="module")
def http() -> Iterator[TestClient]:
    from services.api.app import create_app

    with TestClient(create_app(), base_url="http://testserver") as c:
        yield c


def test_docs_page_loads_nothing_from_another_host(http: TestClient) -> None:
    page = http.get("/docs")
    assert page.status_code == 200
    assert not re.search(r"(https?:)?//", page.text), "an absolute URL in /docs"
    assets = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert {a.rsplit("/", 1)[-1] for a in assets} >= {"swagger-ui-bundle.js", "swagger-ui.css"}
    for asset in assets:
        r = http.get(asset)
        assert r.status_code == 200 and len(r.content) > 0, asset


def test_swagger_ui_is_told_the_openapi_url_and_no_validator(http: TestClient) -> None:
    page = http.get("/docs").text
    assert "url: '/openapi.json'" in page
    assert '"validatorUrl": null' in page


def test_openapi_declares_bearer_auth_on_session_routes(http: TestClient) -> None:
    spec = http.get("/openapi.json").json()
    schemes = spec["components"]["securitySchemes"]
    bearer = [name for name, s in schemes.items() if s == {**s, "type": "http", "scheme": "bearer"}]
    assert bearer, schemes
    assert {bearer[0]: []} in spec["paths"]["/v1/me"]["get"]["security"]
    assert {bearer[0]: []} in spec["paths"]["/v1/workspaces/{slug}/two-factor-policy"]["put"]["security"]
    # API-key routes take the same header.
    assert {bearer[0]: []} in spec["paths"]["/v1/checks/login"]["post"]["security"]
    assert {bearer[0]: []} in spec["paths"]["/v1/sessions/introspect"]["post"]["security"]
