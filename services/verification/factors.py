"""The one entry that checks a second factor: sign-in, re-authentication and the sensitive
changes that take a `code` all call `check`.

Each kind of code is a `Factor` (an app's TOTP code, a recovery code, an admin's bypass
code) that says whether a value looks like its own and checks it under the per-teammate
throttle. A new method (a security key's assertion) is one more entry in `FACTORS`; the
routes never change.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from sqlalchemy.orm import Session

from services import crypto
from services.errors import InvalidCode, RateLimited
from services.events import recorder
from services.events.catalog import EventType
from services.models import Teammate
from services.verification import bypass, recovery, throttle, totp

Method = Literal["totp", "recovery_code", "bypass"]


@dataclass(frozen=True)
class Attempt:
    """One code offered for a teammate, and where (`at_sign_in`: after a right password or a
    host application's check, where a streak of failures is told to the teammate)."""

    teammate: Teammate
    code: str
    at: float | None = None
    at_sign_in: bool = False


@dataclass(frozen=True)
class Factor:
    method: Method
    claims: Callable[[str], bool]
    verify: Callable[[Session, Attempt], None]  # raises when the code is wrong
    sign_in_only: bool = False  # bypass codes complete a sign-in and nothing else


def check(session: Session, attempt: Attempt, allow_bypass: bool = False) -> Method:
    """Check a code with the first factor that claims it; returns which method it was."""
    code = attempt.code.strip().replace(" ", "")
    attempt = Attempt(attempt.teammate, code, attempt.at, attempt.at_sign_in)
    for factor in FACTORS:
        if factor.sign_in_only and not allow_bypass:
            continue
        if factor.claims(code):
            factor.verify(session, attempt)
            return factor.method
    raise AssertionError("the recovery-code factor claims every code")


def check_totp(session: Session, attempt: Attempt, secret: str, new_secret: bool = False) -> None:
    """A TOTP code against `secret` (the confirmed one, or a setup's pending one)."""
    teammate = attempt.teammate
    throttle.check(session, teammate.id)
    step = totp.matching_step(secret, attempt.code.strip().replace(" ", ""), attempt.at)
    if step is None:
        raise throttle.fail(session, teammate, "invalid_code", attempt.at_sign_in, method="totp")
    if throttle.succeed(session, teammate.id, step, new_secret):
        return
    throttle.check(session, teammate.id)  # a parallel guess may have locked it meanwhile
    # A replay is audited but not counted: it gives a guesser nothing, and a double-submitted
    # form must not lock its owner out.
    recorder.record(session, teammate.workspace_id, EventType.VERIFICATION_FAILED,
                    {"teammate_id": teammate.id, "reason": "replayed_code", "method": "totp"},
                    teammate_id=teammate.id)
    raise InvalidCode("That code was used already; wait for the next one.")


def _app_code(session: Session, attempt: Attempt) -> None:
    if attempt.teammate.totp_secret_enc is None:  # security keys only: no app to match
        throttle.check(session, attempt.teammate.id)
        raise throttle.fail(session, attempt.teammate, "invalid_code", attempt.at_sign_in,
                            method="totp")
    check_totp(session, attempt, crypto.decrypt(attempt.teammate.totp_secret_enc))


def _bypass_code(session: Session, attempt: Attempt) -> None:
    teammate = attempt.teammate
    throttle.check(session, teammate.id)
    if not bypass.consume(session, teammate.id, attempt.code):
        raise throttle.fail(session, teammate, "invalid_bypass_code", attempt.at_sign_in,
                            method="bypass")
    succeeded(session, teammate)
    recorder.record(session, teammate.workspace_id, EventType.BYPASS_CODE_USED,
                    {"teammate_id": teammate.id}, teammate_id=teammate.id)


def _recovery_code(session: Session, attempt: Attempt) -> None:
    teammate = attempt.teammate
    throttle.check(session, teammate.id)
    if not recovery.consume(session, teammate.id, attempt.code):
        raise throttle.fail(session, teammate, "invalid_recovery_code", attempt.at_sign_in,
                            method="recovery_code")
    succeeded(session, teammate)
    left = recovery.remaining(session, teammate.id)
    recorder.record(session, teammate.workspace_id, EventType.RECOVERY_CODE_USED,
                    {"teammate_id": teammate.id, "remaining": left}, teammate_id=teammate.id)


def succeeded(session: Session, teammate: Teammate) -> None:
    if not throttle.succeed(session, teammate.id):
        # Locked meanwhile: RateLimited rolls back, so the code stays unused.
        throttle.check(session, teammate.id)
        raise RateLimited("Two-factor sign-in was locked meanwhile; try again.", 1)


# In order: the first that claims a value checks it (recovery codes take the rest).
FACTORS: tuple[Factor, ...] = (
    Factor("totp", totp.looks_like_code, _app_code),
    Factor("bypass", bypass.looks_like_bypass, _bypass_code, sign_in_only=True),
    Factor("recovery_code", lambda _: True, _recovery_code),
)
