"""Console pages over HTTP (no browser): the error pages in the console's look while `/v1`
keeps JSON, refused fields said in sentences that name them, the join link checked before
its form, and the Teammates list's counts, pages and filters kept across an action."""

from __future__ import annotations

import re
from typing import Any

from fastapi.testclient import TestClient

from tests.conftest import WorkspaceHandle
from tests.test_console_pages import browser, console_client, enroll, sign_in, token_of  # noqa: F401

RAW = ("Input should", "String should", "List should", "Value error")


def said(page: str, text: str) -> bool:
    """`text` is on the page and no validation library's wording is."""
    return text in page and not any(raw in page for raw in RAW)


def test_a_mistyped_address_is_the_console_404_page_and_the_api_keeps_json(
        browser: TestClient, workspace: WorkspaceHandle) -> None:  # noqa: F811
    for path in ("/settings/nope", "/admin/teammates/12/nothing", "/static/none.css"):
        r = browser.get(path)
        assert r.status_code == 404 and r.headers["content-type"].startswith("text/html"), path
        assert "<h1>Page not found</h1>" in r.text and '<a href="/">' in r.text, path
    api = browser.get("/v1/nope")
    assert api.status_code == 404 and api.json()["error"]["code"] == "not_found"

    wrong = browser.get("/logout")  # a form's address opened as a link
    assert wrong.status_code == 405 and "This page cannot do that" in wrong.text
    assert wrong.headers["Allow"] == "POST"
    sign_in(browser, workspace)
    cut = browser.get("/admin/teammates?after=-1")
    assert cut.status_code == 400 and said(cut.text, "This address cannot be used")
    gone = browser.post("/admin/teammates/999999999/end-exemption",
                        data={"csrf_token": token_of(browser, "/")})
    assert gone.status_code == 404 and "Page not found" in gone.text


def test_a_failure_on_our_side_is_the_500_page(stack: Any) -> None:
    from services.asgi import create_app

    app = create_app()

    def boom() -> None:
        raise RuntimeError("a bug")

    app.add_api_route("/settings/boom", boom)
    app.add_api_route("/v1/boom", boom)
    with TestClient(app, base_url="https://testserver", raise_server_exceptions=False) as c:
        page = c.get("/settings/boom")
        assert page.status_code == 500 and "<h1>Something went wrong</h1>" in page.text
        assert "the change was not saved" in page.text and "a bug" not in page.text
        api = c.get("/v1/boom")
        assert api.status_code == 500 and api.json()["error"]["code"] == "internal_error"


def test_refused_fields_are_sentences_that_name_them(
        browser: TestClient, workspace: WorkspaceHandle) -> None:  # noqa: F811
    empty = browser.post("/login", data={"csrf_token": token_of(browser), "workspace": "",
                                         "email": "a@b.test", "password": "x"})
    assert empty.status_code == 400 and said(empty.text, "Workspace is empty: fill it in.")
    sign_in(browser, workspace)
    csrf = token_of(browser, "/admin/authentication")
    grace = browser.post("/admin/authentication", data={"csrf_token": csrf,
                                                        "grace_period_hours": "-1"})
    assert grace.status_code == 400
    assert said(grace.text, "Grace period (hours) must be 0 or more.")
    invite = {"csrf_token": csrf, "email": "", "name": "x" * 201, "role": "member"}
    r = browser.post("/admin/teammates", data=invite)
    assert r.status_code == 400 and said(r.text, "Email is empty: fill it in.")
    assert said(r.text, "Name must be at most 200 characters long.")
    short = browser.post("/settings/password", data={
        "csrf_token": csrf, "current_password": "whatever", "new_password": "short"})
    assert short.status_code == 400
    assert said(short.text, "New password must be at least 8 characters long.")


def test_an_address_longer_than_64_characters_before_the_at_is_refused(
        browser: TestClient, workspace: WorkspaceHandle) -> None:  # noqa: F811
    sign_in(browser, workspace)
    csrf = token_of(browser, "/admin/teammates")
    too_long = browser.post("/admin/teammates", data={
        "csrf_token": csrf, "email": f"{'a' * 65}@{workspace.slug}.test", "role": "member"})
    assert too_long.status_code == 400
    assert said(too_long.text, "the part before the @ has 65 characters, and email addresses "
                "allow at most 64")
    longest = browser.post("/admin/teammates", data={
        "csrf_token": csrf, "email": f"{'a' * 64}@{workspace.slug}.test", "role": "member"})
    assert longest.status_code == 303


