"""The pace of outgoing mail against a relay of our own (tests/throttling_smtp.py): one shared
rate across worker processes, backing off on 421/451, transactional mail first, per-row
deferral, STARTTLS with a private CA, connections kept across batches, a worker killed under
the limit.

Each test builds its own installation: the shared rate lives in its Redis key or file, and a
test that cuts it must not slow the others down.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from tests.rollout_helpers import require_2fa as _require_2fa
from tests.rollout_helpers import rollout as _rollout
from tests.rollout_helpers import workspace_with_team
from tests.stack import Stack, wait_until
from tests.throttling_smtp import ThrottlingSink, self_signed_certificate

pytestmark = pytest.mark.uses_backend


@pytest.fixture
def relay_stack(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Stack]:
    """A Stack on a ThrottlingSink; the test's param gives (sink fields, environment)."""
    sink_args, overrides = getattr(request, "param", ({}, {}))
    sink_args, overrides = dict(sink_args), dict(overrides)
    if sink_args.pop("tls", False):
        sink_args["certificate"] = self_signed_certificate(tmp_path / "tls")
    st = Stack(home=tmp_path / "own", smtp=ThrottlingSink(**sink_args), overrides=overrides)
    if "certificate" in sink_args:
        st.overrides = {"TWOFA_SMTP_CA_FILE": str(sink_args["certificate"][0]), **overrides}
    st.setup()
    try:
        with st.active():
            yield st
    finally:
        st.teardown()


def _workspace(size: int) -> tuple[int, int, list[str]]:
    return workspace_with_team(size, "pace", "Pace Setters")


def _sink(st: Stack) -> ThrottlingSink:
    assert isinstance(st.smtp, ThrottlingSink)
    return st.smtp


def _received(st: Stack) -> dict[str, list[str]]:
    """Message-IDs received per recipient."""
    by_address: dict[str, list[str]] = defaultdict(list)
    for mail in st.smtp.snapshot():
        for rcpt in mail.recipients:
            by_address[rcpt].append(mail.message_id)
    return by_address


def _invitations(count: int) -> list[int]:
    """Pending invitation rows for the first `count` members of a fresh workspace."""
    from services.db import unit_of_work
    from services.models import EnrollmentInvitation, Teammate, Workspace

    ws_id, _, _ = _workspace(count)
    with unit_of_work() as session:
        workspace = session.get(Workspace, ws_id)
        assert workspace is not None
        workspace.require_two_factor, workspace.policy_version = True, 1
        members = session.scalars(select(Teammate).where(
            Teammate.workspace_id == ws_id, Teammate.role == "member").order_by(Teammate.id))
        rows = [EnrollmentInvitation(workspace_id=ws_id, teammate_id=m.id, policy_version=1,
                                     attempts=0, resends=0) for m in members]
        session.add_all(rows)
        session.flush()
        return [r.id for r in rows]


def _rows(ids: list[int]) -> dict[int, Any]:
    from services.db import unit_of_work
    from services.models import EnrollmentInvitation

    with unit_of_work() as session:
        rows = session.scalars(select(EnrollmentInvitation).where(
            EnrollmentInvitation.id.in_(ids))).all()
        session.expunge_all()
        return {r.id: r for r in rows}


RATE = 20


@pytest.mark.slow
@pytest.mark.parametrize("relay_stack", [({}, {"TWOFA_SMTP_MAX_RATE": str(RATE)})],
                         indirect=True)
def test_one_rate_is_shared_by_two_worker_processes(relay_stack: Stack) -> None:
    """Two `twofa worker` processes, each sending batches over several connections, together
    stay within TWOFA_SMTP_MAX_RATE as the relay counts arrivals. Each holds at most one
    reserved slot per connection, so a second can see at most that many more than the rate
    (a slot taken late, under load), never what the workers could send unpaced."""
    sink = _sink(relay_stack)
    team = 140
    ws_id, admin_id, addresses = _workspace(team)
    relay_stack.start_relay()
    relay_stack.start_worker("first", concurrency=1)
    relay_stack.start_worker("second", concurrency=1)
    _require_2fa(ws_id, admin_id)
    wait_until(lambda: _rollout(ws_id)["pending"] == 0, 120, 0.2, message="rollout to finish")

    assert set(_received(relay_stack)) >= set(addresses)
    for name in ("first", "second"):  # both took part
        assert "Task enrollment.send_batch[" in relay_stack.log(name), relay_stack.log(name)[-2000:]
    slack = 2 * int(relay_stack.env["TWOFA_SMTP_CONNECTIONS"])
    most = sink.most_in_one_second()
    assert most <= RATE + slack + 1, f"{most} messages within one second"
    assert _rollout(ws_id)["failed"] == 0


