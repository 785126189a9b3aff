"""The event flow reads from one place: topics name every task, the handler map names every
reaction, and the domain packages import each other without cycles."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from services.topics import Topic

SERVICES = Path(__file__).resolve().parents[1] / "services"


def test_every_topic_has_a_task_and_every_task_a_topic(tmp_path: Path) -> None:
    from services.config import Settings
    from workers.celery_app import make_app

    app = make_app(Settings(home=tmp_path))
    app.loader.import_default_modules()  # the task modules, as a worker imports them
    ours = {name for name in app.tasks if not name.startswith("celery.")}
    assert ours == {topic.value for topic in Topic}


def test_a_mistyped_topic_fails_when_enqueued_not_in_a_worker() -> None:
    from services import outbox

    with pytest.raises(ValueError, match="email.send_jion"):
        outbox.enqueue(Session(), "email.send_jion", teammate_id=1)  # type: ignore[arg-type]


def test_the_handler_map_covers_every_event() -> None:
    from services import handlers
    from services.email.notifications import TEMPLATE_FOR_EVENT
    from services.events.catalog import EventType

    assert set(handlers.HANDLERS) == set(EventType)
    from services.events.catalog import AUDIT_ONLY

    # Every event reaches webhooks, but for the audit-only ones, which nothing follows.
    assert all((handlers.deliver_webhooks in hs) == (t not in AUDIT_ONLY)
               for t, hs in handlers.HANDLERS.items())
    assert all(hs == [] for t, hs in handlers.HANDLERS.items() if t in AUDIT_ONLY)
    emailed = {t for t, hs in handlers.HANDLERS.items() if handlers.send_notification_email in hs}
    assert emailed == set(TEMPLATE_FOR_EVENT)  # every notification template is sent, no other


def _imports() -> dict[str, dict[str, str]]:
    """{package: {imported package: a file that imports it}} for services' packages and modules."""
    def unit(module: str) -> str:
        return ".".join(module.split(".")[:2])

    found: dict[str, dict[str, str]] = {}
    for path in SERVICES.rglob("*.py"):
        if "migrations" in path.parts:
            continue
        source = unit(".".join(path.relative_to(SERVICES.parent).with_suffix("").parts))
        for node in ast.walk(ast.parse(path.read_text())):
            targets: list[str] = []
            if isinstance(node, ast.ImportFrom) and node.module:
                base = node.module
                targets = [f"{base}.{a.name}" for a in node.names] if base == "services" else [base]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            for target in targets:
                if target.split(".")[0] in ("services", "workers") and unit(target) != source:
                    found.setdefault(source, {})[unit(target)] = str(path.relative_to(SERVICES.parent))
    return found


def test_services_never_import_workers_and_packages_have_no_cycles() -> None:
    graph = _imports()
    upward = [(src, f) for src, deps in graph.items() for dep, f in deps.items() if dep.startswith("workers")]
    assert not upward, upward

    def reaches(start: str, goal: str) -> bool:
        seen, todo = set(), [start]
        while todo:
            node = todo.pop()
            for dep in graph.get(node, {}):
                if dep == goal:
                    return True
                if dep not in seen:
                    seen.add(dep)
                    todo.append(dep)
        return False

    cycles = [f"{src} -> {dep} ({f})" for src, deps in graph.items() for dep, f in deps.items()
              if reaches(dep, src)]
    assert not cycles, cycles


def test_the_event_packages_stay_at_the_ground() -> None:
    """services/events names and records events; what they set in motion lives above it."""
    deps = set(_imports().get("services.events", {}))
    # services.tracing imports nothing of twofa: events keep the trace that recorded them.
    assert deps <= {"services.errors", "services.models", "services.outbox", "services.topics",
                    "services.timestamps", "services.tracing"}, deps


def test_event_data_is_checked_against_its_dataclass_when_recorded() -> None:
    from pydantic import ValidationError

    from services.events import payloads
    from services.events.catalog import EventType

    typed = payloads.checked(EventType.DISABLED, payloads.Disabled(teammate_id=4, by="admin", actor_id=1))
    as_dict = payloads.checked(EventType.DISABLED, {"teammate_id": 4, "by": "admin", "actor_id": 1})
    assert typed == as_dict == {"teammate_id": 4, "by": "admin", "actor_id": 1}
    for wrong in ({"teammate_id": 4, "by": "admin"},                       # missing
                  {"teammate_id": 4, "by": "admin", "actor_id": 1, "x": 1},  # extra
                  {"teammate_id": "4", "by": "admin", "actor_id": 1},        # mistyped
                  {"teammate_id": 4, "by": "someone", "actor_id": 1}):       # not in the catalog
        with pytest.raises(ValidationError):
            payloads.checked(EventType.DISABLED, wrong)
    with pytest.raises(TypeError):
        payloads.checked(EventType.DISABLED, payloads.Enabled(teammate_id=4))


def test_the_documented_catalog_is_the_code() -> None:
    """docs/events.md's catalog table lists each event type with exactly its dataclass's fields."""
    import dataclasses
    import re

    from services.events import payloads

    documented = {}
    for line in (SERVICES.parent / "docs" / "events.md").read_text().splitlines():
        row = re.match(r"\| `(twofa\.[a-z_.]+)` \|[^|]*\| (.*) \|$", line)
        if row:
            fields = re.sub(r"\([^)]*\)", "", row.group(2))  # drop notes such as (`self`/`admin`)
            documented[row.group(1)] = set(re.findall(r"`([a-z_]+)`", fields))
    in_code = {type_.value: {f.name for f in dataclasses.fields(cls)}
               for type_, cls in payloads.PAYLOADS.items()}
    assert documented == in_code
