#!/usr/bin/env bash
# Create .venv (Python 3.11+) and install twofa's pinned dependencies (requirements-dev.lock),
# then twofa itself in editable mode.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then "$PY" -m venv .venv; fi
stale=0
for f in requirements-dev.lock pyproject.toml setup.py; do
  if [ "$f" -nt .venv/.installed ]; then stale=1; fi
done
if ! .venv/bin/python -c "import services, workers, pytest, ruff" 2>/dev/null || [ $stale = 1 ]; then
  .venv/bin/pip install -q --disable-pip-version-check -r requirements-dev.lock
  .venv/bin/pip install -q --disable-pip-version-check --no-deps -e .
  touch .venv/.installed
fi
