"""Concurrent completions: one challenge gives one session, one setup is confirmed once."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
from fastapi.testclient import TestClient

from tests.conftest import ADMIN_PASSWORD, WorkspaceHandle
from tests.twofactor import bearer, code, complete, enroll, sign_in, steady, wrong_codes

MEMBER_PASSWORD = "member-password"


def _codes_left(client: TestClient, token: str) -> int:
    r = client.get("/v1/me", headers=bearer(token))
    assert r.status_code == 200, r.text
    return int(r.json()["two_factor"]["recovery_codes_left"])


def _race(calls: list[Any]) -> list[httpx.Response]:
    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(lambda call: call(), calls))


def test_one_challenge_completed_twice_in_parallel_gives_one_session(
        client: TestClient, make_workspace: Any) -> None:
    steady(8)
    ws: WorkspaceHandle = make_workspace()
    enrolled = enroll(client, ws.login()["token"])  # confirmed with step -1
    spare = list(enrolled.recovery_codes)
    left = len(spare)
    rounds: list[tuple[str, str]] = [(code(enrolled.secret), spare.pop())]  # TOTP vs recovery
    rounds += [(spare.pop(), spare.pop()) for _ in range(4)]  # two different recovery codes
    for first, second in rounds:
        challenge = ws.login()["challenge"]
        answers = _race([lambda v=first: complete(client, challenge, v),
                         lambda v=second: complete(client, challenge, v)])
        assert sorted(a.status_code for a in answers) == [200, 401], [a.text for a in answers]
        [loser] = [a for a in answers if a.status_code == 401]
        assert loser.json()["error"]["code"] == "invalid_code"
        [winner] = [a for a in answers if a.status_code == 200]
        # The loser rolled back: only the winner's recovery code (if any) is spent.
        won_with = first if answers[0].status_code == 200 else second
        left -= won_with in enrolled.recovery_codes
        assert _codes_left(client, winner.json()["token"]) == left


def test_concurrent_confirms_of_one_setup_one_wins(
        client: TestClient, make_workspace: Any) -> None:
    rounds = 4
    ws: WorkspaceHandle = make_workspace(teammates=rounds, password=MEMBER_PASSWORD)
    steady(8)
    for n in range(1, rounds + 1):
        token = ws.login(f"member-{n:05d}@{ws.slug}.test", MEMBER_PASSWORD)["token"]
        r = client.post("/v1/me/two-factor/setup", headers=bearer(token))
        assert r.status_code == 200, r.text
        secret = r.json()["secret"]
        answers = _race([
            lambda v=code(secret, offset): client.post(
                "/v1/me/two-factor/confirm", headers=bearer(token), json={"code": v})
            for offset in (-30, 0)])
        # Before the fix both answered 200, and the first one's recovery codes were dead.
        winners = [a for a in answers if a.status_code == 200]
        assert len(winners) == 1, [a.text for a in answers]
        [winner] = winners
        [loser] = [a for a in answers if a is not winner]
        # Second to commit: 409 if its step is later, a refused replay (401) if earlier.
        assert (loser.status_code, loser.json()["error"]["code"]) in {
            (409, "two_factor_already_enabled"), (401, "invalid_code")}, loser.text
        # The codes the winner was shown are the live ones: one of them completes a sign-in.
        challenge = ws.login(f"member-{n:05d}@{ws.slug}.test", MEMBER_PASSWORD)["challenge"]
        done = complete(client, challenge, winner.json()["recovery_codes"][0])
        assert done.status_code == 200, done.text
        assert _codes_left(client, done.json()["token"]) == 9


def test_right_and_wrong_codes_at_once_over_http_one_session_each_wrong_counted_once(
        make_ws: Any) -> None:
    """Against the real server: the right code on five challenges and wrong codes on three
    others, all at once. One sign-in per step (the others are refused replays, and their
    challenges stay usable), and every wrong code is counted and audited exactly once."""
    steady(8)
    ws: WorkspaceHandle = make_ws()
    admin_token = ws.login()["token"]
    enrolled = enroll(ws.client, admin_token)
    # A recovery code claims no step: the current one (enroll confirmed the last) is unused.
    admin = bearer(sign_in(ws.client, ws.slug, ws.admin_email, ADMIN_PASSWORD,
                           enrolled.recovery_codes[1]))
    steady(8)
    challenges = [ws.login()["challenge"] for _ in range(8)]
    right = code(enrolled.secret)
    wrong = wrong_codes(enrolled.secret, 8)
    calls = [lambda c=c: complete(ws.client, c, right) for c in challenges[:5]]
    calls += [lambda i=i: complete(ws.client, challenges[5 + i % 3], wrong[i]) for i in range(8)]
    answers = _race(calls)
    rights, wrongs = answers[:5], answers[5:]
    assert sorted(a.status_code for a in rights) == [200, 401, 401, 401, 401], \
        [a.text for a in rights]
    assert [a.status_code for a in wrongs] == [401] * 8, [a.text for a in wrongs]
    [winner] = [a for a in rights if a.status_code == 200]
    me = ws.client.get("/v1/me", headers=bearer(winner.json()["token"]))
    assert me.status_code == 200 and me.json()["level"] == "full", me.text

    failed = _events(ws, admin, "twofa.verification.failed")
    reasons = sorted(e["data"]["reason"] for e in failed)
    assert reasons == ["invalid_code"] * 8 + ["replayed_code"] * 4, reasons
    # A refused replay leaves its challenge live: a recovery code completes one of them.
    loser = challenges[[a.status_code for a in rights].index(401)]
    done = complete(ws.client, loser, enrolled.recovery_codes[0])
    assert done.status_code == 200, done.text


def _events(ws: WorkspaceHandle, headers: dict[str, str], type_: str) -> list[dict[str, Any]]:
    r = ws.client.get(f"/v1/workspaces/{ws.slug}/events", params={"type": type_, "limit": 500},
                      headers=headers)
    assert r.status_code == 200, r.text
    return list(r.json()["items"])
