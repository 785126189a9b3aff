"""Languages and time zones: a teammate's `locale` and `time_zone` over the real API, emails
read from the SMTP sink in German and Spanish with deadlines in the reader's zone and UTC
beside, API error messages after Accept-Language, and catalogs that are complete and compiled.
"""

from __future__ import annotations

import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from email.header import decode_header, make_header
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import httpx
import pytest
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po

from tests.conftest import Clock, WorkspaceHandle
from tests.stack import ROOT, Caught, Stack, wait_until
from tests.twofactor import bearer

LOCALES = ROOT / "services" / "locale"
GERMAN_MONTHS = ["Januar", "Februar", "März", "April", "Mai", "Juni", "Juli", "August",
                 "September", "Oktober", "November", "Dezember"]
GERMAN_DAYS = ["Montag", "Dienstag", "Mittwoch", "Donnerstag", "Freitag", "Samstag", "Sonntag"]
PLACEHOLDER = re.compile(r"%\(\w+\)s|\{\w+\}")


def _catalog(lang: str) -> Any:
    with (LOCALES / lang / "LC_MESSAGES" / "messages.po").open("rb") as f:
        return read_po(f, locale=lang)


@pytest.mark.parametrize("lang", ["de", "es"])
def test_every_message_is_translated_and_none_is_fuzzy(lang: str) -> None:
    catalog = _catalog(lang)
    assert not catalog.fuzzy, "the header is marked fuzzy"
    messages = [m for m in catalog if m.id]
    assert len(messages) > 200
    for m in messages:
        # A plural message has a tuple of ids and one translation per plural form.
        ids = m.id if isinstance(m.id, tuple) else (m.id,)
        strings = m.string if isinstance(m.string, tuple) else (m.string,)
        assert all(strings), f"{lang}: no translation for {m.id!r}"
        assert not m.fuzzy, f"{lang}: fuzzy translation of {m.id!r}"
        # The same values go in: a lost or misspelt placeholder would print raw or fail.
        for string in strings:
            assert sorted(PLACEHOLDER.findall(string)) == sorted(PLACEHOLDER.findall(ids[-1])), \
                m.id


@pytest.mark.parametrize("lang", ["de", "es"])
def test_the_committed_mo_files_are_compiled_from_the_po_files(lang: str) -> None:
    def entries(catalog: Any) -> dict[Any, Any]:
        # read_mo gives a plural's ids and translations as lists, read_po as tuples.
        def same(value: Any) -> Any:
            return tuple(value) if isinstance(value, list | tuple) else value

        return {same(m.id): same(m.string) for m in catalog if m.id}

    with (LOCALES / lang / "LC_MESSAGES" / "messages.mo").open("rb") as f:
        compiled = entries(read_mo(f))
    assert compiled == entries(_catalog(lang)), "run `bash scripts/i18n.sh compile`"


def test_the_catalogs_hold_every_message_id_of_the_sources(tmp_path: Path) -> None:
    """What `pybabel extract` finds in the code and templates today is in the catalogs: a
    new or changed English message cannot ship untranslated."""
    pot = tmp_path / "messages.pot"
    script = (ROOT / "scripts" / "i18n.sh").read_text()
    keywords = re.findall(r"-k (\S+)", script)
    done = subprocess.run([str(Path(sys.executable).parent / "pybabel"), "-q", "extract", "-F",
                           "babel.cfg", *[a for k in keywords for a in ("-k", k)],
                           "--ignore-dirs", ".* __pycache__ build", "-o", str(pot), "."],
                          cwd=ROOT, check=True, capture_output=True, text=True)
    # A message built with an f-string cannot be looked up: values go in as placeholders.
    # (services/email/smtp.py's Throttled is the SMTP server's reply, not a message of ours.)
    skipped = [line for line in done.stderr.splitlines()
               if "Skipping f-string" in line and "services/email/smtp.py" not in line]
    assert not skipped, skipped
    with pot.open("rb") as f:
        wanted = {m.id for m in read_po(f) if m.id}
    for lang in ("de", "es"):
        missing = wanted - {m.id for m in _catalog(lang) if m.id}
        assert not missing, f"{lang} lacks {sorted(missing)[:5]}: run `bash scripts/i18n.sh`"


