"""A worker SIGKILLed while reminders are due: after a restart every reminder arrives, and
only a send the kill cut short repeats, with its Message-ID (README, "What a crash may
repeat"). Its own installation, so the kill touches nothing else."""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta
from pathlib import Path

import pytest

from tests.stack import Stack, wait_until
from tests.test_fault_rollout import _rollout, _workspace_with_team
from tests.test_fault_rollout import own_stack as own_stack  # the fixture

TEAM = 600


def _require_with_grace(workspace_id: int, actor_id: int, hours: int) -> None:
    from services.db import unit_of_work
    from services.models import Workspace
    from services.policy import service as policy

    with unit_of_work() as session:
        ws = session.get(Workspace, workspace_id)
        assert ws is not None
        policy.set_policy(session, ws, True, actor_id, grace_period_hours=hours)


def _reminders(stack: Stack) -> dict[str, list[str]]:
    by_address: dict[str, list[str]] = defaultdict(list)
    for mail in stack.smtp.snapshot():
        if mail.subject.startswith("Reminder:"):
            for rcpt in mail.recipients:
                by_address[rcpt].append(mail.message_id)
    return by_address


# A killed worker's reminder batches are outbox messages published but never completed: the
# relay publishes them again after TWOFA_OUTBOX_REDELIVER_SECONDS (10 minutes by default).
@pytest.mark.parametrize("own_stack", [{"TWOFA_OUTBOX_REDELIVER_SECONDS": "10"}], indirect=True)
def test_worker_killed_while_reminders_are_due_loses_none(own_stack: Stack) -> None:
    from services import clock

    ws_id, admin_id, addresses = _workspace_with_team(TEAM)
    own_stack.start_relay()
    own_stack.start_worker("first", concurrency=2)
    _require_with_grace(ws_id, admin_id, 30)  # reminders 24 h and 1 h before the deadline
    wait_until(lambda: _rollout(ws_id)["pending"] == 0, 240, 0.5, message="the invitations")
    own_stack.smtp.delay = 0.01  # slow enough that the kill lands mid-batch

    clock.set_offset(Path(own_stack.env["TWOFA_TEST_CLOCK_FILE"]), timedelta(hours=6, minutes=1))
    wait_until(lambda: sum(map(len, _reminders(own_stack).values())) >= 60, 120, 0.01,
               message="reminders to be under way")
    own_stack.kill("first")  # SIGKILL to the whole process group, pool included
    assert len(_reminders(own_stack)) < TEAM, "the kill came too late to test anything"

    own_stack.start_worker("second", concurrency=2)
    wait_until(lambda: len(_reminders(own_stack)) == TEAM, 240, 0.5,
               message="every teammate's reminder")
    sent = _reminders(own_stack)
    assert sorted(sent) == sorted(addresses)
    repeated = {a: ids for a, ids in sent.items() if len(ids) > 1}
    # At most the send each killed pool process had in flight, with the same Message-ID.
    assert len(repeated) <= 2, repeated
    assert all(len(set(ids)) == 1 for ids in repeated.values()), repeated