def test_the_join_link_is_checked_before_its_form(
        browser: TestClient, workspace: WorkspaceHandle) -> None:  # noqa: F811
    from services.accounts import teammates, workspaces
    from services.db import unit_of_work

    with unit_of_work() as session:
        ws = workspaces.get_by_slug(session, workspace.slug)
        nova = teammates.add(session, ws, f"nova@{workspace.slug}.test", "Nova Comer", "member")
        token = teammates.join_token(nova)
        replaced = teammates.add(session, ws, f"old@{workspace.slug}.test", "", "member")
        old_token = teammates.join_token(replaced)
        teammates.issue_join_link(session, replaced)  # an admin's resend voids the first link

    form = browser.get(f"/join?token={token}")
    assert form.status_code == 200
    assert "<h1>Join Acme &amp; Co &lt;Team&gt;</h1>" in form.text  # the workspace, named
    assert f"nova@{workspace.slug}.test" in form.text
    assert re.search(r'id="name" name="name" value="Nova Comer"', form.text)  # prefilled
    assert 'minlength="8"' in form.text  # what the server wants
    weak = browser.post("/join", data={"csrf_token": token_of(browser, f"/join?token={token}"),
                                       "token": token, "name": "Nova", "password": "short"})
    assert weak.status_code == 400 and said(weak.text, "Password must be at least 8 characters long.")
    joined = browser.post("/join", data={"csrf_token": token_of(browser, f"/join?token={token}"),
                                         "token": token, "name": "Nova", "password": "long-enough"})
    assert joined.status_code == 303

    fresh = console_client(browser.app)
    used = fresh.get(f"/join?token={token}")
    assert used.status_code == 400 and "was used already" in used.text
    assert f'href="/login?workspace={workspace.slug}"' in used.text
    assert "Choose a password" not in used.text and ">Join</button>" not in used.text
    voided = fresh.get(f"/join?token={old_token}")
    assert voided.status_code == 400 and "a newer invitation may have replaced it" in voided.text
    missing = fresh.get("/join")
    assert missing.status_code == 400 and "This address has no invitation in it." in missing.text


def test_the_teammates_list_counts_pages_and_keeps_its_filters(
        browser: TestClient, make_workspace: Any) -> None:  # noqa: F811
    ws: WorkspaceHandle = make_workspace(teammates=60)
    sign_in(browser, ws)
    first = browser.get("/admin/teammates").text
    assert "1–50 of 61 teammates" in first and "Previous page" not in first
    after = re.search(r'href="/admin/teammates\?after=(\d+)">Next page', first)
    assert after, first
    second = browser.get(f"/admin/teammates?after={after.group(1)}").text
    assert "51–61 of 61 teammates" in second and "Next page" not in second
    before = re.search(r'href="/admin/teammates\?before=(\d+)">Previous page', second)
    assert before, second
    assert "1–50 of 61 teammates" in browser.get(f"/admin/teammates?before={before.group(1)}").text

    # Filter values in words; an action comes back to the page it was done from.
    filtered = browser.get("/admin/teammates?enrollment=not_required&q=member-0005").text
    assert '<option value="not_required" selected>Not required</option>' in filtered
    assert "1–10 of 10 teammates matching these filters" in filtered
    target = re.search(r'action="/admin/teammates/(\d+)/remove"><input type="hidden" '
                       r'name="back" value="([^"]+)"', filtered)
    assert target and target.group(2) == "enrollment=not_required&amp;q=member-0005", filtered
    r = browser.post(f"/admin/teammates/{target.group(1)}/remove", data={
        "csrf_token": token_of(browser, "/"), "back": "enrollment=not_required&q=member-0005"})
    assert r.status_code == 303
    assert r.headers["location"] == (f"/admin/teammates?enrollment=not_required&q=member-0005"
                                     f"&notice=removed&teammate={target.group(1)}")
    assert "1–9 of 9 teammates matching these filters" in browser.get(r.headers["location"]).text
    nobody = browser.get("/admin/teammates?q=nobody-here").text
    assert "No teammates match these filters." in nobody and "<table" not in nobody


def test_the_teammates_table_shows_methods_enrolled_date_and_exemption_reason(
        browser: TestClient, make_workspace: Any) -> None:  # noqa: F811
    ws: WorkspaceHandle = make_workspace(teammates=1)
    sign_in(browser, ws)
    enroll(browser)
    member_id = ws.admin_id + 1
    r = browser.post(f"/admin/teammates/{member_id}/exemption", data={
        "csrf_token": token_of(browser, "/"), "until": _in_days(3),
        "reason": "Travelling without a phone", "back": "enrollment=exempt"})
    assert r.status_code == 303 and r.headers["location"].startswith(
        "/admin/teammates?enrollment=exempt&notice=exempted")
    page = browser.get(r.headers["location"]).text
    assert 'title="Travelling without a phone">Reason: Travelling without a phone' in page
    assert '<span class="state state-exempt">Exempt</span>' in page
    mine = browser.get("/admin/teammates?two_factor=enabled").text
    assert '<span class="methods">App</span>' in mine
    assert re.search(r'since <time datetime="[^"]+"', mine)


def _in_days(days: int) -> str:
    from datetime import UTC, datetime, timedelta

    return (datetime.now(UTC).date() + timedelta(days=days)).isoformat()