def test_deadlines_are_said_in_the_zone_on_both_sides_of_a_daylight_saving_change() -> None:
    """The same reminder rendered for Berlin in winter (CET, UTC+1) and summer (CEST, UTC+2),
    and for São Paulo (no DST, GMT-03:00), in each reader's language."""
    from services.email.render import render
    from services.i18n.dates import in_words

    before = datetime(2027, 3, 27, 14, 0, tzinfo=UTC)  # Saturday, the day before the change
    after = datetime(2027, 3, 29, 14, 0, tzinfo=UTC)

    def reminder(deadline: datetime, locale: str, zone: str) -> str:
        return render("enrollment-reminder", {
            "name": "Ada", "workspace_name": "Acme", "workspace_slug": "acme",
            "enroll_url": "https://x.test/enroll", "deadline": in_words(deadline, locale, zone)},
            locale, zone).text

    assert "bis Samstag, 27. März, 15:00 MEZ (14:00 UTC)" in reminder(before, "de", "Europe/Berlin")
    assert "bis Montag, 29. März, 16:00 MESZ (14:00 UTC)" in reminder(after, "de", "Europe/Berlin")
    assert "by Saturday 27 March, 15:00 CET (14:00 UTC)" in reminder(before, "en", "Europe/Berlin")
    assert "by Monday 29 March, 16:00 CEST (14:00 UTC)" in reminder(after, "en", "Europe/Berlin")
    assert "antes del lunes, 29 de marzo, 11:00 GMT-03:00 (14:00 UTC)" in reminder(
        after, "es", "America/Sao_Paulo")
    # No zone stored: UTC, said once.
    assert "by Monday 29 March, 14:00 UTC:" in reminder(after, "en", "")


# ---- over HTTP to a real `twofa api`, worker and relay ----

def subject(mail: Caught) -> str:
    """The Subject as a mail client shows it: unfolded, RFC 2047 words decoded."""
    unfolded = re.sub(r"\r?\n(?=[ \t])", "", mail.subject)
    return str(make_header(decode_header(unfolded)))


def member(ws: WorkspaceHandle, n: int) -> str:
    return f"member-{n:05d}@{ws.slug}.test"


def sign_in(ws: WorkspaceHandle, email: str, password: str = "member-password") -> dict[str, str]:
    r = ws.client.post("/v1/login", json={"workspace": ws.slug, "email": email,
                                          "password": password})
    assert r.status_code == 200, r.text
    return bearer(r.json()["token"])


def test_patch_me_sets_language_and_zone_and_refuses_what_is_not_one(make_ws: Any) -> None:
    ws = make_ws(teammates=1)
    headers = sign_in(ws, member(ws, 1))
    me = ws.client.get("/v1/me", headers=headers).json()
    assert me["locale"] == "en" and me["time_zone"] is None  # English and UTC until chosen

    r = ws.client.patch("/v1/me", headers=headers,
                        json={"locale": "de", "time_zone": "Europe/Berlin"})
    assert r.status_code == 200 and r.json() == {"locale": "de", "time_zone": "Europe/Berlin"}
    me = ws.client.get("/v1/me", headers=headers).json()
    assert (me["locale"], me["time_zone"]) == ("de", "Europe/Berlin")

    for bad in ({"locale": "fr"}, {"locale": "DE"}, {"time_zone": "Mars/Olympus_Mons"},
                {"time_zone": "../../etc/passwd"}, {"time_zone": "europe/berlin"},
                {"time_zone": ""}):
        r = ws.client.patch("/v1/me", headers=headers, json=bad)
        assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_request", bad
    # A field left out stays; null puts the zone back to UTC.
    r = ws.client.patch("/v1/me", headers=headers, json={"time_zone": None})
    assert r.status_code == 200 and r.json() == {"locale": "de", "time_zone": None}
    listed = ws.client.get(f"/v1/workspaces/{ws.slug}/teammates?q=member-00001",
                           headers=ws.admin_headers()).json()["items"]
    assert [(t["locale"], t["time_zone"]) for t in listed] == [("de", None)]
    assert ws.client.patch("/v1/me", json={"locale": "de"}).status_code == 401


