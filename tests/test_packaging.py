"""The lock files pin a version that pyproject.toml accepts for every requirement, so
`scripts/setup.sh` and the Dockerfile (which install from them) give what pyproject asks.
After changing a dependency, regenerate the locks (README, Production)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[1]


def _pins(lock: str) -> dict[str, str]:
    text = (REPO / lock).read_text()
    return {canonicalize_name(m[1]): m[2]
            for m in re.finditer(r"^([A-Za-z0-9_.\-]+)==([^\s;\\]+)", text, re.M)}


def _requirements(extra: str | None) -> list[Requirement]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    listed = project["dependencies"] + (project["optional-dependencies"][extra] if extra else [])
    return [Requirement(r) for r in listed]


@pytest.mark.parametrize(("lock", "extra"), [("requirements.lock", None),
                                             ("requirements-dev.lock", "dev")])
def test_every_requirement_is_pinned_within_its_range(lock: str, extra: str | None) -> None:
    pins = _pins(lock)
    for req in _requirements(extra):
        name = canonicalize_name(req.name)
        assert name in pins, f"{req.name} is missing from {lock}: regenerate it"
        assert req.specifier.contains(pins[name], prereleases=True), \
            f"{lock} pins {req.name}=={pins[name]}, outside {req.specifier}"


def test_the_runtime_lock_has_no_test_tools() -> None:
    pins = _pins("requirements.lock")
    assert not {"pytest", "ruff", "mypy"} & set(pins)


def test_the_build_lock_pins_what_the_build_system_requires() -> None:
    """infra/Dockerfile builds the wheel without build isolation, with the backend pinned in
    requirements-build.lock: it must be one pyproject's [build-system] accepts."""
    pins = _pins("requirements-build.lock")
    build = tomllib.loads((REPO / "pyproject.toml").read_text())["build-system"]["requires"]
    for req in map(Requirement, build):
        name = canonicalize_name(req.name)
        assert name in pins and req.specifier.contains(pins[name]), (req, pins)
    dockerfile = (REPO / "infra" / "Dockerfile").read_text()
    assert "-r requirements-build.lock" in dockerfile and "--no-build-isolation ." in dockerfile