@pytest.mark.slow
@pytest.mark.parametrize("relay_stack", [
    ({"rate": 5, "burst": 1, "code": 421}, {}),
    ({"rate": 5, "burst": 1, "code": 451}, {}),
], indirect=True, ids=["421", "451"])
def test_a_relay_that_throttles_slows_the_rollout_and_nothing_fails(relay_stack: Stack) -> None:
    """No limit set: the relay's refusals cut the shared rate and pause the senders; the
    refused messages go again and the rollout ends with every invitation out, none failed,
    none twice. (A slow rate and no burst, so that even a loaded machine sends faster: a
    batch's connections start together.)"""
    sink = _sink(relay_stack)
    team = 60
    ws_id, admin_id, addresses = _workspace(team)
    relay_stack.start_relay()
    relay_stack.start_worker(concurrency=2)
    _require_2fa(ws_id, admin_id)
    wait_until(lambda: _rollout(ws_id)["pending"] == 0, 150, 0.2, message="rollout to finish")

    assert sink.refused > 0, "the relay never throttled: nothing was tested"
    received = _received(relay_stack)
    assert {a: len(received.get(a, [])) for a in addresses
            if len(received.get(a, [])) != 1} == {}, _rollout(ws_id)
    assert _rollout(ws_id) == {"teammates": team + 1, "enrolled": 1, "invited": team,
                               "pending": 0, "failed": 0, "exempt": 0}
    # The refusals cost pauses, not attempts: far fewer rows were charged than refused.
    from services.db import unit_of_work
    from services.models import EnrollmentInvitation

    with unit_of_work() as session:
        charged = sum(session.scalars(select(EnrollmentInvitation.attempts)))
    assert charged < sink.refused, (charged, sink.refused)


@pytest.mark.slow
@pytest.mark.parametrize("relay_stack", [({"refuse_for": 8.0}, {})], indirect=True)
def test_pauses_longer_than_the_send_lease_send_each_invitation_once(relay_stack: Stack) -> None:
    """The relay refuses every message for its first 8 s: the senders pause 0.5, 1, 2, 4,
    then 8 s, and the batch has nothing to record from its first messages' third refusal
    (3.5 s in, they are deferred) until 15.5 s, three times the tests' 4 s send lease. The
    batch keeps its lease through the pauses, so the sweep hands its rows to no other batch
    (the worker has a process to spare for one): each invitation arrives once. A lease
    renewed only when a send was recorded lapsed here, and two processes sent the rest of
    the batch when the pause ended."""
    sink = _sink(relay_stack)
    assert float(relay_stack.env["TWOFA_SEND_LEASE_SECONDS"]) <= 4
    team = 20  # one batch
    ws_id, admin_id, addresses = _workspace(team)
    relay_stack.start_relay()
    relay_stack.start_worker(concurrency=3)  # the batch, its deferred rows, one to spare
    _require_2fa(ws_id, admin_id)
    wait_until(lambda: _rollout(ws_id)["pending"] == 0, 90, 0.2, message="rollout to finish")

    assert sink.refused > 0, "the relay never refused: nothing was tested"
    received = _received(relay_stack)
    assert {a: len(received.get(a, [])) for a in addresses
            if len(received.get(a, [])) != 1} == {}, _rollout(ws_id)
    assert _rollout(ws_id)["failed"] == 0


@pytest.mark.slow
@pytest.mark.parametrize("relay_stack", [({}, {"TWOFA_SMTP_MAX_RATE": "10"})], indirect=True)
def test_transactional_mail_goes_ahead_of_a_rollouts_invitations(relay_stack: Stack) -> None:
    """A join email asked for while a rollout's batches wait in the queue is sent before
    them (one worker process: without priority it would come after every invitation)."""
    from services.accounts import teammates
    from services.db import unit_of_work
    from services.models import Workspace

    team = 150  # three batches of 50 at 10/s: 15 s of rollout
    ws_id, admin_id, addresses = _workspace(team)
    relay_stack.start_relay()
    relay_stack.start_worker(concurrency=1)
    _require_2fa(ws_id, admin_id)
    wait_until(lambda: len(relay_stack.smtp.snapshot()) >= 5, 60, 0.05,
               message="the rollout to be under way")
    with unit_of_work() as session:
        ws = session.get(Workspace, ws_id)
        assert ws is not None
        teammates.add(session, ws, "newcomer@pace.test", "New Comer", "member", admin_id)

    wait_until(lambda: _rollout(ws_id)["pending"] == 0 and relay_stack.smtp.to(
        "newcomer@pace.test"), 120, 0.2, message="rollout and join email")
    order = [m.recipients[0] for m in relay_stack.smtp.snapshot()]
    after = order[order.index("newcomer@pace.test") + 1:]
    invitations_after = [a for a in after if a in set(addresses)]
    # The batch under way when it was asked for may finish first; the queued ones wait.
    assert len(invitations_after) >= 50, f"only {len(invitations_after)} invitations after it"