def test_a_german_teammate_gets_the_invitation_in_german_with_the_deadline_in_berlin(
        stack: Stack, make_ws: Any) -> None:
    ws = make_ws(teammates=2)
    german = sign_in(ws, member(ws, 1))
    assert ws.client.patch("/v1/me", headers=german, json={
        "locale": "de", "time_zone": "Europe/Berlin"}).status_code == 200
    ws.enroll_admin()
    r = ws.client.put(f"/v1/workspaces/{ws.slug}/two-factor-policy", headers=ws.admin_headers(),
                      json={"require_two_factor": True, "grace_period_hours": 72})
    assert r.status_code == 200, r.text
    deadline = datetime.fromisoformat(r.json()["enforce_at"])

    [mail] = wait_until(lambda: stack.smtp.to(member(ws, 1)), 60, message="the invitation")
    assert subject(mail) == f"{ws.name} verlangt jetzt Zwei-Faktor-Authentifizierung"
    text = mail.part("plain")
    berlin = deadline.astimezone(ZoneInfo("Europe/Berlin"))
    said = (f"bis {GERMAN_DAYS[berlin.weekday()]}, {berlin.day}. "
            f"{GERMAN_MONTHS[berlin.month - 1]}, {berlin:%H:%M} "
            f"{'MESZ' if berlin.dst() else 'MEZ'} ({deadline.astimezone(UTC):%H:%M} UTC)")
    assert "Hallo Member 1," in text and said in text, text
    assert "Zwei-Faktor-Authentifizierung einrichten" in mail.part("html")
    assert '<html lang="de">' in mail.part("html")
    # Their English teammate, in the same batch, reads English and UTC.
    [english] = wait_until(lambda: stack.smtp.to(member(ws, 2)), 60, message="the invitation")
    assert subject(english) == f"{ws.name} now requires two-factor authentication"
    utc = deadline.astimezone(UTC)
    assert f"by {utc:%A} {utc.day} {utc:%B}, {utc:%H:%M} UTC:" in " ".join(
        english.part("plain").split())


def _join_token(stack: Stack, email: str, title: str) -> str:
    [mail] = wait_until(lambda: [m for m in stack.smtp.to(email) if subject(m) == title],
                        60, message=f"the join email {title!r}")
    url = re.search(r"https://twofa\.example\.test/join\?token=\S+", mail.part("plain"))
    assert url, mail.part("plain")
    return parse_qs(urlsplit(url.group(0)).query)["token"][0]


def test_an_admin_adds_a_spanish_teammate_and_their_join_email_is_in_spanish(
        stack: Stack, make_ws: Any) -> None:
    ws = make_ws()
    email = f"lucia@{ws.slug}.test"
    r = ws.client.post(f"/v1/workspaces/{ws.slug}/teammates", headers=ws.admin_headers(),
                       json={"email": email, "name": "Lucía", "locale": "es"})
    assert r.status_code == 201 and r.json()["locale"] == "es", r.text
    token = _join_token(stack, email, f"Te han invitado a {ws.name}")
    [mail] = stack.smtp.to(email)
    assert "Hola, Lucía:" in mail.part("plain")
    assert "Elegir tu contraseña" in mail.part("html")
    # Their browser says German, but the admin chose Spanish for them: it stays.
    r = ws.client.post("/v1/invitations/accept", headers={"Accept-Language": "de"},
                       json={"token": token, "password": "una-buena-clave"})
    assert r.status_code == 200, r.text
    assert ws.client.get("/v1/me", headers=bearer(r.json()["token"])).json()["locale"] == "es"

    bad = ws.client.post(f"/v1/workspaces/{ws.slug}/teammates", headers=ws.admin_headers(),
                         json={"email": f"x@{ws.slug}.test", "locale": "fr"})
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_request"


