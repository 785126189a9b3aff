"""The Celery application, built from Settings by `make_app()`; importing this does nothing.

`get_app()` builds the process's app once. `workers.celery_app.app` is that app, built on
first access, so `from workers.celery_app import app` and `celery -A workers.celery_app`
still work. Task modules declare their tasks with `shared_task`, which attaches them to
whichever app the process builds.

Tasks are idempotent, so they ack late and are requeued if their worker dies mid-task.
Webhook tasks have a queue of their own (`<queue>.webhooks`): a receiver that answers slowly
holds webhook workers only, never the invitations and emails of the main queue.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from celery import Celery

from services.config import Settings, get_settings, private_folder
from services.topics import Topic
from workers import broker_fs

TASK_MODULES = ["workers.tasks", "workers.webhook_tasks"]
WEBHOOK_TOPICS = (Topic.DELIVER_WEBHOOKS, Topic.SWEEP_WEBHOOKS, Topic.SEND_WEBHOOK_DISABLED_EMAIL)


def broker_options(settings: Settings) -> dict[str, Any]:
    if settings.is_embedded_broker:
        folder = settings.broker_folder
        private_folder(settings.home_dir)  # whichever process makes TWOFA_HOME, it is 0700
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
    """A Celery app for these settings; it becomes the process's current app."""
    settings = settings or get_settings()
    broker_fs.install()  # filesystem:// with atomic writes and claims (see workers/broker_fs.py)
    app = Celery("twofa", broker=settings.resolved_broker_url, include=TASK_MODULES)
    app.conf.update(
        broker_transport_options=broker_options(settings),
        broker_connection_retry_on_startup=True,
        task_default_queue=settings.queue,
        task_routes={topic.value: {"queue": webhooks_queue(settings)} for topic in WEBHOOK_TOPICS},
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_ignore_result=True,
        worker_prefetch_multiplier=1,
        worker_hijack_root_logger=False,
        task_serializer="json",
        accept_content=["json"],
    )
    return app


@cache
def get_app() -> Celery:
    return make_app()


def __getattr__(name: str) -> Celery:
    """`app` is built on first access (PEP 562), not when the module is imported."""
    if name == "app":
        return get_app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
