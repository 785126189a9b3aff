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
    assert all(handlers.deliver_webhooks in hs for hs in handlers.HANDLERS.values())
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
    assert deps <= {"services.models", "services.outbox", "services.topics"}, deps