@pytest.mark.parametrize("relay_stack", [({"code": 451}, {})], indirect=True)
def test_a_451_to_every_connection_defers_no_row(relay_stack: Stack) -> None:
    """A 451 window that hits every connection of a batch at once (it used to defer the
    whole batch): the batch pauses and goes on, and no row has an attempt counted."""
    from services.enrollment import sending

    sink = _sink(relay_stack)
    ids = _invitations(20)
    sink.refuse_next = int(relay_stack.env["TWOFA_SMTP_CONNECTIONS"])  # each one's first MAIL

    result = sending.send_batch(ids, claim="test-window")

    assert sink.refused == int(relay_stack.env["TWOFA_SMTP_CONNECTIONS"])
    assert {(r.status, r.attempts) for r in _rows(ids).values()} == {("sent", 0)}
    assert result.sent == 20 and result.failed == 0 and result.retry_in is None
    assert len(_received(relay_stack)) == 20


@pytest.mark.parametrize("relay_stack", [({"refuse_for": 1.2},
                                          {"TWOFA_SEND_LEASE_SECONDS": "2"})], indirect=True)
def test_a_teammate_removed_while_the_relay_makes_a_batch_wait_gets_no_invitation(
    relay_stack: Stack
) -> None:
    """The relay refuses everything for 1.2 s; meanwhile an admin removes a teammate whose
    invitation the batch holds. The batch renews its lease during the pauses, which tells
    it the row is no longer its own (the same as a row another batch took after a lapse):
    it sends that one to nobody, and the others once each."""
    from services.accounts import teammates
    from services.db import unit_of_work
    from services.enrollment import sending
    from services.models import Teammate, Workspace

    sink = _sink(relay_stack)
    ids = _invitations(10)
    leaving = _rows(ids)[ids[-1]].teammate_id  # the batch sends in id order: this one last
    with ThreadPoolExecutor(1) as pool:
        batch = pool.submit(sending.send_batch, ids, "test-removal")
        wait_until(lambda: sink.refused > 0, 30, 0.01, message="the relay to refuse")
        with unit_of_work() as session:
            teammate = session.get(Teammate, leaving)
            assert teammate is not None
            workspace = session.get(Workspace, teammate.workspace_id)
            admin = session.scalars(select(Teammate).where(
                Teammate.workspace_id == teammate.workspace_id, Teammate.role == "admin")).one()
            assert workspace is not None
            teammate_email = teammate.email
            teammates.remove(session, workspace, teammate, admin)
        result = batch.result(timeout=60)

    received = _received(relay_stack)
    assert teammate_email not in received
    assert sorted(len(got) for got in received.values()) == [1] * 9
    assert result.sent == 9 and result.failed == 0
    assert _rows(ids)[ids[-1]].status == "skipped"


@pytest.mark.slow
@pytest.mark.parametrize("relay_stack", [({"code": 451}, {})], indirect=True)
def test_a_message_the_relay_keeps_refusing_defers_only_its_row(relay_stack: Stack) -> None:
    """One recipient's message refused with 451 at DATA every time: after three tries in the
    batch (three pauses) only that row is deferred; the others are sent, none charged."""
    from services.enrollment import sending

    sink = _sink(relay_stack)
    ids = _invitations(20)
    sink.refuse_data = {"member-00007@pace.test"}

    result = sending.send_batch(ids, claim="test-refusals")

    rows = _rows(ids)
    refused = [r for r in rows.values() if r.status != "sent"]
    assert [(r.status, r.attempts) for r in refused] == [("pending", 1)]
    assert refused[0].next_attempt_at is not None and "451" in (refused[0].last_error or "")
    assert all(r.attempts == 0 for r in rows.values() if r.status == "sent")
    assert result.sent == 19 and result.failed == 0 and result.retry_in is not None
    assert sink.refused == 3 and len(_received(relay_stack)) == 19


