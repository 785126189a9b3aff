"""Installation-wide series read from the database at scrape time.

Whatever process did the work (any worker, relay or API replica), the database holds the
outcome, so one scrape of any API process tells the truth: invitations by state, outbox lag,
webhook deliveries by outcome. Each scrape runs four small aggregate queries.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from services.db import session_factory
from services.models import (
    INVITATION_STATUSES,
    EnrollmentInvitation,
    OutboxMessage,
    WebhookDelivery,
    WebhookEndpoint,
    utcnow,
)


class DatabaseCollector(Collector):
    """Reads the database on every collect(); a database that cannot answer yields nothing
    (the scrape still succeeds, and `twofa_database_up` says why the series are missing)."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        up = GaugeMetricFamily("twofa_database_up", "1 if the scrape could read the database.")
        try:
            with session_factory()() as session:
                families = list(_families(session))
        except Exception:  # noqa: BLE001 - a scrape must answer even when the database cannot
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from families


def _families(session: Session) -> Iterator[GaugeMetricFamily]:
    now = utcnow()
    # Every state from 0, so an alert on `failed` has a series before the first failure.
    yield _by_label(session, "twofa_invitations", "Invitations by state (all versions).",
                    "state", EnrollmentInvitation.status, INVITATION_STATUSES)
    yield _by_label(session, "twofa_webhook_deliveries", "Webhook deliveries by outcome.",
                    "outcome", WebhookDelivery.status)
    unpublished = session.scalar(
        select(func.min(OutboxMessage.created_at)).where(OutboxMessage.published_at.is_(None)))
    incomplete = session.scalar(
        select(func.min(OutboxMessage.created_at)).where(OutboxMessage.completed_at.is_(None)))
    yield _age("twofa_outbox_oldest_unpublished_age_seconds",
               "Age of the oldest outbox message the relay has not published (0: none).",
               now, unpublished)
    yield _age("twofa_outbox_oldest_incomplete_age_seconds",
               "Age of the oldest outbox message whose task has not succeeded (0: none).",
               now, incomplete)
    disabled = session.scalar(select(func.count()).select_from(WebhookEndpoint).where(
        WebhookEndpoint.enabled.is_(False), WebhookEndpoint.deleted_at.is_(None)))
    endpoints = GaugeMetricFamily("twofa_webhook_endpoints_disabled",
                                  "Webhook endpoints disabled and not deleted.")
    endpoints.add_metric([], disabled or 0)
    yield endpoints


def _by_label(session: Session, name: str, doc: str, label: str, column: object,
              known: tuple[str, ...] = ()) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, doc, labels=[label])
    counts = dict.fromkeys(known, 0)
    for value, count in session.execute(select(column, func.count()).group_by(column)):  # type: ignore[call-overload]
        counts[str(value)] = count
    for value, count in counts.items():
        family.add_metric([value], count)
    return family


def _age(name: str, doc: str, now: datetime, oldest: datetime | None) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, doc)
    family.add_metric([], max(0.0, (now - oldest).total_seconds()) if oldest else 0.0)
    return family