def test_joining_without_a_language_takes_the_browsers(stack: Stack, make_ws: Any) -> None:
    ws = make_ws()
    for who, header, expected in (("ana", "es-MX,es;q=0.9,en;q=0.8", "es"),
                                  ("jo", "fr-FR,fr;q=0.9,de;q=0.5,en;q=0.4", "de"),
                                  ("kim", "ja", "en")):
        email = f"{who}@{ws.slug}.test"
        r = ws.client.post(f"/v1/workspaces/{ws.slug}/teammates", headers=ws.admin_headers(),
                           json={"email": email})
        assert r.status_code == 201 and r.json()["locale"] == "en"
        token = _join_token(stack, email, f"You have been invited to {ws.name}")
        r = ws.client.post("/v1/invitations/accept", headers={"Accept-Language": header},
                           json={"token": token, "password": "a-good-password"})
        assert r.status_code == 200, r.text
        me = ws.client.get("/v1/me", headers=bearer(r.json()["token"])).json()
        assert me["locale"] == expected, header


def test_api_error_messages_follow_accept_language_and_codes_never_change(
        make_ws: Any) -> None:
    ws = make_ws()
    wrong = {"workspace": ws.slug, "email": ws.admin_email, "password": "not-it"}
    answers = {lang: ws.client.post("/v1/login", json=wrong, headers={"Accept-Language": lang})
               for lang in ("de-DE,de;q=0.9", "es", "en-GB", "fr")}
    assert {r.status_code for r in answers.values()} == {401}
    assert {r.json()["error"]["code"] for r in answers.values()} == {"invalid_credentials"}
    assert answers["de-DE,de;q=0.9"].json()["error"]["message"] == \
        "Workspace, E-Mail-Adresse oder Passwort ist falsch."
    assert answers["es"].json()["error"]["message"] == \
        "El espacio de trabajo, el correo o la contraseña no son correctos."
    assert answers["en-GB"].json()["error"]["message"] == "Workspace, email or password is wrong."
    assert answers["fr"].json()["error"]["message"] == "Workspace, email or password is wrong."

    # A message with a value in it, and no Accept-Language: English.
    r = ws.client.get("/v1/workspaces/nope/teammates",
                      headers={**ws.admin_headers(), "Accept-Language": "de"})
    assert r.status_code == 404 and r.json()["error"] == {
        "code": "workspace_not_found", "message": "Kein Workspace 'nope'."}
    r = ws.client.get("/v1/workspaces/nope/teammates", headers=ws.admin_headers())
    assert r.json()["error"]["message"] == "No workspace 'nope'."
    # The signed-in teammate's own language does not change the API's answers.
    assert ws.client.patch("/v1/me", headers=ws.admin_headers(),
                           json={"locale": "de"}).status_code == 200
    assert ws.client.get("/v1/workspaces/nope/teammates", headers=ws.admin_headers()).json()[
        "error"]["message"] == "No workspace 'nope'."