@pytest.mark.parametrize("relay_stack", [({"tls": True}, {})], indirect=True)
def test_starttls_trusts_the_ca_file_and_keeps_connections_across_batches(
    relay_stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    from services.config import get_settings
    from services.email import connections
    from services.enrollment import sending

    sink = _sink(relay_stack)
    assert get_settings().resolved_smtp_url.startswith("smtp+starttls://")
    per_batch = int(relay_stack.env["TWOFA_SMTP_CONNECTIONS"])
    ids = _invitations(30)
    first = sending.send_batch(ids[:15], claim="tls-1")
    second = sending.send_batch(ids[15:], claim="tls-2")
    assert first.sent == second.sent == 15
    assert len(sink.encrypted) == 30 and all(sink.encrypted)
    # The second batch went over the first one's connections: no new TLS handshake.
    assert len(sink.sessions) <= per_batch, sink.sessions
    connections.pool().close_idle(0)

    # Without the CA file the self-signed certificate is refused and nothing is sent.
    monkeypatch.delenv("TWOFA_SMTP_CA_FILE")
    get_settings.cache_clear()
    more = _invitations_of_new_members(relay_stack, 3)
    result = sending.send_batch(more, claim="tls-untrusted")
    assert result.sent == 0
    assert {(r.status, r.attempts) for r in _rows(more).values()} == {("pending", 1)}
    assert all("CERTIFICATE_VERIFY_FAILED" in (r.last_error or "") for r in _rows(more).values())
    assert len(sink.encrypted) == 30


def _invitations_of_new_members(st: Stack, count: int) -> list[int]:
    from services.accounts import workspaces
    from services.db import unit_of_work
    from services.models import EnrollmentInvitation, Teammate, Workspace

    with unit_of_work() as session:
        ws, _ = workspaces.create(session, "other", "Other", "admin@other.test",
                                  "admin-password-123")
        workspaces.seed(session, ws, count, "member-password")
        session.flush()
        workspace = session.get(Workspace, ws.id)
        assert workspace is not None
        workspace.require_two_factor, workspace.policy_version = True, 1
        members = session.scalars(select(Teammate).where(
            Teammate.workspace_id == ws.id, Teammate.role == "member"))
        rows = [EnrollmentInvitation(workspace_id=ws.id, teammate_id=m.id, policy_version=1,
                                     attempts=0, resends=0) for m in members]
        session.add_all(rows)
        session.flush()
        return [r.id for r in rows]


@pytest.mark.slow
@pytest.mark.parametrize("relay_stack", [({}, {"TWOFA_SMTP_MAX_RATE": "40"})], indirect=True)
def test_a_worker_killed_under_the_limit_repeats_nothing_beyond_the_bound(
    relay_stack: Stack
) -> None:
    pool = 2
    team = 300
    ws_id, admin_id, addresses = _workspace(team)
    relay_stack.start_relay()
    relay_stack.start_worker("first", concurrency=pool)
    _require_2fa(ws_id, admin_id)
    wait_until(lambda: len(relay_stack.smtp.snapshot()) >= 60, 60, 0.01,
               message="the rollout to be under way")
    relay_stack.kill("first")
    at_kill = len(relay_stack.smtp.snapshot())
    assert at_kill < team, "the kill came too late to test anything"

    relay_stack.start_worker("second", concurrency=pool)
    back = time.monotonic()
    wait_until(lambda: _rollout(ws_id)["pending"] == 0, 180, 0.5, message="rollout to finish")
    print(f"{at_kill} sent before the kill, the rest {time.monotonic() - back:.1f} s after")

    received = _received(relay_stack)
    assert [a for a in addresses if a not in received] == []
    repeated = {a: ids for a, ids in received.items() if len(ids) > 1}
    # The README's bound: TWOFA_SMTP_CONNECTIONS per pool process, each with its Message-ID.
    assert len(repeated) <= pool * int(relay_stack.env["TWOFA_SMTP_CONNECTIONS"]), repeated
    assert all(len(set(ids)) == 1 for ids in repeated.values()), repeated
    assert _rollout(ws_id)["failed"] == 0


def test_a_relay_that_lets_one_through_per_pause_keeps_the_pause_short(tmp_path: Path) -> None:
    """After a pause the connections go together: the relay refuses the others at once (at
    MAIL or RCPT) while it accepts one (after DATA). That one got through, so the next
    pause is not doubled; a relay that lets nothing through does double it."""
    from services.email.pace import BASE_BACKOFF, FileStore, Pace

    def cycles(accept_one: bool) -> list[float]:
        pace = Pace(FileStore(tmp_path / f"pace-{accept_one}.json"), None)
        pauses = []
        for _ in range(4):
            refused, accepted = pace.acquire(), pace.acquire()
            pauses.append(pace.throttled(refused))  # the refusal is answered first
            if accept_one:
                pace.accepted(accepted)
        return pauses

    assert cycles(accept_one=True) == [BASE_BACKOFF] * 4
    doubled = cycles(accept_one=False)
    assert doubled[0] == BASE_BACKOFF and doubled[-1] == pytest.approx(8 * BASE_BACKOFF, rel=0.2)
