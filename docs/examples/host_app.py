"""A host application that keeps its own password form and uses twofa as the second factor.

Run it next to twofa (`twofa up`), from the repository root, with a key from
`.venv/bin/twofa apikey create SLUG "host app"`:

    HOST_TWOFA_URL=http://127.0.0.1:8000 HOST_TWOFA_KEY=twofa_sk_… HOST_PORT=9000 \\
    HOST_USERS=member-00001@demo.test:host-password .venv/bin/python docs/examples/host_app.py

then open http://localhost:9000/. For security keys and passkeys at its code step, twofa must
accept this page's origin: start twofa with `TWOFA_WEBAUTHN_ORIGINS=http://localhost:9000`
(the relying party ID, `localhost` here, must cover it).

Its users are a dict here; yours live in your database or behind your SSO. Its sessions are
a dict too (its own random session id → the twofa token and the email this app signed in):
the browser holds only that id, never the twofa token. On every request it asks twofa about
the token *with its API key* and lets it in only if twofa names the same person. A twofa
token on its own proves only that someone has a twofa session, not that this app signed
them in.

Its forms carry a CSRF token bound to a random per-browser cookie (an HMAC under a secret
of the app), so another site cannot post them in a visitor's name.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from html import escape
from typing import Annotated
from urllib.parse import parse_qsl

import httpx
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response


BROWSER_COOKIE = "host_browser"
FORM_KEY = secrets.token_bytes(32)  # a real app keeps its secret in its configuration


def csrf_token(browser: str) -> str:
    return hmac.new(FORM_KEY, browser.encode(), hashlib.sha256).hexdigest()


async def form(request: Request) -> dict[str, str]:
    """The posted form, only with the token of this browser's cookie (else 403)."""
    data = dict(parse_qsl((await request.body()).decode()))
    browser = request.cookies.get(BROWSER_COOKIE, "")
    if not browser or not hmac.compare_digest(data.get("csrf_token", ""), csrf_token(browser)):
        raise HTTPException(403, "This form did not come from this site.")
    data["csrf_token"] = csrf_token(browser)
    return data


Form = Annotated[dict[str, str], Depends(form)]


def with_token(request: Request, html: str, status: int = 200) -> HTMLResponse:
    """A page whose forms carry this browser's CSRF token (the cookie made here if new)."""
    browser = request.cookies.get(BROWSER_COOKIE) or secrets.token_urlsafe(32)
    field = f'<input type="hidden" name="csrf_token" value="{csrf_token(browser)}">'
    response = page(html.replace("</form>", f"{field}</form>"), status)
    if request.cookies.get(BROWSER_COOKIE) != browser:
        response.set_cookie(BROWSER_COOKIE, browser, httponly=True, samesite="lax")
    return response


