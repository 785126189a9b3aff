"""Fault injection: a worker SIGKILLed in the middle of a webhook delivery loses no event."""

from __future__ import annotations

import threading
from pathlib import Path

from sqlalchemy import select

from tests.stack import Stack, wait_until
from tests.webhook_receiver import Receiver

EVENTS = 8


def test_worker_killed_mid_delivery_loses_no_event(tmp_path: Path) -> None:
    st = Stack(home=tmp_path / "webhooks-fault").setup()
    receiver = Receiver().start()
    in_flight, release = threading.Event(), threading.Event()

    def hang_first(_path: str, before: int) -> int:
        if before == 0:  # hold the first request open until its worker has been killed
            in_flight.set()
            release.wait(60)
        return 200

    receiver.behaviours["/hook"] = hang_first
    try:
        with st.active():
            from services.accounts import workspaces
            from services.db import unit_of_work
            from services.events import recorder
            from services.events.catalog import EventType
            from services.models import WebhookDelivery
            from services.webhooks import service

            with unit_of_work() as session:
                ws, admin = workspaces.create(session, "fault-hooks", "Fault", "a@fault.test", "pw-123456")
                endpoint, secret = service.create(session, ws, receiver.url("/hook"), ["*"])
                event_ids = [
                    recorder.record(session, ws.id, EventType.VERIFICATION_FAILED,
                                    {"teammate_id": admin.id, "reason": f"r{i}"}, admin.id).id
                    for i in range(EVENTS)
                ]
        receiver.secrets["/hook"] = secret
        st.start_worker()
        st.start_relay()
        assert in_flight.wait(60), "the first delivery never started"
        st.kill("worker")  # SIGKILL, pool included, while the POST is in flight
        release.set()
        st.start_worker("worker-2")

        def statuses() -> list[str]:
            with st.active(), unit_of_work() as session:
                return list(session.scalars(
                    select(WebhookDelivery.status)
                    .where(WebhookDelivery.endpoint_id == endpoint.id)
                    .order_by(WebhookDelivery.event_seq)
                ))

        wait_until(lambda: statuses() == ["succeeded"] * EVENTS, 150, interval=0.5,
                   message=f"all {EVENTS} deliveries to succeed after the kill")
        got = receiver.at("/hook")
        assert all(r.verified is not None for r in got), [r.error for r in got]
        first_seen = list(dict.fromkeys(r.webhook_id for r in got))
        assert first_seen == event_ids  # every event, in order
        # The cut-short attempt was repeated (same webhook-id) rather than lost.
        assert [r.webhook_id for r in got].count(event_ids[0]) >= 2
    finally:
        release.set()
        receiver.stop()
        st.teardown()
