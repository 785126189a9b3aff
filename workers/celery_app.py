"""The Celery application, configured from Settings.

Tasks are idempotent, so they ack late and are requeued if their worker dies mid-task.
Webhook tasks have a queue of their own (`<queue>.webhooks`): a receiver that answers slowly
holds webhook workers only, never the invitations and emails of the main queue.
"""

from __future__ import annotations

from typing import Any

from celery import Celery

from services.config import Settings, get_settings
from workers import broker_fs

broker_fs.install()  # filesystem:// with atomic writes and claims (see workers/broker_fs.py)


def broker_options(settings: Settings) -> dict[str, Any]:
    if settings.is_embedded_broker:
        folder = settings.broker_folder
        for sub in ("queue", "processed", "control"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
        # The filesystem transport polls; 1 s (its default) drains ~5 tasks/s.
        return {
            "data_folder_in": str(folder / "queue"),
            "data_folder_out": str(folder / "queue"),
            "processed_folder": str(folder / "processed"),
            "control_folder": str(folder / "control"),  # else it lands in the cwd
            "store_processed": False,
            "polling_interval": 0.05,
        }
    # Longer than any countdown we use, so a delayed retry is not redelivered early.
    return {"visibility_timeout": 3600}


def webhooks_queue(settings: Settings) -> str:
    return f"{settings.queue}.webhooks"


def queues(settings: Settings, which: str = "all") -> list[str]:
    """The queues a worker consumes: `invitations` (everything but webhooks), `webhooks`, `all`."""
    named = {"invitations": [settings.queue], "webhooks": [webhooks_queue(settings)]}
    if which == "all":
        return [*named["invitations"], *named["webhooks"]]
    return named[which]


def make_app(settings: Settings | None = None) -> Celery:
    settings = settings or get_settings()
    app = Celery("twofa", broker=settings.resolved_broker_url,
                 include=["workers.tasks", "workers.webhook_tasks"])
    app.conf.update(
        broker_transport_options=broker_options(settings),
        broker_connection_retry_on_startup=True,
        task_default_queue=settings.queue,
        task_routes={"webhooks.*": {"queue": webhooks_queue(settings)}},
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_ignore_result=True,
        worker_prefetch_multiplier=1,
        worker_hijack_root_logger=False,
        task_serializer="json",
        accept_content=["json"],
    )
    return app


app = make_app()
