"""What the processes print: a terminal a person can read while `twofa up` idles.

Celery logs every task received and succeeded at INFO. The relay sends two sweeps every
TWOFA_SWEEP_INTERVAL seconds, so an idle installation printed ~16 such lines a minute; those
lines move to DEBUG. The API logs one access line per request, without query values (a join
link carries its token in the query string, and no secret may reach a log).
"""

from __future__ import annotations

import copy
import logging
from typing import Any

# Periodic tasks are named `<area>.sweep` (enrollment.sweep, webhooks.sweep).
PERIODIC_SUFFIX = ".sweep"
CELERY_TASK_LOGGERS = ("celery.worker.strategy", "celery.app.trace")


class PeriodicTasksAtDebug(logging.Filter):
    """Demote Celery's received/succeeded lines of periodic tasks to DEBUG."""

    def filter(self, record: logging.LogRecord) -> bool:
        context = getattr(record, "data", None)  # Celery passes the task's context as extra
        name = context.get("name", "") if isinstance(context, dict) else ""
        if record.levelno != logging.INFO or not str(name).endswith(PERIODIC_SUFFIX):
            return True
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)


def quiet_periodic_tasks() -> None:
    for name in CELERY_TASK_LOGGERS:
        logging.getLogger(name).addFilter(PeriodicTasksAtDebug())


class QueryValuesHidden(logging.Filter):
    """uvicorn's access line with every query value replaced by `…` (`/join?token=…`)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) == 5 and "?" in str(args[2]):
            path, _, query = str(args[2]).partition("?")
            names = [part.partition("=")[0] for part in query.split("&") if part]
            record.args = (*args[:2], f"{path}?{'&'.join(f'{n}=…' for n in names)}", *args[3:])
        return True


def uvicorn_log_config() -> dict[str, Any]:
    """uvicorn's own logging configuration, with QueryValuesHidden on the access handler."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config.setdefault("filters", {})["query_values_hidden"] = {"()": QueryValuesHidden}
    config["handlers"]["access"]["filters"] = ["query_values_hidden"]
    return config
