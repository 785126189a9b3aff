#!/usr/bin/env bash
# Set up and run the whole suite: on PostgreSQL + Redis, then on the embedded default
# (SQLite + a broker with no server). Extra arguments go to both pytest runs.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ -z "${CI:-}" ]; then bash scripts/services.sh || true; fi
.venv/bin/ruff check services workers tests bench
.venv/bin/mypy
TWOFA_TEST_BACKEND=postgres .venv/bin/pytest -q -p no:cacheprovider "$@"
TWOFA_TEST_BACKEND=embedded .venv/bin/pytest -q -p no:cacheprovider "$@"