def test_a_bad_field_is_explained_in_the_requests_language(make_ws: Any) -> None:
    ws = make_ws()
    policy = f"/v1/workspaces/{ws.slug}/two-factor-policy"
    body = {"require_two_factor": "yes", "grace_period_hours": 99999}
    german = ws.client.put(policy, json=body,
                           headers={**ws.admin_headers(), "Accept-Language": "de"})
    assert german.status_code == 422 and german.json()["error"]["code"] == "invalid_request"
    message = german.json()["error"]["message"]
    assert "require_two_factor: true oder false angeben" in message, message
    assert "grace_period_hours: eine Zahl von höchstens" in message, message
    english = ws.client.put(policy, json=body, headers=ws.admin_headers())
    assert "require_two_factor: Input should be a valid boolean" in \
        english.json()["error"]["message"], english.text
    missing = ws.client.post("/v1/login", json={}, headers={"Accept-Language": "es"})
    assert missing.status_code == 422
    assert "workspace: este campo es obligatorio" in missing.json()["error"]["message"]
    # A choice lists its values without Pydantic's English "or"; a limit of one is words.
    choice = ws.client.put(policy, json={"allowed_methods": "sms"},
                           headers={**ws.admin_headers(), "Accept-Language": "de"})
    assert "allowed_methods: einen dieser Werte angeben: 'any', 'security_keys'" in \
        choice.json()["error"]["message"], choice.text
    empty = ws.client.post("/v1/login", json={"workspace": ws.slug, "email": ws.admin_email,
                                              "password": ""}, headers={"Accept-Language": "de"})
    assert "password: darf nicht leer sein" in empty.json()["error"]["message"], empty.text


def test_an_event_notice_says_its_time_in_the_recipients_language_and_zone(
        stack: Stack, make_ws: Any) -> None:
    """The "password changed" notice of a Spanish teammate in Madrid."""
    ws = make_ws(teammates=1)
    headers = sign_in(ws, member(ws, 1))
    assert ws.client.patch("/v1/me", headers=headers, json={
        "locale": "es", "time_zone": "Europe/Madrid"}).status_code == 200
    before = datetime.now(UTC) - timedelta(seconds=5)
    r = ws.client.post("/v1/me/password", headers=headers, json={
        "current_password": "member-password", "new_password": "otra-clave-larga"})
    assert r.status_code in (200, 204), r.text
    [mail] = wait_until(lambda: stack.smtp.to(member(ws, 1)), 60, message="the notice")
    assert subject(mail) == f"Se ha cambiado tu contraseña de {ws.name}"
    text = " ".join(mail.part("plain").split())
    assert re.search(r"se cambió el \w+, \d+ de \w+, \d\d:\d\d CET \(\d\d:\d\d UTC\)", text), text
    madrid = before.astimezone(ZoneInfo("Europe/Madrid"))
    assert f"{madrid.day} de " in text


@pytest.mark.parametrize(("locale", "one", "many"), [
    ("en", "with 1 hour to set it up.", "with 72 hours to set it up."),
    ("de", "mit 1 Stunde zum Einrichten.", "mit 72 Stunden zum Einrichten."),
    ("es", "con 1 hora para configurarla.", "con 72 horas para configurarla."),
])
def test_the_grace_period_in_the_audit_log_says_hour_or_hours(locale: str, one: str,
                                                             many: str) -> None:
    from services.console import web

    sentence = web.templates.env.get_template("_audit_sentence.html").make_module(
        {web.LOCALE: locale}).sentence  # type: ignore[attr-defined]

    def said(hours: int) -> str:
        event = {"type": "twofa.policy.changed",
                 "data": {"require_two_factor": True, "grace_period_hours": hours}}
        return str(sentence(event, "Ada", ""))

    assert said(1).startswith("Ada ") and said(1).endswith(one), said(1)
    assert said(72).endswith(many), said(72)


def test_browsers_are_named_in_the_readers_language() -> None:
    from services.browsers import in_words

    firefox = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
    assert in_words(firefox) == "Firefox on Linux"
    assert in_words(firefox, "de") == "Firefox unter Linux"
    assert in_words("python-httpx/0.28.1", "es") == "un script (httpx)"
    assert in_words("", "de") == "ein unbekannter Browser"


