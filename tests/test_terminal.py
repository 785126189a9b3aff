"""What `twofa up` prints: periodic sweeps at DEBUG, access lines without query values, and
the public URL that follows --port. (tests/test_install.py runs the whole thing.)"""

from __future__ import annotations

import logging

import pytest

from services.config import Settings
from workers import cli, logs


def _celery_line(task: str, logger: str = "celery.app.trace") -> logging.LogRecord:
    context = {"name": task, "id": "1", "runtime": 0.01, "return": "None"}
    record = logging.LogRecord(logger, logging.INFO, __file__, 1,
                               "Task %(name)s[%(id)s] succeeded", (context,), None)
    record.data = context
    return record


@pytest.fixture
def trace_logger() -> logging.Logger:
    logger = logging.getLogger("celery.app.trace")
    level = logger.level
    yield logger
    logger.setLevel(level)


@pytest.mark.parametrize("task", ["enrollment.sweep", "webhooks.sweep"])
def test_sweeps_are_debug_lines(task: str, trace_logger: logging.Logger) -> None:
    trace_logger.setLevel(logging.INFO)
    assert logs.PeriodicTasksAtDebug().filter(_celery_line(task)) is False
    trace_logger.setLevel(logging.DEBUG)
    record = _celery_line(task)
    assert logs.PeriodicTasksAtDebug().filter(record) is True
    assert record.levelname == "DEBUG"


def test_other_tasks_stay_info(trace_logger: logging.Logger) -> None:
    trace_logger.setLevel(logging.INFO)
    record = _celery_line("enrollment.send_batch")
    assert logs.PeriodicTasksAtDebug().filter(record) is True
    assert record.levelname == "INFO"


def test_access_lines_hide_query_values() -> None:
    record = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1,
                               '%s - "%s %s HTTP/%s" %d',
                               ("127.0.0.1:5000", "GET", "/join?token=s3cret&x=1", "1.1", 200), None)
    assert logs.QueryValuesHidden().filter(record) is True
    assert record.getMessage() == '127.0.0.1:5000 - "GET /join?token=…&x=… HTTP/1.1" 200'


def test_access_log_config_is_uvicorns_with_the_filter() -> None:
    config = logs.uvicorn_log_config()
    assert config["handlers"]["access"]["filters"] == ["query_values_hidden"]
    assert config["loggers"]["uvicorn.access"]["handlers"] == ["access"]


def test_public_url_follows_the_port_unless_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TWOFA_PUBLIC_URL", raising=False)
    # localhost, not 127.0.0.1: browsers refuse an IP address as a WebAuthn relying party.
    assert cli._public_url(Settings(), "127.0.0.1", 9123) == "http://localhost:9123"
    assert cli._public_url(Settings(), "0.0.0.0", 9123) == "http://localhost:9123"  # noqa: S104
    assert cli._public_url(Settings(), "::1", 9123) == "http://localhost:9123"
    assert cli._public_url(Settings(), "192.0.2.7", 9123) == "http://192.0.2.7:9123"
    monkeypatch.setenv("TWOFA_PUBLIC_URL", "https://2fa.example.com")
    assert cli._public_url(Settings(), "127.0.0.1", 9123) == "https://2fa.example.com"
