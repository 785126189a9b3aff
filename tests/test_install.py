"""twofa as a user installs it: a wheel built with `pip wheel .`, installed into a fresh
venv, `twofa up --demo` started from an empty directory, invitations rendered from the
templates the wheel carries (not the checkout's)."""

from __future__ import annotations

import email
import os
import re
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
import venv
from email.message import Message
from pathlib import Path

import httpx
import pytest

from tests.stack import answers, backend, free_port, wait_until
from tests.twofactor import rfc6238

REPO = Path(__file__).resolve().parents[1]
SOURCES = ("pyproject.toml", "setup.py", "README.md", "services", "workers", "templates")

# It runs the embedded default whatever TWOFA_TEST_BACKEND says: once is enough.
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(backend() != "embedded", reason="backend-independent: runs "
                                 "in the embedded run only")]


def _run(*args: str | Path, cwd: Path) -> str:
    done = subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv holding twofa's wheel and nothing of the checkout.

    Its dependencies are this test run's own (one .pth line, as --system-site-packages would
    give them), so the test needs no network; that path holds no `services` package, only
    the editable install's finder, which a .pth path line never activates.
    """
    tmp = tmp_path_factory.mktemp("install")
    src = tmp / "src"  # a copy: parallel runs never share a build/ folder in the checkout
    src.mkdir()
    for name in SOURCES:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, src / name,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(REPO / name, src / name)
    _run(sys.executable, "-m", "pip", "wheel", src, "--no-deps", "-q", "-w", tmp / "wheels",
         cwd=tmp)
    (wheel,) = (tmp / "wheels").glob("twofa-*.whl")
    target = tmp / "venv"
    venv.create(target, with_pip=False)
    python = target / "bin" / "python"
    _run(sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index",
         "-q", wheel, cwd=tmp)
    site = Path(_run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])",
                     cwd=tmp).strip())
    (site / "zz_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return target


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("TWOFA_") and k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return {**env, "COLUMNS": "200", **extra}


def test_the_wheel_carries_the_email_templates(installed: Path, tmp_path: Path) -> None:
    python = installed / "bin" / "python"
    where = _run(python, "-c", "from services.email import render; print(render.templates_dir())",
                 cwd=tmp_path).strip()
    assert where.startswith(str(installed)) and where.endswith("services/email/templates/emails")
    subject = _run(python, "-c", "from services.email.render import render; print(render("
                   "'enrollment-invitation', {'name': 'Ada', 'workspace_name': 'Acme', "
                   "'workspace_slug': 'acme', 'enroll_url': 'https://x.test/enroll?workspace=acme'}"
                   ").subject)", cwd=tmp_path).strip()
    assert subject == "Acme now requires two-factor authentication"


def test_the_wheel_carries_the_compiled_catalogs(installed: Path, tmp_path: Path) -> None:
    """German and Spanish emails from an install that has no checkout to compile them from."""
    python = installed / "bin" / "python"
    where = _run(python, "-c", "from services.i18n import catalogs; print(catalogs.DIRECTORY)",
                 cwd=tmp_path).strip()
    assert where.startswith(str(installed))
    for lang in ("de", "es"):
        assert (Path(where) / lang / "LC_MESSAGES" / "messages.mo").is_file(), lang
    subjects = _run(python, "-c", "from services.email.render import render\n"
                    "for lang in ('de', 'es'): print(render('join', {'name': 'Ada', "
                    "'workspace_name': 'Acme', 'accept_url': 'https://x.test/join', "
                    "'require_two_factor': False}, lang).subject)", cwd=tmp_path)
    assert subjects.splitlines() == ["Sie wurden zu Acme eingeladen", "Te han invitado a Acme"]


def _text_part(message: Message) -> str:
    for part in message.walk():
        if part.get_content_type() == "text/plain":
            payload = part.get_payload(decode=True)
            assert isinstance(payload, bytes)
            return payload.decode()
    raise AssertionError("no text/plain part")


def _invitations(folder: Path) -> list[Message]:
    caught = [email.message_from_bytes(p.read_bytes()) for p in sorted(folder.glob("*.eml"))]
    return [m for m in caught
            if m["Subject"] == "Demo Team now requires two-factor authentication"]


def _enroll_admin_and_require_2fa(http: httpx.Client) -> None:
    """The admin turns their own 2FA on first (an admin without it may not require it)."""
    login = http.post("/v1/login", json={"workspace": "demo", "email": "admin@demo.test",
                                          "password": "correct-horse-battery"}).json()
    headers = {"Authorization": f"Bearer {login['token']}"}
    secret = http.post("/v1/me/two-factor/setup", headers=headers).json()["secret"]
    confirm = http.post("/v1/me/two-factor/confirm", headers=headers,
                        json={"code": rfc6238(secret, time.time())})
    assert confirm.status_code == 200, confirm.text
    r = http.put("/v1/workspaces/demo/two-factor-policy", headers=headers,
                 json={"require_two_factor": True})
    assert r.status_code == 200, r.text


def test_installed_twofa_up_sends_invitations_that_link_to_its_port(
        installed: Path, tmp_path: Path) -> None:
    port, smtp_port = free_port(), free_port()
    env = _clean_env(TWOFA_MAILCATCHER_PORT=str(smtp_port), TWOFA_SWEEP_INTERVAL="1")
    log = tmp_path / "up.log"
    with log.open("w") as out:  # a file, not a pipe: a pipe nobody reads blocks at 64 KiB
        up = subprocess.Popen([str(installed / "bin" / "twofa"), "up", "--demo", "--port", str(port)],
                              cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT)
    mail = tmp_path / "var" / "mail"
    try:
        http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10)

        wait_until(lambda: answers(http), 90, 0.3, message="the installed twofa up to answer")
        _enroll_admin_and_require_2fa(http)
        wait_until(lambda: len(_invitations(mail)) == 25, 120, 0.3,
                   message="25 invitations in the caught mail")
        assert http.get("/healthz", params={"token": "not-for-logs"}).status_code == 200
        wait_until(lambda: "/healthz?token=" in log.read_text(), 30, 0.2,
                   message="the access line of the last request")
    finally:
        up.send_signal(signal.SIGINT)
        up.wait(60)
    output = log.read_text()
    assert up.returncode == 0, output

    invitations = _invitations(mail)
    assert len(invitations) == 25  # the 25 members; the admin got "2FA is on" instead
    assert f"http://localhost:{port}/enroll" in _text_part(invitations[0])  # a named host

    assert f"emails link  http://localhost:{port}" in output
    assert f"open         http://localhost:{port}" in output
    assert f"smtp://127.0.0.1:{smtp_port}" in output
    assert '"PUT /v1/workspaces/demo/two-factor-policy HTTP/1.1" 200' in output
    assert "not-for-logs" not in output
    # Task lines are there (the rollout's batches), the once-a-second sweeps are not.
    assert "Task enrollment.send_batch[" in output
    assert not re.search(r"Task \w+\.sweep\[", output)
    assert "No hostname was supplied" not in output
