"""Security keys and passkeys through the API, with a software authenticator written in the
tests (tests/webauthn_authenticator.py): registration, the code step with a key, passkey
sign-in, and the refusals that matter (challenge, origin, RP ID, replay, a cloned counter)."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from tests.conftest import ADMIN_PASSWORD, WorkspaceHandle
from tests.twofactor import bearer, enroll, password_login
from tests.webauthn_authenticator import SoftKey, b64url

ORIGIN = "https://twofa.example.test"  # the session stack's TWOFA_PUBLIC_URL
RP_ID = "twofa.example.test"


def new_key() -> SoftKey:
    return SoftKey(rp_id=RP_ID, origin=ORIGIN)


def add_key(client: TestClient, token: str, key: SoftKey, name: str = "YubiKey 5C") -> Any:
    r = client.post("/v1/me/two-factor/webauthn/options", headers=bearer(token))
    assert r.status_code == 200, r.text
    options = r.json()["options"]
    return client.post("/v1/me/two-factor/webauthn", headers=bearer(token),
                       json={"name": name, "credential": key.create(options)})


def registered(ws: WorkspaceHandle, key: SoftKey) -> str:
    """The admin signs in with the password alone and adds `key` as the first method; the
    session they did it in is returned (full now)."""
    token = ws.login()["token"]
    r = add_key(ws.client, token, key)
    assert r.status_code == 201, r.text
    return str(token)


def key_step(ws: WorkspaceHandle) -> dict[str, Any]:
    body = password_login(ws.client, ws.slug, ws.admin_email, ADMIN_PASSWORD)
    assert body["status"] == "two_factor_required", body
    return body


def complete_with(client: TestClient, challenge: str, assertion: dict[str, Any]) -> Any:
    return client.post("/v1/login/two-factor", json={"challenge": challenge, "webauthn": assertion})


def events(ws: WorkspaceHandle, token: str, type_: str) -> list[dict[str, Any]]:
    r = ws.client.get(f"/v1/workspaces/{ws.slug}/events", params={"type": type_},
                      headers=bearer(token))
    assert r.status_code == 200, r.text
    return list(r.json()["items"])


def test_a_first_key_turns_two_factor_on_and_signs_in(workspace: WorkspaceHandle) -> None:
    ws, key = workspace, new_key()
    token = ws.login()["token"]
    r = ws.client.post("/v1/me/two-factor/webauthn/options", headers=bearer(token))
    options = r.json()["options"]
    assert options["rp"]["id"] == RP_ID
    assert options["attestation"] == "none"
    assert options["authenticatorSelection"]["residentKey"] == "preferred"
    assert options["excludeCredentials"] == []
    handle = options["user"]["id"]
    assert ws.admin_email not in handle and len(options["challenge"]) >= 22  # ≥ 128 bits
    r = ws.client.post("/v1/me/two-factor/webauthn", headers=bearer(token),
                       json={"name": "YubiKey 5C", "credential": key.create(options)})
    assert r.status_code == 201, r.text
    added = r.json()
    assert added["name"] == "YubiKey 5C" and added["last_used_at"] is None
    assert len(added["recovery_codes"]) == 10
    me = ws.client.get("/v1/me", headers=bearer(token)).json()
    assert me["two_factor"]["enabled"] is True and me["two_factor"]["methods"] == ["webauthn"]

    # The same handle again, and the key is excluded from a second registration.
    again = ws.client.post("/v1/me/two-factor/webauthn/options", headers=bearer(token)).json()
    assert again["options"]["user"]["id"] == handle
    assert [c["id"] for c in again["options"]["excludeCredentials"]] == [b64url(key.credential_id)]

    step = key_step(ws)
    assert step["methods"] == ["webauthn", "recovery_code"]
    request = step["webauthn"]
    assert [c["id"] for c in request["allowCredentials"]] == [again["options"]["excludeCredentials"][0]["id"]]
    r = complete_with(ws.client, step["challenge"], key.get(request))
    assert r.status_code == 200, r.text
    signed = r.json()["token"]
    assert ws.client.get("/v1/me", headers=bearer(signed)).json()["level"] == "full"
    listed = ws.client.get("/v1/me/two-factor/webauthn", headers=bearer(signed)).json()["items"]
    assert listed[0]["last_used_at"] is not None

    added_events = events(ws, signed, "twofa.method.added")
    assert [e["data"]["method"] for e in added_events] == ["webauthn"]
    assert added_events[0]["data"]["name"] == "YubiKey 5C"
    assert len(events(ws, signed, "twofa.enabled")) == 1


def test_refused_for_wrong_challenge_origin_rp_id_and_replay(workspace: WorkspaceHandle) -> None:
    ws, key = workspace, new_key()
    registered(ws, key)
    step = key_step(ws)
    request, challenge = step["webauthn"], step["challenge"]

    other = key_step(ws)["webauthn"]  # a live challenge, but another sign-in's
    for wrong in (key.get(request, challenge=other["challenge"]),
                  key.get(request, challenge="AAAAAAAAAAAAAAAAAAAAAA"),
                  key.get(request, origin="https://evil.example"),
                  key.get(request, rp_id="evil.example"),
                  key.get(request, uv=False) | {"response": {**key.get(request)["response"],
                                                             "signature": "AAAA"}}):
        r = complete_with(ws.client, challenge, wrong)
        assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_code", r.text

    good = key.get(request)
    r = complete_with(ws.client, challenge, good)
    assert r.status_code == 200, r.text
    token = r.json()["token"]
    # The same assertion again: the sign-in challenge and its WebAuthn challenge are used up.
    replay = key_step(ws)
    r = complete_with(ws.client, replay["challenge"], good)
    assert r.status_code == 401, r.text
    reasons = [e["data"]["reason"] for e in events(ws, token, "twofa.verification.failed")]
    assert "invalid_challenge" in reasons and "invalid_assertion" in reasons
    assert {e["data"]["method"] for e in events(ws, token, "twofa.verification.failed")} == {"webauthn"}


def test_a_cloned_key_is_refused_and_recorded(workspace: WorkspaceHandle) -> None:
    ws, key = workspace, new_key()
    registered(ws, key)
    step = key_step(ws)
    assert complete_with(ws.client, step["challenge"], key.get(step["webauthn"])).status_code == 200
    clone = SoftKey(rp_id=RP_ID, origin=ORIGIN, user_handle=key.user_handle,
                    credential_id=key.credential_id, private=key.private, counter=0)
    step = key_step(ws)
    r = complete_with(ws.client, step["challenge"], clone.get(step["webauthn"]))  # counter 1 again
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_code"
    r = complete_with(ws.client, step["challenge"], key.get(step["webauthn"]))  # the real key
    assert r.status_code == 200, r.text
    reasons = [e["data"]["reason"]
               for e in events(ws, r.json()["token"], "twofa.verification.failed")]
    assert reasons == ["cloned_credential"]


def test_registration_refusals(workspace: WorkspaceHandle) -> None:
    ws, key = workspace, new_key()
    token = ws.login()["token"]
    options = ws.client.post("/v1/me/two-factor/webauthn/options", headers=bearer(token)).json()["options"]
    for wrong in (key.create(options, origin="https://evil.example"),
                  key.create(options, rp_id="evil.example"),
                  key.create(options, challenge="AAAAAAAAAAAAAAAAAAAAAA")):
        r = ws.client.post("/v1/me/two-factor/webauthn", headers=bearer(token),
                           json={"name": "Key", "credential": wrong})
        assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_credential", r.text
    good = key.create(options)
    assert ws.client.post("/v1/me/two-factor/webauthn", headers=bearer(token),
                          json={"name": "Key", "credential": good}).status_code == 201
    r = ws.client.post("/v1/me/two-factor/webauthn", headers=bearer(token),
                       json={"name": "Key", "credential": good})  # its challenge is used
    assert r.status_code == 422, r.text


def test_keys_are_renamed_and_removed_and_removal_ends_their_sessions(
        workspace: WorkspaceHandle) -> None:
    ws, first, second = workspace, new_key(), new_key()
    setup_token = registered(ws, first)
    assert add_key(ws.client, setup_token, second, "Laptop").status_code == 201
    step = key_step(ws)
    by_second = complete_with(ws.client, step["challenge"], second.get(step["webauthn"])).json()["token"]
    items = ws.client.get("/v1/me/two-factor/webauthn", headers=bearer(setup_token)).json()["items"]
    assert [k["name"] for k in items] == ["YubiKey 5C", "Laptop"]
    r = ws.client.patch(f"/v1/me/two-factor/webauthn/{items[1]['id']}", headers=bearer(setup_token),
                        json={"name": "Work laptop"})
    assert r.status_code == 200 and r.json()["name"] == "Work laptop"

    r = ws.client.delete(f"/v1/me/two-factor/webauthn/{items[1]['id']}", headers=bearer(setup_token))
    assert r.status_code == 204
    assert ws.client.get("/v1/me", headers=bearer(by_second)).status_code == 401  # it opened it
    assert ws.client.get("/v1/me", headers=bearer(setup_token)).status_code == 200
    removed = events(ws, setup_token, "twofa.method.removed")
    assert [(e["data"]["method"], e["data"]["name"]) for e in removed] == [("webauthn", "Work laptop")]


def test_the_last_key_stays_while_two_factor_is_required(workspace: WorkspaceHandle) -> None:
    ws, key = workspace, new_key()
    token = registered(ws, key)
    r = ws.client.put(f"/v1/workspaces/{ws.slug}/two-factor-policy", headers=bearer(token),
                      json={"require_two_factor": True})
    assert r.status_code == 200, r.text  # a key is 2FA enough for admin_needs_two_factor
    key_id = ws.client.get("/v1/me/two-factor/webauthn", headers=bearer(token)).json()["items"][0]["id"]
    r = ws.client.delete(f"/v1/me/two-factor/webauthn/{key_id}", headers=bearer(token))
    assert r.status_code == 403 and r.json()["error"]["code"] == "two_factor_mandatory"


def test_at_most_ten_keys(workspace: WorkspaceHandle) -> None:
    ws = workspace
    token = registered(ws, new_key())
    for _ in range(9):
        assert add_key(ws.client, token, new_key()).status_code == 201
    r = add_key(ws.client, token, new_key())
    assert r.status_code == 409 and r.json()["error"]["code"] == "too_many_credentials"


def test_an_app_beside_a_key_lists_both_methods(workspace: WorkspaceHandle) -> None:
    from tests.twofactor import code, steady

    ws = workspace
    token = registered(ws, new_key())
    r = ws.client.post("/v1/me/two-factor/setup", headers=bearer(token))
    assert r.status_code == 200, r.text
    steady(5)
    r = ws.client.post("/v1/me/two-factor/confirm", headers=bearer(token),
                       json={"code": code(r.json()["secret"], -30)})
    assert r.status_code == 200 and r.json() == {}, r.text  # not a first method: codes stay
    me = ws.client.get("/v1/me", headers=bearer(token)).json()
    assert me["two_factor"]["methods"] == ["totp", "webauthn"]
    assert me["two_factor"]["recovery_codes_left"] == 10
    assert key_step(ws)["methods"] == ["totp", "webauthn", "recovery_code"]


def test_passkey_sign_in_without_a_password(workspace: WorkspaceHandle) -> None:
    ws, key = workspace, new_key()
    registered(ws, key)
    r = ws.client.post("/v1/login/passkey/options", json={"workspace": ws.slug})
    assert r.status_code == 200, r.text
    body = r.json()
    options = body["options"]
    assert options["userVerification"] == "required" and options["allowCredentials"] == []
    unknown = ws.client.post("/v1/login/passkey/options", json={"workspace": "no-such-ws"})
    assert unknown.status_code == 200 and set(unknown.json()) == {"challenge", "options"}

    without_uv = key.get(options, uv=False)
    r = ws.client.post("/v1/login/passkey", json={"challenge": body["challenge"], "webauthn": without_uv})
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_credentials"
    assertion = key.get(options)
    r = ws.client.post("/v1/login/passkey", json={"challenge": body["challenge"], "webauthn": assertion})
    assert r.status_code == 200, r.text
    token = r.json()["token"]
    me = ws.client.get("/v1/me", headers=bearer(token)).json()
    assert me["email"] == ws.admin_email and me["level"] == "full"
    r = ws.client.post("/v1/login/passkey", json={"challenge": body["challenge"], "webauthn": assertion})
    assert r.status_code == 401  # replayed

    # Options for an unknown workspace are never completed, whoever's passkey answers.
    other = unknown.json()
    r = ws.client.post("/v1/login/passkey",
                       json={"challenge": other["challenge"], "webauthn": key.get(other["options"])})
    assert r.status_code == 401


def test_host_check_offers_the_key_step(workspace: WorkspaceHandle) -> None:
    ws, key = workspace, new_key()
    registered(ws, key)
    r = ws.client.post("/v1/checks/login", headers=bearer(ws.api_key()), json={"email": ws.admin_email})
    assert r.status_code == 200, r.text
    step = r.json()
    assert step["status"] == "two_factor_required" and step["methods"] == ["webauthn", "recovery_code"]
    fresh = ws.client.post("/v1/login/two-factor/options", json={"challenge": step["challenge"]})
    assert fresh.status_code == 200
    assert fresh.json()["options"]["challenge"] != step["webauthn"]["challenge"]
    r = complete_with(ws.client, step["challenge"], key.get(fresh.json()["options"]))
    assert r.status_code == 200, r.text
    assert ws.introspect(r.json()["token"])["level"] == "full"


def test_an_ip_address_host_turns_webauthn_off(stack: Any, make_workspace: Any,
                                               monkeypatch: Any) -> None:
    """Browsers refuse an IP address as relying party ID: the endpoints say so (409) and
    `methods` never offers a key."""
    from services.config import get_settings
    from services.verification import relying_party

    ws: WorkspaceHandle = make_workspace()
    key = new_key()
    registered(ws, key)
    monkeypatch.setenv("TWOFA_PUBLIC_URL", "http://127.0.0.1:8000")
    get_settings.cache_clear()
    try:
        assert not relying_party.available()
        token = ws.login()  # the key's teammate: a code step without the key
        assert token["methods"] == ["recovery_code"] and token.get("webauthn") is None
        for path in ("/v1/login/passkey/options", "/v1/login/two-factor/options"):
            r = ws.client.post(path, json={"workspace": ws.slug, "challenge": token["challenge"]})
            assert r.status_code == 409 and r.json()["error"]["code"] == "webauthn_unavailable"
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()


def test_the_app_alone_is_removed_and_the_keys_stay(workspace: WorkspaceHandle) -> None:
    from tests.twofactor import code, steady

    steady()
    ws, key = workspace, new_key()
    token = registered(ws, key)
    app = enroll(ws.client, token)
    step = key_step(ws)
    by_app = ws.client.post("/v1/login/two-factor",
                            json={"challenge": step["challenge"], "code": code(app.secret)}).json()["token"]
    r = ws.client.request("DELETE", "/v1/me/two-factor/totp", headers=bearer(token),
                          json={"code": code(app.secret, 30)})
    assert r.status_code == 204, r.text
    assert ws.client.get("/v1/me", headers=bearer(by_app)).status_code == 401  # the app opened it
    me = ws.client.get("/v1/me", headers=bearer(token)).json()["two_factor"]
    assert me["enabled"] is True and me["methods"] == ["webauthn"]
    assert key_step(ws)["methods"] == ["webauthn", "recovery_code"]
    removed = [e["data"]["method"] for e in events(ws, token, "twofa.method.removed")]
    assert removed == ["totp"]


def test_a_key_only_teammate_reauthenticates_with_the_key(workspace: WorkspaceHandle) -> None:
    from tests.trust import age_verification

    ws, key = workspace, new_key()
    token = registered(ws, key)  # no app: the key is the only way to show a second factor
    age_verification(token)
    r = ws.client.post("/v1/me/two-factor/recovery-codes", headers=bearer(token))
    assert r.status_code == 403 and r.json()["error"]["code"] == "reauthentication_required"

    r = ws.client.post("/v1/me/reauthenticate/options", headers=bearer(token))
    assert r.status_code == 200, r.text
    challenge, options = r.json()["challenge"], r.json()["options"]
    assert options["challenge"] == challenge and options["allowCredentials"]
    step = key_step(ws)  # an assertion made for a sign-in's options does not count here
    wrong = ws.client.post("/v1/me/reauthenticate", headers=bearer(token),
                           json={"challenge": challenge, "webauthn": key.get(step["webauthn"])})
    assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "invalid_code"
    again = key_step(ws)  # another session of the same teammate
    other = complete_with(ws.client, again["challenge"], key.get(again["webauthn"]))
    assert other.status_code == 200, other.text
    assertion = key.get(options)
    stolen = ws.client.post("/v1/me/reauthenticate", headers=bearer(other.json()["token"]),
                            json={"challenge": challenge, "webauthn": assertion})
    assert stolen.status_code == 401  # the options belong to the session that asked for them
    r = ws.client.post("/v1/me/reauthenticate/options", headers=bearer(token))
    fresh = r.json()
    done = ws.client.post("/v1/me/reauthenticate", headers=bearer(token),
                          json={"challenge": fresh["challenge"], "webauthn": key.get(fresh["options"])})
    assert done.status_code == 204, done.text
    r = ws.client.post("/v1/me/two-factor/recovery-codes", headers=bearer(token))
    assert r.status_code == 200 and len(r.json()["recovery_codes"]) == 10
    half = ws.client.post("/v1/me/reauthenticate", headers=bearer(token),
                          json={"challenge": fresh["challenge"]})
    assert half.status_code == 422  # a challenge without the key's answer
