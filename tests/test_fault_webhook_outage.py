"""A receiver down for 30 s gets its backlog within a minute of coming back, with the
installation's default retry schedule (real worker, relay and receiver).

Deliveries keep their order per endpoint, so every event behind the first failed one waits
for that one's next attempt: the schedule's first steps decide how long a short outage costs.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.config import Settings
from tests.private_services import pause
from tests.stack import Stack, wait_until
from tests.webhook_receiver import Receiver

pytestmark = pytest.mark.uses_backend
OUTAGE = 30.0
BACK_WITHIN = 60.0  # the bar: the backlog moves within a minute of the receiver's return
PATH = "/hooks"
EVENTS = 6


@pytest.fixture
def outage_stack(tmp_path: Path) -> Iterator[Stack]:
    default = Settings.model_fields["webhook_retry_schedule"].default
    st = Stack(home=tmp_path / "own", overrides={
        "TWOFA_WEBHOOK_RETRY_SCHEDULE": ",".join(f"{d:g}" for d in default),
        "TWOFA_WEBHOOK_FAILURE_THRESHOLD": "5"}).setup()
    try:
        with st.active():
            yield st
    finally:
        st.teardown()


def test_a_receiver_back_from_a_30_s_outage_gets_its_backlog_within_a_minute(
    outage_stack: Stack,
) -> None:
    st = outage_stack
    down = {"now": True}
    receiver = Receiver(behaviours={PATH: lambda _p, _n: 500 if down["now"] else 204}).start()
    try:
        ws_id = _workspace_with_endpoint(receiver)
        st.start_worker()
        st.start_relay()
        failed_at = time.monotonic()
        for _ in range(EVENTS):  # the first fails; the others queue up behind it
            _flip_role(ws_id)
        wait_until(lambda: len(receiver.at(PATH)) >= 1, 60, message="the first (failing) attempt")
        pause(max(0.0, OUTAGE - (time.monotonic() - failed_at)))
        down["now"] = False
        back = time.monotonic()
        wait_until(lambda: len([r for r in receiver.at(PATH) if r.status == 204]) >= EVENTS,
                   BACK_WITHIN, 0.2, message=f"the backlog within {BACK_WITHIN:.0f} s of the return")
        print(f"30 s receiver outage: all {EVENTS} events delivered {time.monotonic() - back:.1f} s "
              f"after the receiver was back ({len(receiver.at(PATH)) - EVENTS} failed attempts)")
        delivered = [r.verified["id"] for r in receiver.at(PATH) if r.status == 204]
        assert delivered == _event_ids(ws_id)  # in order, each once
    finally:
        receiver.stop()


def _workspace_with_endpoint(receiver: Receiver) -> int:
    from services.accounts import workspaces
    from services.db import unit_of_work
    from services.webhooks import service

    with unit_of_work() as session:
        ws, _admin = workspaces.create(session, "outage", "Outage", "admin@outage.test",
                                       "admin-password-123")
        workspaces.seed(session, ws, 1, "member-password")
        _endpoint, secret = service.create(session, ws, receiver.url(PATH),
                                           ["twofa.teammate.role_changed"])
        ws_id = ws.id
    receiver.secrets[PATH] = secret
    return ws_id


def _flip_role(ws_id: int) -> None:
    from sqlalchemy import select

    from services.accounts import teammates
    from services.db import unit_of_work
    from services.models import Teammate, Workspace

    with unit_of_work() as session:
        ws = session.get(Workspace, ws_id)
        assert ws is not None
        people = list(session.scalars(select(Teammate).where(Teammate.workspace_id == ws_id)))
        admin = next(t for t in people if t.email == "admin@outage.test")
        member = next(t for t in people if t is not admin)
        teammates.change_role(session, ws, member, "member" if member.role == "admin" else "admin",
                              admin)


def _event_ids(ws_id: int) -> list[str]:
    from sqlalchemy import select

    from services.db import unit_of_work
    from services.models import Event

    with unit_of_work() as session:
        return list(session.scalars(select(Event.id).where(
            Event.workspace_id == ws_id, Event.type == "twofa.teammate.role_changed")
            .order_by(Event.seq)))