def test_a_german_admin_reads_the_audit_log_in_german(make_ws: Any) -> None:
    """The audit log's sentences and its notices follow the reader's language; a host the
    console does not answer to says so in the browser's."""
    ws = make_ws(teammates=1)
    assert ws.client.patch("/v1/me", headers=ws.admin_headers(),
                           json={"locale": "de"}).status_code == 200
    ws.require_two_factor()
    token = ws.admin_headers()["Authorization"].split()[1]
    # The console's cookie holds the same session token the API hands out (its name has
    # the __Host- prefix when the public URL is https).
    browser = httpx.Client(base_url=str(ws.client.base_url), timeout=60, headers={
        "Cookie": f"twofa_session={token}; __Host-twofa_session={token}"})
    with browser:
        page = browser.get("/admin/audit-log?type=nope")
    assert page.status_code == 200, page.text[:300]
    assert f"{ws.admin_email}) hat 2FA für alle verlangt." in page.text, page.text
    assert "Es gibt keinen Ereignistyp „nope“: Alle Typen werden angezeigt." in page.text

    unknown = ws.client.get("/login", headers={"Host": "elsewhere.example",
                                               "Accept-Language": "de-DE,de;q=0.9"})
    assert unknown.status_code == 400
    assert "Unbekannter Host" in unknown.text and '<html lang="de">' in unknown.text


def test_reminders_go_out_in_each_teammates_language_and_zone(
        stack: Stack, make_ws: Any, clock: Clock) -> None:
    """One reminder batch, three teammates: German in Berlin, Spanish in São Paulo, English
    in UTC; each reads the same deadline in their own words."""
    ws = make_ws(teammates=3)
    for n, prefs in ((1, {"locale": "de", "time_zone": "Europe/Berlin"}),
                     (2, {"locale": "es", "time_zone": "America/Sao_Paulo"})):
        assert ws.client.patch("/v1/me", headers=sign_in(ws, member(ws, n)),
                               json=prefs).status_code == 200
    ws.enroll_admin()
    r = ws.client.put(f"/v1/workspaces/{ws.slug}/two-factor-policy", headers=ws.admin_headers(),
                      json={"require_two_factor": True, "grace_period_hours": 30})
    assert r.status_code == 200, r.text
    deadline = datetime.fromisoformat(r.json()["enforce_at"]).astimezone(UTC)
    wait_until(lambda: all(stack.smtp.to(member(ws, n)) for n in (1, 2, 3)), 60,
               message="the invitations")

    clock.advance(hours=6, minutes=1)  # the 24-hour reminder is due
    def second(n: int) -> Caught | None:  # the invitation came first
        caught = stack.smtp.to(member(ws, n))
        return caught[1] if len(caught) == 2 else None

    german, spanish, english = wait_until(
        lambda: all(second(n) for n in (1, 2, 3)) and [second(n) for n in (1, 2, 3)], 60,
        message="the reminders")
    berlin = deadline.astimezone(ZoneInfo("Europe/Berlin"))
    assert subject(german).startswith(f"Erinnerung: Richten Sie bis {GERMAN_DAYS[berlin.weekday()]}")
    assert (f"bis {GERMAN_DAYS[berlin.weekday()]}, {berlin.day}. {GERMAN_MONTHS[berlin.month - 1]}"
            f", {berlin:%H:%M} {'MESZ' if berlin.dst() else 'MEZ'} ({deadline:%H:%M} UTC)"
            in " ".join(german.part("plain").split()))
    sao_paulo = deadline.astimezone(ZoneInfo("America/Sao_Paulo"))
    assert subject(spanish).startswith("Recordatorio: configura la autenticación en dos pasos")
    assert (f"{sao_paulo.day} de " in spanish.part("plain")
            and f", {sao_paulo.hour}:{sao_paulo:%M} GMT-03:00 ({deadline:%H:%M} UTC)"
            in " ".join(spanish.part("plain").split()))
    assert f"by {deadline:%A} {deadline.day} {deadline:%B}, {deadline:%H:%M} UTC" in subject(english)