def page(body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(f"<!doctype html><title>Host app</title>{body}", status_code=status)


# The WebAuthn ceremony on the host's own page: the browser asks the security key with the
# request options twofa sent (bound to this sign-in's challenge) and posts its answer back
# here as JSON; the host hands it to twofa. No library, no build step.
KEY_SCRIPT = """
const b64 = (t) => Uint8Array.from(atob(t.replace(/-/g, "+").replace(/_/g, "/")),
                                   (c) => c.charCodeAt(0)).buffer;
const enc = (b) => btoa(String.fromCharCode(...new Uint8Array(b)))
  .replace(/\\+/g, "-").replace(/\\//g, "_").replace(/=+$/, "");
document.getElementById("use-key").addEventListener("click", async () => {
  const form = document.getElementById("key-form");
  const json = JSON.parse(form.dataset.options);
  const publicKey = PublicKeyCredential.parseRequestOptionsFromJSON
    ? PublicKeyCredential.parseRequestOptionsFromJSON(json)
    : {...json, challenge: b64(json.challenge),
       allowCredentials: (json.allowCredentials || []).map((c) => ({...c, id: b64(c.id)}))};
  const credential = await navigator.credentials.get({publicKey});
  const r = credential.response;
  form.elements.webauthn.value = JSON.stringify(credential.toJSON ? credential.toJSON() : {
    id: credential.id, rawId: enc(credential.rawId), type: credential.type,
    clientExtensionResults: credential.getClientExtensionResults(),
    response: {clientDataJSON: enc(r.clientDataJSON), authenticatorData: enc(r.authenticatorData),
               signature: enc(r.signature), userHandle: r.userHandle ? enc(r.userHandle) : null}});
  form.submit();
});
"""


def key_step(challenge: str, options: dict[str, object]) -> str:
    """The code step's alternative: `Use a security key`, when twofa offered one."""
    return (f'<form id="key-form" method="post" action="/two-factor" '
            f'data-options="{escape(json.dumps(options))}">'
            f'<input type="hidden" name="challenge" value="{escape(challenge)}">'
            '<input type="hidden" name="webauthn">'
            '<button type="button" id="use-key">Use a security key</button></form>'
            f"<script>{KEY_SCRIPT}</script>")


def create_app(twofa: httpx.Client, api_key: str, passwords: dict[str, str]) -> FastAPI:
    """`twofa` is an HTTP client whose base URL is the twofa API."""
    app = FastAPI()
    key = {"Authorization": f"Bearer {api_key}"}
    # This app's sessions: its own random id (the cookie) → the twofa token and whom this app
    # signed in (a real app keeps this in its session store).
    signed_in_as: dict[str, tuple[str, str]] = {}
    app.state.sessions = signed_in_as
    challenged: dict[str, str] = {}  # challenge → the email whose first factor we checked

    def signed_in(token: str, email: str) -> RedirectResponse:
        session_id = secrets.token_urlsafe(32)
        signed_in_as[session_id] = (token, email)
        response = RedirectResponse("/private", status_code=303)
        response.set_cookie("session", session_id, httponly=True, samesite="lax")
        return response

    @app.get("/")
    def login_form(request: Request) -> HTMLResponse:
        return with_token(request, '<form method="post" action="/login"><input name="email">'
                          '<input name="password" type="password"><button>Sign in</button></form>')

    @app.post("/login")
    def login(request: Request, data: Form) -> Response:
        email, password = data.get("email", ""), data.get("password", "")
        # 1. The host's own first factor.
        if not hmac.compare_digest(passwords.get(email, "\0"), password):
            return page("<p>Wrong email or password.</p>", 401)
        # 2. Ask twofa what now.
        check = twofa.post("/v1/checks/login", headers=key, json={"email": email})
        if check.status_code != 200:
            return page(f"<p>Sign-in refused: {escape(check.json()['error']['code'])}</p>", 403)
        answer = check.json()
        if answer["status"] == "authenticated":
            return signed_in(answer["token"], email)
        if answer["status"] == "enrollment_required":
            return page("<p>Your team requires two-factor authentication: set it up first.</p>"
                        f'<p data-enrollment-token="{escape(answer["token"])}"></p>', 403)
        challenged[answer["challenge"]] = email
        # `methods` says what the teammate has; with a key, `webauthn` holds the options.
        keys = key_step(answer["challenge"], answer["webauthn"]) if "webauthn" in answer else ""
        return with_token(request, '<form method="post" action="/two-factor">'
                          f'<input type="hidden" name="challenge" value="{escape(answer["challenge"])}">'
                          '<input name="code" autocomplete="one-time-code"><button>Verify</button></form>'
                          + keys)

    @app.post("/two-factor")
    def two_factor(data: Form) -> Response:
        # 3. The code from the teammate's authenticator app (or a recovery code), or their
        # security key's answer, for a challenge this app asked for itself.
        email = challenged.get(data.get("challenge", ""))
        if email is None:
            return page("<p>Sign in again.</p>", 401)
        second: dict[str, object] = {"code": data.get("code", "")}
        if data.get("webauthn"):
            second = {"webauthn": json.loads(data["webauthn"])}
        r = twofa.post("/v1/login/two-factor", json={"challenge": data.get("challenge", ""), **second})
        if r.status_code != 200:
            return page(f"<p>{escape(r.json()['error']['message'])}</p>", r.status_code)
        if r.json()["status"] != "authenticated":  # e.g. security keys required, app used
            return page("<p>Your team requires a security key: add one in twofa first.</p>", 403)
        del challenged[data["challenge"]]
        return signed_in(r.json()["token"], email)

    @app.get("/private")
    def private(request: Request) -> Response:
        # 4. On every request: may this session in? Asked with our API key, so a token of
        # another workspace is simply not active; and it must be the person we signed in.
        session_id = request.cookies.get("session", "")
        if session_id not in signed_in_as:
            return RedirectResponse("/", status_code=303)
        token, ours = signed_in_as[session_id]
        seen = twofa.post("/v1/sessions/introspect", headers=key, json={"token": token}).json()
        if (not seen.get("active") or seen.get("level") != "full"
                or str(seen.get("email", "")).lower() != ours.lower()):
            signed_in_as.pop(session_id, None)
            return RedirectResponse("/", status_code=303)
        return page(f"<p>Welcome, teammate {seen['teammate_id']} of {escape(seen['workspace'])} "
                    f"({escape(seen['email'])}).</p>")

    return app


def from_environment() -> FastAPI:
    users = dict(pair.split(":", 1) for pair in os.environ.get("HOST_USERS", "").split(",") if pair)
    client = httpx.Client(base_url=os.environ.get("HOST_TWOFA_URL", "http://127.0.0.1:8000"),
                          timeout=10)
    return create_app(client, os.environ.get("HOST_TWOFA_KEY", ""), users)


if __name__ == "__main__":
    import uvicorn

    uvicorn.run(from_environment(), host="127.0.0.1", port=int(os.environ.get("HOST_PORT", "9000")))
